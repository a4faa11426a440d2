// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "baton",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "baton", targets: ["baton"]),
        .executable(name: "baton-master", targets: ["baton-master"]),
        .executable(name: "baton-config", targets: ["baton-config"]),
        .executable(name: "baton-test-worker", targets: ["baton-test-worker"]),
        // For workers: sockets, readiness and the drain request (no SwiftNIO).
        .library(name: "BatonWorker", targets: ["BatonWorker"]),
        // For SwiftNIO workers: adopt a listener, HTTP/1.1 and h2c with a keep-alive-aware drain.
        .library(name: "BatonWorkerNIO", targets: ["BatonWorkerNIO"]),
        // For swift-service-lifecycle: the drain request as the group's graceful shutdown.
        .library(name: "BatonWorkerLifecycle", targets: ["BatonWorkerLifecycle"]),
        // Only for the fuzz package in Fuzz/ (built apart, in .build-fuzz): the parsers it feeds.
        // Not an API: nothing in it is stable.
        .library(name: "BatonFuzzTargets", targets: ["BatonCore", "BatonConfig", "BatonRuntime"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        // Only the worker-side adapters and the example use these; the master never links them.
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-http2", from: "1.46.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // fork/exec with fd placement and other calls Swift cannot make safely.
        .target(name: "CBaton"),
        // libsystemd's sd-daemon API: sd_notify and socket activation.
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        // The supervisor's decisions: configuration model and the pure state machine. No I/O.
        .target(name: "BatonCore"),
        // TOML configuration file loading (TOMLKit) into BatonCore's model.
        .target(
            name: "BatonConfig",
            dependencies: ["BatonCore", .product(name: "TOMLKit", package: "TOMLKit")]
        ),
        // The thin runtime: event loop, listeners, spawning, notify socket, output, logging.
        .target(
            name: "BatonRuntime",
            dependencies: ["BatonCore", "CBaton", "CSystemd", .product(name: "Logging", package: "swift-log")]
        ),
        // What the command line shows people: tables, colour and live progress on a terminal.
        .target(name: "BatonCLI", dependencies: ["BatonCore", "BatonRuntime"]),
        // The command line: `baton run` and the control client. `baton run` resolves the
        // configuration and execs `baton-master`. Neither links the TOML parser (and Foundation
        // with it): configuration files are read by `baton-config`, in a child process.
        .executableTarget(
            name: "baton",
            dependencies: [
                "BatonCore", "BatonRuntime", "BatonCLI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The master process (`baton run` becomes it): no argument parser, no Foundation, so the
        // process that lives as long as the service stays small.
        .executableTarget(name: "baton-master", dependencies: ["BatonCore", "BatonRuntime", "CBaton"]),
        // Reads a configuration file and prints it as JSON: run by `baton`, installed beside it.
        .executableTarget(
            name: "baton-config",
            dependencies: [
                "BatonCore", "BatonConfig",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The worker side, sharing the protocol code (BatonCore) with the master.
        .target(name: "BatonWorker", dependencies: ["BatonCore", "CBaton"]),
        .target(
            name: "BatonWorkerNIO",
            dependencies: [
                "BatonWorker", "CBaton",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
            ]
        ),
        .target(
            name: "BatonWorkerLifecycle",
            dependencies: ["BatonWorker", .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")]
        ),
        // Examples/: a SwiftNIO HTTP server using the library (run under baton in the tests).
        .executableTarget(
            name: "swift-nio-server",
            dependencies: [
                "BatonWorker", "BatonWorkerNIO", "BatonWorkerLifecycle",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Examples/swift-nio-server"
        ),
        // A configurable HTTP worker for tests and the demo.
        .executableTarget(name: "baton-test-worker", dependencies: ["CBaton"]),
        .target(name: "BatonTestSupport", dependencies: ["CBaton"], path: "Tests/BatonTestSupport"),
        .testTarget(name: "BatonCoreTests", dependencies: ["BatonCore"]),
        .testTarget(name: "BatonConfigTests", dependencies: ["BatonConfig", "BatonCore"]),
        .testTarget(name: "BatonCLITests", dependencies: ["BatonCLI", "BatonRuntime", "BatonCore"]),
        .testTarget(name: "BatonRuntimeTests", dependencies: ["BatonRuntime", "BatonCore", "CBaton", "BatonTestSupport"]),
        .testTarget(
            name: "BatonIntegrationTests",
            dependencies: [
                "BatonTestSupport", "CBaton",
                // Only for the HTTP/2 client of the h2c test (HTTP2LoadGenerator).
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
            ]
        ),
        .testTarget(
            name: "BatonWorkerTests",
            dependencies: [
                "BatonWorker", "BatonWorkerNIO", "BatonWorkerLifecycle", "BatonCore", "CBaton", "BatonTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ]
)
