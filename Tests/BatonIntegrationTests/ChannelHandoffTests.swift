import BatonTestSupport
import Foundation
import Testing

extension IntegrationTests {
    /// `handoff = "channel"`: sockets over SCM_RIGHTS, readiness and the drain on the channel, with a
    /// worker written in Python and with the test worker.
    @Suite struct ChannelHandoff {
        /// baton with the Python worker in the channel mode on `listen`.
        static func python(
            workers: Int = 2, listen: [String], arguments: [String] = []
        ) throws -> BatonFixture {
            try BatonFixture(
                workers: workers, batonArguments: ["--handoff", "channel"], listen: listen,
                command: [try WorkerInterface.python(), WorkerInterface.pythonWorker] + arguments)
        }

        @Test func pythonWorkerReceivesEveryListenerByNameServesAndDrains() throws {
            let abstract = "baton-py-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            let baton = try Self.python(listen: [
                "http=tcp://127.0.0.1:0", "http=tcp://[::1]:0", "dns=udp://127.0.0.1:0", "admin=unix:@\(abstract)",
            ])
            defer { baton.cleanup() }
            let v6Line = try baton.process.waitForLine(containing: "listener=http address=tcp://[::1]:")
            let v6Port = try #require(BatonFixture.port(in: v6Line))
            let udpPort = try baton.udpPort(listener: "dns", host: "127.0.0.1")

            let listing = try baton.get("/listeners").body.split(separator: "\n").map(String.init)
            #expect(listing == [
                "http ipv4 127.0.0.1:\(baton.port)",
                "http ipv6 [::1]:\(v6Port)",
                "dns udp4 127.0.0.1:\(udpPort)",
                "admin unix @\(abstract)",
            ])
            let first = try baton.get()
            #expect(first.body.contains("lang=python"))
            #expect(first.generation == "1")
            #expect(try HTTPClient.get(host: "::1", port: v6Port).generation == "1")
            // Everything came over the channel, nothing by LISTEN_FDS, in one message.
            let pid = try #require(first.pid)
            #expect(baton.process.lines.contains("[python3 gen=1 pid=\(pid)] handoff messages=1 fds=4"))

            let mark = baton.process.mark()
            try baton.reload(to: 2)
            #expect(try baton.get().generation == "2")
            // The old workers drained on DRAIN=1 with the drain timeout (30 s by default).
            let drained = try baton.waitForLines(2, after: mark, containing: "] draining after DRAIN=1 TIMEOUT_USEC=30000000")
            #expect(drained.allSatisfy { $0.hasPrefix("[python3 gen=1 ") })
            #expect(!baton.process.lines[mark...].contains { $0.contains("gen=1 worker=") && $0.contains("killed by") })
            baton.process.signal(SIGTERM)
            #expect(try baton.process.waitForExit() == .exited(0))
        }

        @Test func malformedChannelMessagesAreRejectedAndLoggedAndTheMasterKeepsRunning() throws {
            let directory = try TemporaryDirectory()
            defer { directory.cleanup() }
            let baton = try Self.python(workers: 1, listen: ["http=tcp://127.0.0.1:0"], arguments: ["--malformed", directory.path])
            defer { baton.cleanup() }
            let lines = baton.process.lines.filter { $0.contains("rejected message") }
            let reasons = [
                "message over 4096 bytes",
                "expected KEY=VALUE, got \"HELLO\"",
                "key \"ready\" is not [A-Z0-9_]+",
                "unknown key WATCHDOG",
                "message carried 1 fd(s); none are expected (closed)",
            ]
            for reason in reasons {
                #expect(lines.contains { $0.contains("WARNING channel: gen=1 worker=0 pid=") && $0.contains(reason) }, "\(reason)")
            }
            // The fd that came with a message is not held by the master.
            let probe = directory.file("fd-probe")
            let held = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(baton.process.pid)/fd").filter {
                (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(baton.process.pid)/fd/\($0)")) == probe
            }
            #expect(held.isEmpty)
            // READY=1 after them still counted, and the master goes on serving and reloading.
            #expect(try baton.get().generation == "1")
            try baton.reload(to: 2)
            #expect(try baton.get().generation == "2")
        }

        @Test func workerThatClosesItsChannelIsDrainedWithTheSignal() throws {
            let baton = try Self.python(workers: 1, listen: ["http=tcp://127.0.0.1:0"], arguments: ["--close-channel"])
            defer { baton.cleanup() }
            let pid = try #require(baton.workerPIDs(generation: 1).first)
            try baton.process.waitForLine(containing: "[python3 gen=1 pid=\(pid)] channel closed")
            // A closed channel is not an exit: the worker still serves and is still a worker.
            #expect(try baton.get().pid == pid)
            let mark = baton.process.mark()
            try baton.reload(to: 2)
            try baton.process.waitForLine(after: mark, containing: "[python3 gen=1 pid=\(pid)] draining after SIGTERM")
            try baton.process.waitForLine(after: mark, containing: "gen=1 worker=0 pid=\(pid) exited with status 0")
        }

        @Test func reloadUnderLoadInTheChannelModeFailsNoRequest() throws {
            let baton = try BatonFixture(
                workers: 2, batonArguments: ["--handoff", "channel"],
                workerArguments: ["--ready-delay", "20", "--idle-grace", "1500"])
            defer { baton.cleanup() }
            #expect(try baton.get("/env").body.contains("BATON_CHANNEL_FD=3\n"))
            #expect(try !baton.get("/env").body.contains("LISTEN_FDS="))
            let load = LoadGenerator.start(
                port: baton.port, shortClients: 4, keepAliveClients: 8,
                keepAliveGap: .milliseconds(100), shortGap: .milliseconds(2), maxDuration: .seconds(300))
            var serving: [Duration] = []
            for generation in 2...11 {
                let times = try baton.reload(to: generation)
                serving.append(times.serving)
                #expect(try baton.get().generation == String(generation))
                _ = try load.waitForReport(timeout: .seconds(30)) { ($0.perGeneration[String(generation)] ?? 0) >= 100 }
            }
            let report = load.stop()
            let millis = serving.map { $0.components.seconds * 1000 + $0.components.attoseconds / 1_000_000_000_000_000 }.sorted()
            print("channel mode reload under load: \(report); signal → serving: min \(millis.first ?? 0) ms, median \(millis[millis.count / 2]) ms, max \(millis.last ?? 0) ms")
            #expect(report.failed == 0, "failures: \(report.failures)")
            #expect(report.served > 300, "too little load to prove anything: \(report.served) requests")
            // Every drain went over the channel.
            #expect(baton.process.lines.filter { $0.contains("draining after DRAIN=1") }.count == 20)
            #expect(!baton.process.lines.contains { $0.contains("draining after SIGTERM") })
        }
    }
}
