import BatonTestSupport
import Foundation
import Testing

extension IntegrationTests {
    /// What a worker receives: its listeners by name at fds 3…, nothing else, and an environment
    /// that describes baton, never the master's own systemd.
    @Suite struct Handoff {
        @Test func everyListenerArrivesWithItsName() throws {
            let directory = try TemporaryDirectory()
            defer { directory.cleanup() }
            let socketPath = directory.file("local.sock")
            let baton = try BatonFixture(
                workers: 1,
                listen: ["http=tcp://127.0.0.1:0", "http6=tcp://[::1]:0", "local=unix:\(socketPath)"])
            defer { baton.cleanup() }
            let v6Line = try baton.process.waitForLine(containing: "listener=http6 address=tcp://[::1]:")
            let v6Port = try #require(BatonFixture.port(in: v6Line))

            let listing = try baton.get("/listeners").body.split(separator: "\n").map(String.init)
            #expect(listing == [
                "http ipv4 127.0.0.1:\(baton.port)",
                "http6 ipv6 [::1]:\(v6Port)",
                "local unix \(socketPath)",
            ])
            // Each one serves.
            #expect(try HTTPClient.get(host: "::1", port: v6Port).status == 200)
            #expect(try HTTPClient.get(unixPath: socketPath).status == 200)
            // The socket file is the master's: mode kept across generations, removed at exit.
            try baton.reload(to: 2)
            #expect(try HTTPClient.get(unixPath: socketPath).generation == "2")
            baton.process.signal(SIGTERM)
            #expect(try baton.process.waitForExit() == .exited(0))
            #expect(!FileManager.default.fileExists(atPath: socketPath))
        }

        @Test func workerHoldsOnlyStdioAndItsListeners() throws {
            let worker = try Binaries.testWorker()
            // `ls` lists the shell's fds, as the shell received them from baton, then the shell
            // execs the worker (same pid, so LISTEN_PID matches).
            let script = "echo fds-begin; ls /proc/$$/fd; echo fds-end; exec \(worker) --ready-delay 20"
            let baton = try BatonFixture(
                workers: 1, listen: ["a=tcp://127.0.0.1:0", "b=tcp://127.0.0.1:0", "c=unix:@baton-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"],
                command: ["/bin/sh", "-c", script])
            defer { baton.cleanup() }
            let pid = try #require(baton.workerPIDs(generation: 1).first)
            let prefix = "[sh gen=1 pid=\(pid)] "
            let lines = baton.process.lines.filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }
            let begin = try #require(lines.firstIndex(of: "fds-begin"))
            let end = try #require(lines.firstIndex(of: "fds-end"))
            let fds = lines[(begin + 1)..<end].compactMap { Int($0) }.sorted()
            #expect(fds == [0, 1, 2, 3, 4, 5])
        }

        @Test func masterSystemdEnvironmentNeverLeaks() throws {
            let baton = try BatonFixture(
                workers: 1, workerArguments: ["--ready-delay", "20", "--print-env"],
                environment: [
                    "NOTIFY_SOCKET": "@fake-systemd-notify", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1",
                    "LISTEN_FDS": "7", "LISTEN_PID": "1", "LISTEN_FDNAMES": "a:b:c:d:e:f:g",
                    "BATON_CONTROL": "/nonexistent", "KEEP_ME": "yes",
                ])
            defer { baton.cleanup() }
            let pid = try #require(baton.workerPIDs(generation: 1).first)
            let prefix = "[baton-test-worker gen=1 pid=\(pid)] "
            var environment: [String: String] = [:]
            for line in baton.process.lines where line.hasPrefix(prefix) {
                let entry = line.dropFirst(prefix.count)
                guard let equals = entry.firstIndex(of: "=") else { continue }
                environment[String(entry[..<equals])] = String(entry[entry.index(after: equals)...])
            }
            #expect(environment["KEEP_ME"] == "yes")
            #expect(environment["NOTIFY_SOCKET"]?.hasPrefix("@baton-") == true)
            #expect(environment["WATCHDOG_USEC"] == nil)
            #expect(environment["WATCHDOG_PID"] == nil)
            #expect(environment["BATON_CONTROL"] == nil)
            #expect(environment["BATON_MASTER_LAUNCH_FD"] == nil, "what baton run hands the master is not the worker's")
            #expect(environment["LISTEN_FDS"] == "1")
            #expect(environment["LISTEN_PID"] == String(pid))
            #expect(environment["LISTEN_FDNAMES"] == "http")
            #expect(environment["BATON_GENERATION"] == "1")
            #expect(environment["BATON_WORKER"] == "0")
            #expect(environment["BATON_MASTER_PID"] == String(baton.process.pid))
            #expect(environment["BATON_LISTEN_BACKLOGS"] == "4096")
            #expect(environment["BATON_DRAIN_TIMEOUT_USEC"] == "30000000")
        }
    }
}
