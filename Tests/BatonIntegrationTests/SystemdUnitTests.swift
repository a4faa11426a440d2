import BatonTestSupport
import Foundation
import Testing

extension IntegrationTests {
    /// The shipped `packaging/baton.service`, with only its paths changed, under a real systemd 252
    /// booted as PID 1 of a private PID+mount namespace by `scripts/systemd-in-a-namespace.sh`
    /// (research/systemd.md §5). What the unit promises operators, checked end to end: start,
    /// `systemctl reload` that reports the truth, the fd store across a master crash, and stop.
    ///
    /// Skipped, with the reason, where such a namespace cannot be made (not root, no util-linux,
    /// no systemd, or a sandbox that forbids namespaces).
    @Suite struct SystemdUnit {
        static let unit = "baton.service"

        @Test(.enabled(if: SystemdNamespace.unavailableReason == nil, SystemdNamespace.skipComment))
        func shippedUnitStartsReloadsSurvivesAMasterCrashAndStops() throws {
            let systemd = try SystemdNamespace()
            defer { systemd.cleanup() }
            let port = try SystemdNamespace.unusedPort()
            try install(in: systemd, port: port)
            try systemd.boot()
            var figures: [String] = []

            try start(systemd, port: port, figures: &figures)
            try reloads(systemd, port: port, figures: &figures)
            try masterCrash(systemd, port: port, figures: &figures)
            try stop(systemd, port: port, figures: &figures)
            print("systemd 252 unit test: " + figures.joined(separator: "; "))
        }

        // MARK: - Set-up

        /// The binaries, the configuration and the shipped unit with its paths pointed at the work
        /// directory (the namespace hides /tmp, so nothing may live there).
        private func install(in systemd: SystemdNamespace, port: Int) throws {
            let bin = systemd.file("bin")
            try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
            for source in [try Binaries.baton(), try Binaries.batonMaster(), try Binaries.batonConfig(), try Binaries.testWorker()] {
                let target = bin + "/" + (source as NSString).lastPathComponent
                try FileManager.default.copyItem(atPath: source, toPath: target)
                try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: target)
            }
            let config = systemd.file("baton.toml")
            try """
            [[listener]]
            name = "http"
            address = "tcp://127.0.0.1:\(port)"

            [program]
            name = "sdtest"
            command = ["\(bin)/baton-test-worker", "--switches-file", "\(systemd.file("switches"))", "--ready-delay", "50", "--idle-grace", "300"]
            workers = 2
            ready_timeout = "20s"
            drain_timeout = "10s"

            """.write(toFile: config, atomically: true, encoding: .utf8)

            let shipped = try String(contentsOfFile: Self.shippedUnitPath, encoding: .utf8)
            let unit = Self.testUnit(from: shipped, bin: bin, config: config, log: systemd.logPath)
            // The unit under test must be the shipped one, run from our paths: a change of the
            // shipped paths must fail here rather than quietly test something else.
            let lines = unit.split(separator: "\n").map(String.init)
            try #require(lines.contains("ExecStart=\(bin)/baton run --config \(config)"), "unit:\n\(unit)")
            try #require(lines.contains("ExecReload=\(bin)/baton reload --wait --config \(config)"), "unit:\n\(unit)")
            try #require(!unit.contains("/usr/bin/baton") && !unit.contains("/etc/baton/"), "unit:\n\(unit)")
            _ = try systemd.writeUnit(named: Self.unit, unit)
        }

        /// `packaging/baton.service` with the binary and configuration paths replaced, output
        /// appended to `log`, and DefaultDependencies=no (research/systemd.md §5). Nothing else
        /// changes.
        static func testUnit(from shipped: String, bin: String, config: String, log: String) -> String {
            let replaced = shipped
                .replacingOccurrences(of: "/usr/bin/baton", with: bin + "/baton")
                .replacingOccurrences(of: "/etc/baton/baton.toml", with: config)
            var lines: [String] = []
            for line in replaced.split(separator: "\n", omittingEmptySubsequences: false) {
                lines.append(String(line))
                switch line.trimmingCharacters(in: .whitespaces) {
                case "[Unit]": lines.append("DefaultDependencies=no")
                case "[Service]": lines += ["StandardOutput=append:\(log)", "StandardError=inherit"]
                default: break
                }
            }
            return lines.joined(separator: "\n")
        }

        /// The repository's `packaging/baton.service`, found from this file's path.
        static var shippedUnitPath: String {
            repositoryRoot + "/packaging/baton.service"
        }

        static var repositoryRoot: String {
            // Tests/BatonIntegrationTests/SystemdUnitTests.swift
            var url = URL(fileURLWithPath: #filePath)
            for _ in 0..<3 { url.deleteLastPathComponent() }
            return url.path
        }

        // MARK: - 1. Start

        private func start(_ systemd: SystemdNamespace, port: Int, figures: inout [String]) throws {
            let started = try systemd.systemctl("start", Self.unit)
            try #require(started.status == .exited(0), "systemctl start: \(started)\n\(systemd.logTail())")
            figures.append("start \(started.milliseconds) ms")
            let state = try systemd.show("ActiveState", "NFileDescriptorStore", "StatusText")
            #expect(state["ActiveState"] == "active")
            // The self-bound listener went to the fd store, before READY=1.
            #expect(state["NFileDescriptorStore"] == "1", "\(state)")
            #expect(state["StatusText"]?.contains("serving") == true, "\(state)")
            let log = systemd.log()
            // ExecStartPre=baton check ran first; then the master bound the listener itself.
            #expect(log.contains("configuration ok"), "\(systemd.logTail())")
            #expect(log.contains("listener=http address=tcp://127.0.0.1:\(port) bound"), "\(systemd.logTail())")
            #expect(try HTTPClient.get(port: port).generation == "1")
        }

        // MARK: - 2. and 3. Reloads under load

        private func reloads(_ systemd: SystemdNamespace, port: Int, figures: inout [String]) throws {
            let load = LoadGenerator.start(
                port: port, shortClients: 2, keepAliveClients: 4, keepAliveGap: .milliseconds(50),
                shortGap: .milliseconds(5), maxDuration: .seconds(120))
            defer { _ = load.stop() }
            try load.waitForReport { ($0.perGeneration["1"] ?? 0) >= 20 }

            // ExecReload=baton reload --wait: systemctl returns 0 only once the new generation is ready.
            let reload = try systemd.systemctl("reload", Self.unit)
            let logAtReturn = systemd.log()
            #expect(reload.status == .exited(0), "systemctl reload: \(reload)\n\(systemd.logTail())")
            #expect(logAtReturn.contains("gen=2 serving: 2/2 ready"), "gen 2 not ready when systemctl reload returned")
            figures.append("systemctl reload \(reload.milliseconds) ms")
            try load.waitForReport { ($0.perGeneration["2"] ?? 0) >= 20 }
            try systemd.waitForLog(containing: "gen=1 exited")
            let afterReload = try systemd.show("ActiveState", "StatusText")
            #expect(afterReload["ActiveState"] == "active")
            #expect(afterReload["StatusText"]?.contains("gen 2 serving") == true, "\(afterReload)")

            // A new generation whose workers exit before READY=1: systemctl reload fails, the
            // service stays active and generation 2 keeps serving.
            try "--exit-before-ready 3\n".write(toFile: systemd.file("switches"), atomically: true, encoding: .utf8)
            let failing = try systemd.systemctl("reload", Self.unit)
            #expect(failing.status != .exited(0), "systemctl reload of a failing generation: \(failing)")
            figures.append("failing systemctl reload \(failing.milliseconds) ms (\(failing.status))")
            #expect(systemd.log().contains("reload failed: gen=3 failed"), "\(systemd.logTail())")
            let afterFailure = try systemd.show("ActiveState", "StatusText", "MainPID")
            #expect(afterFailure["ActiveState"] == "active", "\(afterFailure)")
            #expect(afterFailure["StatusText"]?.contains("gen 2 serving") == true, "\(afterFailure)")
            #expect(afterFailure["StatusText"]?.contains("last reload failed") == true, "\(afterFailure)")
            let servedBy2 = load.snapshot().perGeneration["2"] ?? 0
            try load.waitForReport { ($0.perGeneration["2"] ?? 0) >= servedBy2 + 20 }

            let report = load.stop()
            #expect(report.failed == 0, "failures during the reloads: \(report)")
            #expect(report.perGeneration["3"] == nil, "the failed generation answered: \(report)")
            figures.append("reloads under load: \(report.served) served, \(report.failed) failed")
        }

        // MARK: - 4. kill -9 of the master under load

        private func masterCrash(_ systemd: SystemdNamespace, port: Int, figures: inout [String]) throws {
            // The restarted master starts generation 1 again: it must be a healthy one.
            try "".write(toFile: systemd.file("switches"), atomically: true, encoding: .utf8)
            let load = LoadGenerator.start(
                port: port, shortClients: 2, keepAliveClients: 4, keepAliveGap: .milliseconds(50),
                shortGap: .milliseconds(5), maxDuration: .seconds(120))
            defer { _ = load.stop() }
            try load.waitForReport { ($0.perGeneration["2"] ?? 0) >= 20 }

            let before = try systemd.show("MainPID", "NRestarts")
            let namespacePID = try #require(before["MainPID"].flatMap { pid_t($0) }, "\(before)")
            let master = try #require(systemd.hostPID(ofNamespacePID: namespacePID), "no host pid for MainPID \(namespacePID)")
            let logMark = systemd.log().utf8.count

            let killedAt = monotonicMicroseconds()
            try #require(kill(master, SIGKILL) == 0, "kill -9 \(master): \(String(cString: strerror(errno)))")
            // Wait until systemd has noticed: from then on the old workers are SIGKILLed or gone
            // (KillMode=mixed kills what is left of the cgroup before a restart) and the new master
            // is not ready yet, for about RestartSec= plus a start.
            var states: [String] = []
            let gapState = try systemd.poll("systemd to notice the crash of MainPID \(namespacePID)") {
                let state = try systemd.show("MainPID", "ActiveState", "SubState")
                let name = "\(state["ActiveState"] ?? "?")/\(state["SubState"] ?? "?")"
                if states.last != name { states.append(name) }
                return name == "active/running" && state["MainPID"] == String(namespacePID) ? nil : state
            }
            let inGap = !(gapState["ActiveState"] == "active" && gapState["SubState"] == "running")
            // A client that connects in the gap waits in the stored socket's accept queue.
            let clock = ContinuousClock()
            let connected = clock.now
            let gapClient = Result { () throws(HTTPClientError) in try HTTPClient.get(port: port, timeout: .seconds(30)) }
            let gapLatency = clock.now - connected

            let restarted = try systemd.poll("a restarted master (MainPID other than \(namespacePID), active)") {
                let state = try systemd.show(
                    "MainPID", "ActiveState", "SubState", "NRestarts", "NFileDescriptorStore", "ActiveEnterTimestampMonotonic")
                let name = "\(state["ActiveState"] ?? "?")/\(state["SubState"] ?? "?")"
                if states.last != name { states.append(name) }
                let mainPID = state["MainPID"] ?? "0"
                return state["ActiveState"] == "active" && mainPID != "0" && mainPID != String(namespacePID) ? state : nil
            }
            figures.append("unit states after kill -9: " + states.joined(separator: " → "))
            #expect(restarted["NRestarts"] == "1", "\(restarted)")
            #expect(restarted["NFileDescriptorStore"] == "1", "\(restarted)")
            let activeAt = restarted["ActiveEnterTimestampMonotonic"].flatMap { UInt64($0) } ?? 0
            let gapMilliseconds = activeAt > killedAt ? Int((activeAt - killedAt) / 1000) : -1

            // The listener came back from the fd store; nothing was bound anew.
            let newLog = String(decoding: Array(systemd.log().utf8).dropFirst(logMark), as: UTF8.self)
            #expect(newLog.contains("listener=http address=tcp://127.0.0.1:\(port) received from systemd"), "log since the kill:\n\(newLog)")
            #expect(!newLog.contains("listener=http address=tcp://127.0.0.1:\(port) bound"), "log since the kill:\n\(newLog)")

            #expect(inGap, "the restart gap was not observed: \(states)")
            switch gapClient {
            case .success(let response):
                // Answered by the new master's first generation: the old workers were gone.
                #expect(response.status == 200 && response.generation == "1", "client in the gap: \(response)")
                figures.append("client connected in the gap (\(gapState["ActiveState"] ?? "?")/\(gapState["SubState"] ?? "?")) served by gen \(response.generation ?? "?") after \(wholeMilliseconds(gapLatency)) ms")
            case .failure(let error):
                Issue.record("client connected in the gap failed after \(wholeMilliseconds(gapLatency)) ms: \(error.kind.rawValue): \(error.detail)")
            }

            // Generation 1 of the new master serves the load.
            try load.waitForReport { ($0.perGeneration["1"] ?? 0) >= 20 }
            let report = load.stop()
            figures.append("kill -9 → active again \(gapMilliseconds) ms (READY=1 of the new master)")
            figures.append("load across the crash: \(report)")
            // Every failure is listed (at most 20 are kept), and none is a refused connection: the
            // port never closed. Failures at all can only be connections the killed master's
            // workers held when systemd SIGKILLed what was left of the service's cgroup.
            #expect(report.failures.count == report.failed, "\(report)")
            #expect(!report.failures.contains { $0.kind == .refused }, "refused connections across the crash: \(report)")
            let allowed: Set<HTTPClientError.Kind> = [.reset, .emptyReply, .shortReply]
            #expect(report.failures.allSatisfy { allowed.contains($0.kind) }, "\(report)")
        }

        // MARK: - 5. Stop

        private func stop(_ systemd: SystemdNamespace, port: Int, figures: inout [String]) throws {
            let logMark = systemd.log().utf8.count
            let stopped = try systemd.systemctl("stop", Self.unit)
            #expect(stopped.status == .exited(0), "systemctl stop: \(stopped)")
            figures.append("systemctl stop \(stopped.milliseconds) ms")
            let state = try systemd.show("ActiveState", "Result", "NFileDescriptorStore", "MainPID")
            #expect(state["ActiveState"] == "inactive", "\(state)")
            #expect(state["Result"] == "success", "\(state)")
            // systemctl stop empties the fd store: the port is closed.
            #expect(state["NFileDescriptorStore"] == "0", "\(state)")
            #expect(state["MainPID"] == "0", "\(state)")
            let newLog = String(decoding: Array(systemd.log().utf8).dropFirst(logMark), as: UTF8.self)
            #expect(newLog.contains("gen=1 exited"), "log of the stop:\n\(newLog)")
            #expect(!newLog.contains("SIGKILL"), "log of the stop:\n\(newLog)")
            // No process of ours is left (systemctl stop returns once the cgroup is empty).
            let left = try? systemd.poll("no process left from \(systemd.file("bin"))", timeout: .seconds(10)) {
                systemd.processesOfOurs().isEmpty ? true : nil
            }
            #expect(left == true, "left over: \(systemd.processesOfOurs())")
            do {
                let response = try HTTPClient.get(port: port, timeout: .seconds(5))
                Issue.record("port \(port) still answers after systemctl stop: \(response)")
            } catch {
                #expect(error.kind == .refused, "after stop: \(error.kind.rawValue): \(error.detail)")
            }
        }
    }
}

// MARK: - The namespace

/// A throw-away systemd 252, PID 1 of its own PID+mount namespace, booted by
/// `scripts/systemd-in-a-namespace.sh` in a fresh work directory under /var/lib/baton-tests
/// (outside /tmp, which the namespace hides). `cleanup()` SIGKILLs that systemd, which ends every
/// process of the namespace, and removes the work directory.
final class SystemdNamespace {
    /// The parent of every work directory.
    static let baseDirectory = "/var/lib/baton-tests"

    /// Why the namespace cannot be made on this machine; nil when it can.
    static let unavailableReason: String? = findUnavailableReason()

    static var skipComment: Comment {
        Comment(rawValue: "systemd-in-a-namespace unavailable: \(unavailableReason ?? "")")
    }

    /// One command's outcome.
    struct CommandResult: CustomStringConvertible {
        var status: BatonTestSupport.ExitStatus
        var output: String
        var took: Duration
        var milliseconds: Int { wholeMilliseconds(took) }
        var description: String { "\(status) after \(milliseconds) ms: \(output)" }
    }

    let workDirectory: String
    var logPath: String { file("baton.log") }
    private var systemdPID: pid_t?
    private var bootScript: SupervisedProcess?

    /// Creates the work directory (nothing is booted yet).
    init() throws {
        try FileManager.default.createDirectory(
            atPath: Self.baseDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var template = Array("\(Self.baseDirectory)/run.XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw TestSupportError("mkdtemp in \(Self.baseDirectory): \(String(cString: strerror(errno)))")
        }
        workDirectory = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    deinit { cleanup() }

    func file(_ name: String) -> String {
        workDirectory + "/" + name
    }

    /// Writes a unit into the directory the script mounts over /etc/systemd/system.
    func writeUnit(named name: String, _ text: String) throws -> String {
        let units = file("units")
        try FileManager.default.createDirectory(atPath: units, withIntermediateDirectories: true)
        let path = units + "/" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Runs the script and waits until the namespaced systemd answers systemctl.
    func boot() throws {
        // In the repository, not ../shared: CI runs a fresh clone.
        let script = IntegrationTests.SystemdUnit.repositoryRoot + "/scripts/systemd-in-a-namespace.sh"
        let process = try SupervisedProcess(
            executable: "/bin/sh", arguments: [script, workDirectory], environment: Self.environment)
        bootScript = process
        let status = try process.waitForExit(timeout: .seconds(60))
        _ = try? process.waitForLine(after: process.mark(), timeout: .seconds(5)) { _ in false }
        let text = (try? String(contentsOfFile: file("systemd.pid"), encoding: .utf8)) ?? ""
        if let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 1 {
            systemdPID = pid
        }
        guard status == .exited(0), systemdPID != nil else {
            throw TestSupportError(
                "\(script) \(status): \(process.lines.joined(separator: "\n"))\nboot.log:\n\(bootLog())")
        }
        _ = try poll("the namespaced systemd to finish booting") {
            let state = try systemctl("is-system-running").output
            return ["running", "degraded"].contains(state) ? state : nil
        }
    }

    /// `nsenter -t SYSTEMD -m -p -- systemctl ARGUMENTS…`.
    func systemctl(_ arguments: String..., timeout: Duration = .seconds(60)) throws -> CommandResult {
        try systemctl(arguments, timeout: timeout)
    }

    func systemctl(_ arguments: [String], timeout: Duration) throws -> CommandResult {
        guard let systemdPID else { throw TestSupportError("systemd is not booted") }
        return try Self.run(
            Self.tool("nsenter") ?? "nsenter",
            ["-t", String(systemdPID), "-m", "-p", "--", "systemctl"] + arguments, timeout: timeout)
    }

    /// `systemctl show -p …` of the unit under test, as a dictionary.
    func show(_ properties: String...) throws -> [String: String] {
        var arguments = ["show", IntegrationTests.SystemdUnit.unit]
        for property in properties { arguments += ["-p", property] }
        let result = try systemctl(arguments, timeout: .seconds(30))
        guard result.status == .exited(0) else { throw TestSupportError("systemctl show: \(result)") }
        var values: [String: String] = [:]
        for line in result.output.split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            values[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        return values
    }

    /// Polls `probe` every 20 ms until it returns a value; throws at the deadline. systemd offers
    /// no event a test outside the namespace could wait for, hence the polling.
    func poll<T>(_ what: String, timeout: Duration = .seconds(30), _ probe: () throws -> T?) throws -> T {
        let deadline = ContinuousClock.now + timeout
        var lastError: (any Error)?
        while true {
            do {
                if let value = try probe() { return value }
            } catch {
                lastError = error
            }
            if ContinuousClock.now >= deadline {
                throw TestSupportError(
                    "no \(what) within \(timeout)\(lastError.map { " (last error: \($0))" } ?? "")\n\(logTail())")
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
    }

    /// Waits until the unit's log contains `text`.
    func waitForLog(containing text: String, timeout: Duration = .seconds(30)) throws {
        _ = try poll("line containing \(text.debugDescription) in \(logPath)", timeout: timeout) {
            log().contains(text) ? true : nil
        }
    }

    /// Everything the unit's processes printed so far (StandardOutput=append:).
    func log() -> String {
        (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
    }

    func logTail(_ count: Int = 40) -> String {
        let lines = log().split(separator: "\n").suffix(count)
        return "last \(lines.count) lines of \(logPath):\n" + lines.map { "  | " + $0 }.joined(separator: "\n")
    }

    func bootLog() -> String {
        (try? String(contentsOfFile: file("boot.log"), encoding: .utf8)) ?? ""
    }

    /// The host pid of a process that has `pid` in the namespace (the last field of NSpid).
    func hostPID(ofNamespacePID pid: pid_t) -> pid_t? {
        guard let systemdPID, let namespace = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(systemdPID)/ns/pid")
        else { return nil }
        for candidate in Self.allPIDs() {
            guard (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(candidate)/ns/pid")) == namespace,
                let status = try? String(contentsOfFile: "/proc/\(candidate)/status", encoding: .utf8),
                let line = status.split(separator: "\n").first(where: { $0.hasPrefix("NSpid:") }),
                line.split(whereSeparator: { $0 == " " || $0 == "\t" }).last.flatMap({ pid_t($0) }) == pid
            else { continue }
            return candidate
        }
        return nil
    }

    /// Live processes running one of the binaries copied into the work directory.
    func processesOfOurs() -> [pid_t] {
        let prefix = file("bin") + "/"
        return Self.allPIDs().filter { pid in
            let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")) ?? ""
            return executable.hasPrefix(prefix) && processExists(pid)
        }
    }

    /// SIGKILLs the namespaced systemd (the kernel then kills every process of its namespace),
    /// anything still running from the work directory's binaries, and removes the work
    /// directory. Idempotent.
    func cleanup() {
        if let pid = systemdPID {
            systemdPID = nil
            // Only the process the script named, and only while it is still that systemd.
            let name = (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines)
            if name == "systemd" { _ = kill(pid, SIGKILL) }
            waitUntilGone(pid, timeout: .seconds(30))
        }
        // The script's process group: unshare, once its child is gone.
        bootScript?.cleanup(reportedGroups: false)
        bootScript = nil
        for pid in processesOfOurs() { _ = kill(pid, SIGKILL) }
        if FileManager.default.fileExists(atPath: workDirectory) {
            try? FileManager.default.removeItem(atPath: workDirectory)
        }
    }

    // MARK: - Helpers

    static let environment = ["PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"]

    /// Runs a command to its end (bounded) and returns its status and output.
    static func run(_ executable: String, _ arguments: [String], timeout: Duration) throws -> CommandResult {
        let clock = ContinuousClock()
        let started = clock.now
        let process = try SupervisedProcess(executable: executable, arguments: arguments, environment: environment)
        defer { process.cleanup(reportedGroups: false) }
        let status = try process.waitForExit(timeout: timeout)
        let took = clock.now - started
        // Returns (by throwing) once the output has been read to its end.
        _ = try? process.waitForLine(after: process.mark(), timeout: .seconds(5)) { _ in false }
        let output = process.lines.joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
        return CommandResult(status: status, output: output, took: took)
    }

    /// The absolute path of a tool in the usual system directories.
    static func tool(_ name: String) -> String? {
        for directory in ["/usr/bin", "/bin", "/usr/sbin", "/sbin"] {
            let path = directory + "/" + name
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    static func allPIDs() -> [pid_t] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { pid_t($0) }
    }

    /// A TCP port on 127.0.0.1 that was free a moment ago. The namespace shares the host's
    /// network, so the test reaches the unit's listener directly.
    static func unusedPort() throws -> Int {
        try ListeningSocket().port
    }

    private static func findUnavailableReason() -> String? {
        guard geteuid() == 0 else { return "needs root (unshare, mounts, systemd as PID 1)" }
        for name in ["unshare", "nsenter"] where tool(name) == nil {
            return "no \(name) (util-linux)"
        }
        guard tool("pgrep") != nil else { return "no pgrep (procps)" }
        guard FileManager.default.isExecutableFile(atPath: "/lib/systemd/systemd") else { return "no /lib/systemd/systemd" }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: "/var/log/journal", isDirectory: &isDirectory), isDirectory.boolValue
        else { return "no /var/log/journal directory (the script mounts a tmpfs there)" }
        // A sandbox may forbid new namespaces even to root: try the script's own unshare call.
        guard let unshare = tool("unshare"),
            let probe = try? run(unshare, ["--pid", "--fork", "--mount", "--propagation", "private", "--mount-proc", "--", "true"], timeout: .seconds(30))
        else { return "unshare could not be run" }
        guard probe.status == .exited(0) else { return "unshare --pid --mount fails here: \(probe.output)" }
        return nil
    }
}

/// A duration in whole milliseconds, for the figures the test prints.
private func wholeMilliseconds(_ duration: Duration) -> Int {
    let (seconds, attoseconds) = duration.components
    return Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000)
}

/// CLOCK_MONOTONIC in microseconds, the clock of systemd's `…TimestampMonotonic` properties (the
/// namespace shares it: there is no time namespace).
private func monotonicMicroseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
}
