import BatonTestSupport
import Foundation
import Testing

extension IntegrationTests.FaultMatrix {
    /// Runs the master as `nobody` (uid and gid 65534, no supplementary groups).
    static let asNobody = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

    static func uid(of pid: pid_t) -> String? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        return status.split(separator: "\n").first { $0.hasPrefix("Uid:") }?
            .split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().first.map(String.init)
    }

    // MARK: - Broken deploys

    /// The program's file turns out not to be executable at all (the kernel refuses it): the
    /// spawn reports execve's own error, and the serving generation never notices.
    @Test func execFails() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let program = directory.file("server")
        try FileManager.default.createSymbolicLink(atPath: program, withDestinationPath: try Binaries.testWorker())
        let baton = try BatonFixture(workers: 2, command: [program, "--ready-delay", "20"])
        defer { baton.cleanup() }
        let load = LoadGenerator.start(port: baton.port, shortClients: 2, keepAliveClients: 4)
        defer { _ = load.stop() }
        try Self.awaitTraffic(load)
        // A deploy that left a truncated binary behind: executable bits, no valid format.
        try FileManager.default.removeItem(atPath: program)
        try directory.write("server", "\u{7F}EL")
        chmod(program, 0o755)
        let mark = baton.process.mark()
        let result = try baton.client(["reload", "--wait"])

        let reason = "gen=2 failed: worker=0: cannot execute \"\(program)\": Exec format error"
        let line = try baton.process.waitForLine(after: mark, containing: "reload failed: gen=2")
        #expect(Self.message(line) == "reload failed: \(reason); gen=1 keeps serving")
        Self.expectReloadFailed(result, reason)
        try baton.process.waitForLine(after: mark, containing: "gen=2 exited")
        #expect(try baton.get().generation == "1")

        // Fixed: the next reload goes through.
        try FileManager.default.removeItem(atPath: program)
        try FileManager.default.createSymbolicLink(atPath: program, withDestinationPath: try Binaries.testWorker())
        Self.expectReloadOK(try baton.client(["reload", "--wait"]), generation: 3)
        let report = load.stop()
        Self.expectNoFailures(report)
        #expect(report.perGeneration["2"] == nil)
    }

    enum ConfigFault: String, CaseIterable, Sendable {
        case deleted, replacedByADirectory, unreadable
        /// A one-character file that makes toml++ (inside TOMLKit) abort on an assertion: the
        /// master tries a changed file in a child first, so it survives (found by FuzzConfigLoader).
        case crashesTheTOMLParser
    }

    /// The configuration file is broken before a reload, under a master that runs unprivileged
    /// (so that permissions apply to it). The reload is refused with the reason; the serving
    /// generation is untouched; once fixed, a reload succeeds.
    @Test(.enabled(if: getuid() == 0, "needs root to start the master as nobody"), arguments: ConfigFault.allCases)
    func configurationFileBrokenBeforeAReload(_ fault: ConfigFault) throws {
        let master = try LaunchedMaster(config: Self.workerConfig(workers: 2), launcher: Self.asNobody, owner: 65534)
        defer { master.cleanup() }
        #expect(Self.uid(of: master.process.pid) == "65534")
        let load = LoadGenerator.start(port: master.port, shortClients: 2, keepAliveClients: 4)
        defer { _ = load.stop() }
        try Self.awaitTraffic(load)
        let path = master.configPath
        let original = try String(contentsOfFile: path, encoding: .utf8)
        let why: String
        switch fault {
        case .deleted:
            try FileManager.default.removeItem(atPath: path)
            why = "cannot read: No such file or directory"
        case .replacedByADirectory:
            try FileManager.default.removeItem(atPath: path)
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
            why = "cannot read: Is a directory"
        case .unreadable:
            chmod(path, 0o600)  // root's; the master is nobody
            why = "cannot read: Permission denied"
        case .crashesTheTOMLParser:
            try "[\n".write(toFile: path, atomically: true, encoding: .utf8)
            chmod(path, 0o644)
            why = "cannot parse: the parser crashed (SIGABRT) on this file; it is not valid TOML"
        }
        let mark = master.process.mark()
        let result = try master.client(["reload", "--wait"])

        let reason = "gen=2 failed: configuration: \(path): \(why)"
        let line = try master.process.waitForLine(after: mark, containing: "reload failed: gen=2")
        #expect(Self.message(line) == "reload failed: \(reason); gen=1 keeps serving")
        #expect(Self.level(line) == "ERROR")
        Self.expectReloadFailed(result, reason)
        let status = try FaultClient.status(controlPath: master.controlPath)
        #expect(FaultClient.generations(status).map(\.number) == [1])
        let last = status["last_reload"] as? [String: Any]
        #expect(last?["ok"] as? Bool == false)

        if fault == .replacedByADirectory { try FileManager.default.removeItem(atPath: path) }
        try original.write(toFile: path, atomically: false, encoding: .utf8)
        chmod(path, 0o644)
        Self.expectReloadOK(try master.client(["reload", "--wait"]), generation: 3)
        let report = load.stop()
        Self.expectNoFailures(report)
    }

    /// A listener added by the new configuration cannot be bound: the reload is refused before
    /// any worker starts, and the socket it did not get is named with the reason.
    @Test func newListenersAddressAlreadyInUse() throws {
        let master = try LaunchedMaster(config: Self.workerConfig(workers: 2))
        defer { master.cleanup() }
        let load = LoadGenerator.start(port: master.port, shortClients: 2, keepAliveClients: 4)
        defer { _ = load.stop() }
        try Self.awaitTraffic(load)
        var squatter: ListeningSocket? = try ListeningSocket()
        let port = try #require(squatter?.port)
        let admin = "[[listener]]\nname = \"admin\"\naddress = \"tcp://127.0.0.1:\(port)\"\n"
        try Self.workerConfig(workers: 2, extraListeners: admin)
            .replacingOccurrences(of: "@WORKER@", with: try Self.workerCommand(master))
            .write(toFile: master.configPath, atomically: true, encoding: .utf8)
        let mark = master.process.mark()
        let result = try master.client(["reload", "--wait"])

        let reason = "gen=2 failed: listener \"admin\": tcp://127.0.0.1:\(port): bind: Address already in use (another process is listening there)"
        let line = try master.process.waitForLine(after: mark, containing: "reload failed: gen=2")
        #expect(Self.message(line) == "reload failed: \(reason); gen=1 keeps serving")
        Self.expectReloadFailed(result, reason)
        #expect(!master.process.lines[mark...].contains { $0.contains("gen=2 worker=") }, "no worker of gen 2 may start")
        let status = try FaultClient.status(controlPath: master.controlPath)
        let listeners = status["listeners"] as? [[String: Any]] ?? []
        #expect(listeners.compactMap { $0["name"] as? String } == ["http"])

        // The address is free again: the same configuration now reloads.
        squatter = nil
        Self.expectReloadOK(try master.client(["reload", "--wait"]), generation: 3)
        try master.process.waitForLine(after: mark, containing: "listener=admin address=tcp://127.0.0.1:\(port) bound")
        #expect(try HTTPClient.get(port: port).generation == "3")
        let report = load.stop()
        Self.expectNoFailures(report)
    }

    /// The worker command of a `LaunchedMaster`, as a TOML array.
    static func workerCommand(_ master: LaunchedMaster) throws -> String {
        let words = [try Binaries.testWorker(), "--switches-file", master.switchesFile, "--ready-delay", "50"]
        return "[" + words.map { "\"\($0)\"" }.joined(separator: ", ") + "]"
    }

    /// The master runs unprivileged and its RLIMIT_NPROC drops to 1 once it is up, so fork()
    /// fails (EAGAIN). The reload reports it; with the limit lifted, the next reload succeeds.
    @Test(.enabled(if: getuid() == 0, "needs root to start the master as nobody and change its limits"))
    func forkFailsUnderRLIMIT_NPROC() throws {
        let master = try LaunchedMaster(config: Self.workerConfig(workers: 2), launcher: Self.asNobody, owner: 65534)
        defer { master.cleanup() }
        let load = LoadGenerator.start(port: master.port, shortClients: 2, keepAliveClients: 4)
        defer { _ = load.stop() }
        try Self.awaitTraffic(load)
        // Root ignores the limit, and set before start it would starve the master's own threads.
        let original = try #require(Self.softProcessLimit(master.process.pid))
        try Self.prlimit(master.process.pid, "--nproc=1:")
        let mark = master.process.mark()
        let result = try master.client(["reload", "--wait"])

        let reason = "gen=2 failed: worker=0: cannot fork: Resource temporarily unavailable"
        let line = try master.process.waitForLine(after: mark, containing: "reload failed: gen=2")
        #expect(Self.message(line) == "reload failed: \(reason); gen=1 keeps serving")
        Self.expectReloadFailed(result, reason)
        #expect(try HTTPClient.get(port: master.port).generation == "1")

        try Self.prlimit(master.process.pid, "--nproc=\(original):")
        Self.expectReloadOK(try master.client(["reload", "--wait"]), generation: 3)
        let report = load.stop()
        Self.expectNoFailures(report)
    }

    /// Changes a limit of the unprivileged master. prlimit runs as nobody too: without
    /// CAP_SYS_RESOURCE (containers drop it) only a process of the same user may change another's
    /// limits, and only the soft limit is changed, which needs no privilege.
    static func prlimit(_ pid: pid_t, _ limit: String) throws {
        let tool = try SupervisedProcess(
            executable: asNobody[0], arguments: Array(asNobody.dropFirst()) + ["/usr/bin/prlimit", "--pid", String(pid), limit])
        defer { tool.cleanup(reportedGroups: false) }
        let status = try tool.waitForExit()
        try #require(status == .exited(0), "prlimit \(limit): \(status): \(tool.lines)")
    }

    /// The soft RLIMIT_NPROC of a process (`unlimited` or a number), from /proc/PID/limits.
    static func softProcessLimit(_ pid: pid_t) -> String? {
        guard let limits = try? String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8),
            let line = limits.split(separator: "\n").first(where: { $0.hasPrefix("Max processes") })
        else { return nil }
        return line.dropFirst("Max processes".count).split(separator: " ").first.map(String.init)
    }
}
