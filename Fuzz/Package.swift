// swift-tools-version:6.0
// libFuzzer targets for baton's parsers: the KEY=VALUE grammar of sd_notify and the channel, the
// control protocol's JSON lines, and the TOML configuration loader. A package of its own so the
// main build never sees `-sanitize=fuzzer` (which cannot link an executable that has its own
// `main`); build it with its own scratch path:
//
//     swift build --package-path Fuzz --scratch-path .build-fuzz --sanitize fuzzer --sanitize address
//
// or run `make fuzz` (scripts/fuzz), which builds and runs every target for a bounded time.
import Foundation
import PackageDescription

// A path dependency's identity is its directory's name, whatever the checkout is called.
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
let parsers = Target.Dependency.product(name: "BatonFuzzTargets", package: root.lastPathComponent)

let package = Package(
    name: "baton-fuzz",
    platforms: [.macOS(.v14)],
    dependencies: [.package(path: "..")],
    targets: [
        // NotifyMessage.parse (notify socket and channel) and the channel's worker messages.
        .executableTarget(name: "FuzzNotifyMessage", dependencies: [parsers]),
        // ControlCodec.decodeRequest (the master's side) and decodeMessage (the client's side).
        .executableTarget(name: "FuzzControlProtocol", dependencies: [parsers]),
        // ConfigLoader.parse and Configuration.problems().
        .executableTarget(name: "FuzzConfigLoader", dependencies: [parsers]),
    ]
)
