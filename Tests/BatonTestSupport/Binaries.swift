import Foundation

/// The executables built by `swift build`, found beside the running test binary (it lives in
/// `.build…/<triple>/debug/`, where SwiftPM also puts `baton` and `baton-test-worker`).
/// `BATON_BIN_DIR` overrides the directory.
public enum Binaries {
    /// The directory that should hold the executables.
    public static var directory: String {
        if let override = ProcessInfo.processInfo.environment["BATON_BIN_DIR"], !override.isEmpty {
            return override
        }
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]
        return (executable as NSString).deletingLastPathComponent
    }

    /// The path of the `baton` executable.
    public static func baton() throws -> String {
        try executable(named: "baton")
    }

    /// The path of the `baton-config` executable (read by `baton` from beside its own).
    public static func batonConfig() throws -> String {
        try executable(named: "baton-config")
    }

    /// The path of the `baton-master` executable (`baton run` execs it from beside its own).
    public static func batonMaster() throws -> String {
        try executable(named: "baton-master")
    }

    /// The path of the `baton-test-worker` executable.
    public static func testWorker() throws -> String {
        try executable(named: "baton-test-worker")
    }

    /// The path of a built executable, or an error naming the missing path.
    public static func executable(named name: String) throws -> String {
        let path = directory + "/" + name
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw TestSupportError("\(path) is missing: run swift build first (with the same --scratch-path)")
        }
        return path
    }
}
