import BatonTestSupport
import Foundation
import Testing

extension IntegrationTests {
    /// `compat = ["einhorn"]` and `compat = ["server-starter"]`: workers written for those
    /// supervisors, knowing nothing of baton's own variables, move to baton unchanged.
    @Suite struct Compatibility {
        static func fixture(_ name: String) -> String { WorkerInterface.fixtures + "/" + name }

        /// Reloads `count` times under 4 short and 8 keep-alive clients and returns the report.
        static func reloadUnderLoad(_ baton: BatonFixture, reloads: ClosedRange<Int>) throws -> LoadReport {
            let load = LoadGenerator.start(
                port: baton.port, shortClients: 4, keepAliveClients: 8,
                keepAliveGap: .milliseconds(100), shortGap: .milliseconds(5), maxDuration: .seconds(240))
            for generation in reloads {
                try baton.reload(to: generation)
                #expect(try baton.get().generation == String(generation))
                _ = try load.waitForReport(timeout: .seconds(60)) { ($0.perGeneration[String(generation)] ?? 0) >= 200 }
            }
            return load.stop()
        }

        @Test func einhornWorkerGetsItsVariablesAcksOnItsSocketAndDrainsOnSIGUSR2UnderLoad() throws {
            let python = try WorkerInterface.python()
            let config = WorkerInterface.config(
                listeners: [("http", "tcp://127.0.0.1:0")],
                command: [python, Self.fixture("einhorn_worker.py")],
                program: ["workers = 2", "compat = [\"einhorn\"]", "ready_timeout = \"30s\""])
            let (baton, directory, _) = try WorkerInterface.start(config: config)
            defer {
                baton.cleanup()
                directory.cleanup()
            }
            // Serving at all proves worker:ack counted: the workers never send READY=1.
            let environment = try baton.get("/env").body.split(separator: "\n").map(String.init)
            #expect(environment.contains("EINHORN_FD_COUNT=1"))
            #expect(environment.contains("EINHORN_FD_0=3"))
            #expect(environment.contains("EINHORN_MASTER_PID=\(baton.process.pid)"))
            #expect(environment.contains { $0 == "EINHORN_CHILD_INDEX=0" || $0 == "EINHORN_CHILD_INDEX=1" })
            let socketPath = try #require(environment.first { $0.hasPrefix("EINHORN_SOCK_PATH=") }.map { String($0.dropFirst(18)) })
            #expect(FileManager.default.fileExists(atPath: socketPath))
            // Both acks (JSON from worker 0, the Ruby client's YAML from worker 1) made a worker ready.
            try baton.waitForLines(2, containing: "] worker pid=")
            #expect(baton.process.lines.filter { $0.contains("gen=1 worker=") && $0.contains(" ready in ") }.count == 2)

            let mark = baton.process.mark()
            let report = try Self.reloadUnderLoad(baton, reloads: 2...6)
            print("einhorn compat reload under load: \(report)")
            #expect(report.failed == 0, "failures: \(report.failures)")
            #expect(report.served > 1000, "too little load to prove anything: \(report.served) requests")
            // Every old worker drained on SIGUSR2 (SIGTERM would have killed it outright).
            let drained = baton.process.lines[mark...].filter { $0.contains("] draining after SIGUSR2") }
            #expect(drained.count == 10, "\(drained)")
            #expect(!baton.process.lines.contains { $0.contains("killed by") || $0.contains("rejected line") })

            baton.process.signal(SIGTERM)
            #expect(try baton.process.waitForExit() == .exited(0))
            #expect(!FileManager.default.fileExists(atPath: socketPath))
            #expect(!FileManager.default.fileExists(atPath: (socketPath as NSString).deletingLastPathComponent))
        }

        @Test func einhornAckFromAProcessOutsideEveryWorkerIsIgnored() throws {
            let python = try WorkerInterface.python()
            // A worker that never acks: the ack comes from the test, which is no worker's session.
            let script = #"import os, time; print("sock=" + os.environ["EINHORN_SOCK_PATH"], flush=True); time.sleep(60)"#
            let config = WorkerInterface.config(
                listeners: [("http", "tcp://127.0.0.1:0")], command: [python, "-c", script],
                program: ["workers = 1", "compat = [\"einhorn\"]", "ready_timeout = \"60s\""])
            let (baton, directory, _) = try WorkerInterface.start(config: config, waitForServing: false)
            defer {
                baton.cleanup()
                directory.cleanup()
            }
            let line = try baton.process.waitForLine(containing: "] sock=")
            let path = try #require(line.range(of: "] sock=").map { String(line[$0.upperBound...]) })
            let pid = try #require(baton.workerPIDs(generation: 1).first)
            let client = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(client) }
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                for (index, byte) in path.utf8.enumerated() { raw[index] = byte }
            }
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            #expect(connected == 0)
            let ack = Array("{\"command\":\"worker:ack\",\"pid\":\(pid)}\n".utf8)
            #expect(send(client, ack, ack.count, 0) == ack.count)
            try baton.process.waitForLine(containing: "ignored worker:ack from pid=\(getpid()): not in a live worker's session")
            #expect(!baton.process.lines.contains { $0.contains("gen=1 serving") })
        }

        @Test func serverStarterWorkerFindsEveryListenerInSERVER_STARTER_PORTAndReloadsUnderLoad() throws {
            let python = try WorkerInterface.python()
            let directory = try TemporaryDirectory()
            defer { directory.cleanup() }
            let unixPath = directory.file("web.sock")
            let config = WorkerInterface.config(
                listeners: [("http", "tcp://127.0.0.1:0"), ("local", "unix:\(unixPath)")],
                command: [python, Self.fixture("server_starter_worker.py")],
                program: ["workers = 2", "compat = [\"server-starter\"]", "ready = \"delay\"", "ready_delay = \"300ms\""])
            let (baton, configDirectory, _) = try WorkerInterface.start(config: config)
            defer {
                baton.cleanup()
                configDirectory.cleanup()
            }
            let environment = try baton.get("/env").body.split(separator: "\n").map(String.init)
            #expect(environment.contains("SERVER_STARTER_PORT=127.0.0.1:\(baton.port)=3;\(unixPath)=4"))
            #expect(environment.contains("SERVER_STARTER_GENERATION=1"))
            #expect(try HTTPClient.get(unixPath: unixPath).generation == "1")

            let mark = baton.process.mark()
            let report = try Self.reloadUnderLoad(baton, reloads: 2...6)
            print("server-starter compat reload under load: \(report)")
            #expect(report.failed == 0, "failures: \(report.failures)")
            #expect(report.served > 1000, "too little load to prove anything: \(report.served) requests")
            #expect(try HTTPClient.get(unixPath: unixPath).generation == "6")
            let drained = baton.process.lines[mark...].filter { $0.contains("] draining after SIGTERM") }
            #expect(drained.count == 10, "\(drained)")
            #expect(!baton.process.lines.contains { $0.contains("killed by") })
        }
    }
}
