// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "baton",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "baton", targets: ["baton"]),
        .executable(name: "baton-test-worker", targets: ["baton-test-worker"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
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
        .executableTarget(
            name: "baton",
            dependencies: [
                "BatonCore", "BatonConfig", "BatonRuntime",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // A configurable HTTP worker for tests and the demo.
        .executableTarget(name: "baton-test-worker", dependencies: ["CBaton"]),
        .target(name: "BatonTestSupport", dependencies: ["CBaton"], path: "Tests/BatonTestSupport"),
        .testTarget(name: "BatonCoreTests", dependencies: ["BatonCore"]),
        .testTarget(name: "BatonConfigTests", dependencies: ["BatonConfig", "BatonCore"]),
        .testTarget(name: "BatonRuntimeTests", dependencies: ["BatonRuntime", "BatonCore", "CBaton", "BatonTestSupport"]),
        .testTarget(name: "BatonIntegrationTests", dependencies: ["BatonTestSupport", "CBaton"]),
    ]
)
