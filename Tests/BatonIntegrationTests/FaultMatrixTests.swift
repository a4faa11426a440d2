import BatonTestSupport
import Foundation
import Testing

extension IntegrationTests {
    /// baton's promise, fault by fault: with load running, a misbehaving new generation, a broken
    /// deploy or a hostile burst of requests never costs a request (except where a process is
    /// SIGKILLed: then only its own connections may fail), and each fault is reported exactly:
    /// the master's log line, `reload --wait`'s exit code and message, `status`.
    ///
    /// The cases are split over `FaultMatrix*Tests.swift`; this file holds the faults of a new
    /// generation's workers.
    @Suite struct FaultMatrix {
        // MARK: - Shared checks

        /// The message of a master log line, without its timestamp and level.
        static func message(_ line: String) -> String {
            let parts = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3, parts[0].first?.isNumber == true else { return line }
            return String(parts[2])
        }

        /// The level word of a master log line (INFO, WARNING, ERROR...).
        static func level(_ line: String) -> String {
            let parts = line.split(separator: " ", maxSplits: 2)
            return parts.count == 3 ? String(parts[1]) : ""
        }

        /// Waits until the load has answered `count` more requests, so a fault meets real traffic.
        static func awaitTraffic(_ load: LoadGenerator, _ count: Int = 20) throws {
            let before = load.snapshot().served
            try load.waitForReport(timeout: .seconds(30)) { $0.served >= before + count }
        }

        static func expectNoFailures(_ report: LoadReport, sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(report.failed == 0, "failed requests: \(report)", sourceLocation: sourceLocation)
            #expect(report.served > 0, "no request was served: \(report)", sourceLocation: sourceLocation)
        }

        /// A failed `reload --wait`: exit 1, `baton: reload failed: <reason>` on stderr.
        static func expectReloadFailed(
            _ result: (status: BatonTestSupport.ExitStatus, output: String), _ reason: String,
            sourceLocation: SourceLocation = #_sourceLocation
        ) {
            #expect(result.status == .exited(1), "\(result.output)", sourceLocation: sourceLocation)
            #expect(result.output.contains("baton: reload failed: \(reason)"), "\(result.output)", sourceLocation: sourceLocation)
        }

        /// A successful `reload --wait`: exit 0, `reload ok: gen=N serving in …`.
        static func expectReloadOK(
            _ result: (status: BatonTestSupport.ExitStatus, output: String), generation: Int,
            sourceLocation: SourceLocation = #_sourceLocation
        ) {
            #expect(result.status == .exited(0), "\(result.output)", sourceLocation: sourceLocation)
            #expect(result.output.contains("reload ok: gen=\(generation) serving in "), "\(result.output)", sourceLocation: sourceLocation)
        }

        /// The one `reload failed: gen=N failed: worker=W pid=P …` line after `mark`, and W and P.
        static func failedWorker(_ process: SupervisedProcess, after mark: Int, generation: Int) throws
            -> (line: String, worker: String, pid: String)
        {
            let line = try process.waitForLine(after: mark, containing: "reload failed: gen=\(generation) failed: worker=")
            let worker = try #require(FaultClient.value(of: "worker", in: line))
            let pid = try #require(FaultClient.value(of: "pid", in: line))
            return (message(line), worker, pid)
        }

        // MARK: - A new generation's workers misbehave

        @Test func newGenerationCrashesOnStart() throws {
            let baton = try BatonFixture(workers: 2)
            defer { baton.cleanup() }
            let load = LoadGenerator.start(port: baton.port, shortClients: 2, keepAliveClients: 4)
            defer { _ = load.stop() }
            try Self.awaitTraffic(load)
            try baton.setNextGenerationSwitches("--crash-at-start")
            let mark = baton.process.mark()
            let result = try baton.client(["reload", "--wait"])

            let (line, worker, pid) = try Self.failedWorker(baton.process, after: mark, generation: 2)
            let reason = "gen=2 failed: worker=\(worker) pid=\(pid) killed by SIGABRT before ready"
            #expect(line == "reload failed: \(reason); gen=1 keeps serving")
            Self.expectReloadFailed(result, reason)
            #expect(result.output.contains("last output of the failing worker:\n  | crashing at start"), "\(result.output)")
            try baton.process.waitForLine(after: mark, containing: "gen=2 exited")
            let status = try FaultClient.status(controlPath: baton.controlPath)
            #expect(FaultClient.generations(status).map(\.number) == [1])
            #expect(FaultClient.generations(status).map(\.state) == ["serving"])

            let report = load.stop()
            Self.expectNoFailures(report)
            #expect(report.perGeneration["2"] == nil, "gen 2 must never serve: \(report)")
        }

        @Test func newGenerationHangsBeforeReady() throws {
            let baton = try BatonFixture(workers: 2, batonArguments: ["--ready-timeout", "2s"])
            defer { baton.cleanup() }
            let load = LoadGenerator.start(port: baton.port, shortClients: 2, keepAliveClients: 4)
            defer { _ = load.stop() }
            try Self.awaitTraffic(load)
            try baton.setNextGenerationSwitches("--never-ready")
            let mark = baton.process.mark()
            let result = try baton.client(["reload", "--wait"])

            let pids = baton.workerPIDs(generation: 2)
            try #require(pids.count == 2)
            let reason = "gen=2 failed: not ready within 2s: 0/2 workers ready (worker=0 pid=\(pids[0]))"
            let line = try baton.process.waitForLine(after: mark, containing: "reload failed: gen=2")
            #expect(Self.message(line) == "reload failed: \(reason); gen=1 keeps serving")
            #expect(Self.level(line) == "ERROR")
            Self.expectReloadFailed(result, reason)
            // The hung workers are told to drain like any failed generation, and they do.
            try baton.process.waitForLine(after: mark, containing: "gen=2 exited")
            #expect(pids.allSatisfy { !processExists($0) })
            #expect(try baton.get().generation == "1")

            let report = load.stop()
            Self.expectNoFailures(report)
            #expect(report.perGeneration["2"] == nil, "gen 2 must never serve: \(report)")
        }

        /// The worker sends READY=1 and exits at once. The master sees READY=1 first (the datagram
        /// precedes the exit), so gen 2 is promoted and its worker then crashes: that is a serving
        /// worker's crash, replaced after the backoff. Connections wait in the shared accept queue
        /// meanwhile, so not one fails. (Were the exit seen first, the reload would fail instead,
        /// with `exited with status 3 before ready`; the test accepts only the first outcome, which
        /// is the one the event order gives.)
        @Test func newGenerationExitsRightAfterReady() throws {
            let baton = try BatonFixture(workers: 1)
            defer { baton.cleanup() }
            let load = LoadGenerator.start(port: baton.port, shortClients: 2, keepAliveClients: 4)
            defer { _ = load.stop() }
            try Self.awaitTraffic(load)
            // Only the first process of gen 2 misbehaves: its replacement serves.
            try baton.setNextGenerationSwitches("--exit-after-ready 3 --fault-once \(baton.directory.file("fault-claimed"))")
            let mark = baton.process.mark()
            let result = try baton.client(["reload", "--wait"])
            Self.expectReloadOK(result, generation: 2)

            let first = try #require(baton.workerPIDs(generation: 2).first)
            let crash = try baton.process.waitForLine(after: mark, containing: "gen=2 worker=0 pid=\(first) exited")
            #expect(Self.message(crash) == "gen=2 worker=0 pid=\(first) exited with status 3; restarting in 100ms")
            #expect(Self.level(crash) == "WARNING")
            try baton.process.waitForLine(after: mark, containing: "pid=\(first) | exiting with 3 right after ready")
            // The replacement becomes ready and takes the queued connections.
            try baton.process.waitForLine(after: mark) { line in
                line.contains("gen=2 worker=0 pid=") && line.contains(" ready in ") && !line.contains("pid=\(first) ")
            }
            try load.waitForReport { $0.perGeneration["2", default: 0] >= 20 }
            let status = try FaultClient.status(controlPath: baton.controlPath)
            let generations = status["generations"] as? [[String: Any]] ?? []
            let gen2 = try #require(generations.first { $0["number"] as? Int == 2 })
            let workers = gen2["workers"] as? [[String: Any]] ?? []
            #expect(gen2["state"] as? String == "serving")
            #expect(workers.first?["restarts"] as? Int == 1)
            #expect(workers.first?["state"] as? String == "ready")

            let report = load.stop()
            Self.expectNoFailures(report)
        }

        /// Gen 2 ignores its drain: at `drain_timeout` the master SIGKILLs it. Only connections
        /// that gen 2's workers held at that moment may fail (at most one request per client).
        @Test func generationIgnoringTheDrainIsKilledAtTheDeadline() throws {
            let baton = try BatonFixture(workers: 2, batonArguments: ["--drain-timeout", "2s"])
            defer { baton.cleanup() }
            let clients = (short: 2, keepAlive: 4)
            let load = LoadGenerator.start(port: baton.port, shortClients: clients.short, keepAliveClients: clients.keepAlive)
            defer { _ = load.stop() }
            try Self.awaitTraffic(load)
            try baton.setNextGenerationSwitches("--ignore-drain")
            Self.expectReloadOK(try baton.client(["reload", "--wait"]), generation: 2)
            try baton.process.waitForLine(containing: "gen=1 exited")
            try load.waitForReport { $0.perGeneration["2", default: 0] >= 20 }
            let stubborn = baton.workerPIDs(generation: 2)
            try #require(stubborn.count == 2)

            try baton.setNextGenerationSwitches("")
            let mark = baton.process.mark()
            Self.expectReloadOK(try baton.client(["reload", "--wait"]), generation: 3)
            try baton.process.waitForLine(after: mark) { $0.contains("| ignoring SIGTERM") }
            let deadline = try baton.process.waitForLine(after: mark, timeout: .seconds(30), containing: "gen=2 drain timeout")
            #expect(Self.message(deadline) == "gen=2 drain timeout (2s): killing 2 worker(s)")
            #expect(Self.level(deadline) == "WARNING")
            for pid in stubborn {
                let killed = try baton.process.waitForLine(after: mark, containing: "pid=\(pid) killed by")
                #expect(Self.message(killed).hasSuffix("pid=\(pid) killed by SIGKILL"), "\(killed)")
            }
            try baton.process.waitForLine(after: mark, containing: "gen=2 exited")
            #expect(stubborn.allSatisfy { !processExists($0) })
            try load.waitForReport { $0.perGeneration["3", default: 0] >= 20 }

            let report = load.stop()
            // A client loses at most the request it had on a killed worker; none is refused.
            #expect(report.failed <= clients.short + clients.keepAlive, "\(report)")
            #expect(report.failures.allSatisfy { $0.kind != .refused }, "\(report)")
            #expect(report.perGeneration["3", default: 0] > 0)
        }

        /// Gen 2's worker forks a grandchild (which blocks the drain signals, like a daemonised
        /// helper) and exits. The exit fails the reload; the grandchild, now the master's child
        /// through the subreaper, is SIGKILLed with its process group and reaped by the master:
        /// it does not linger, and no zombie is left.
        @Test func newGenerationForksAGrandchildAndExits() throws {
            let baton = try BatonFixture(workers: 1, batonArguments: ["--log-level", "debug"])
            defer { baton.cleanup() }
            let load = LoadGenerator.start(port: baton.port, shortClients: 2, keepAliveClients: 4)
            defer { _ = load.stop() }
            try Self.awaitTraffic(load)
            try baton.setNextGenerationSwitches("--fork-grandchild")
            let mark = baton.process.mark()
            let result = try baton.client(["reload", "--wait"])

            let (line, worker, pid) = try Self.failedWorker(baton.process, after: mark, generation: 2)
            let reason = "gen=2 failed: worker=\(worker) pid=\(pid) exited with status 0 before ready"
            #expect(line == "reload failed: \(reason); gen=1 keeps serving")
            Self.expectReloadFailed(result, reason)
            #expect(result.output.contains("  | forked grandchild pid="), "\(result.output)")

            try baton.process.waitForLine(after: mark, timeout: .seconds(30), containing: "gen=2 exited")
            let grandchildren = baton.process.lines[mark...].compactMap { line -> pid_t? in
                guard let range = line.range(of: "grandchild pid=") else { return nil }
                return pid_t(line[range.upperBound...].prefix { $0.isNumber })
            }
            #expect(Set(grandchildren).count == 1, "\(baton.process.lines[mark...])")
            for grandchild in Set(grandchildren) {
                // Reaped by the master itself (`waitid(P_ALL)` as the subreaper), not by init.
                let reaped = try baton.process.waitForLine(after: mark, containing: "reaped pid=\(grandchild) ")
                #expect(Self.message(reaped) == "reaped pid=\(grandchild) (killed by SIGKILL), not a worker")
                #expect(!processExists(grandchild))
            }
            #expect(ProcFacts.zombieChildren(of: baton.process.pid).isEmpty)
            let children = ProcFacts.children(of: baton.process.pid)
            #expect(Set(children.map(\.pid)) == Set(baton.workerPIDs(generation: 1)), "\(children)")

            let report = load.stop()
            Self.expectNoFailures(report)
        }

        /// Gen 2 closes its copies of the `admin` listener at once. The master's copy, and with it
        /// the accept queue, lives on: a connection made while no worker holds the socket waits
        /// there and is answered by gen 3. The `http` load never notices.
        @Test func newGenerationClosesItsCopyOfAListenerEarly() throws {
            let baton = try BatonFixture(
                workers: 2, listen: ["http=tcp://127.0.0.1:0", "admin=tcp://127.0.0.1:0"])
            defer { baton.cleanup() }
            let adminLine = try baton.process.waitForLine(containing: "listener=admin address=tcp://")
            let adminPort = try #require(BatonFixture.port(in: adminLine))
            let load = LoadGenerator.start(port: baton.port, shortClients: 2, keepAliveClients: 4)
            defer { _ = load.stop() }
            try Self.awaitTraffic(load)
            try baton.setNextGenerationSwitches("--close-listener admin")
            let mark = baton.process.mark()
            Self.expectReloadOK(try baton.client(["reload", "--wait"]), generation: 2)
            for pid in baton.workerPIDs(generation: 2) {
                try baton.process.waitForLine(after: mark, containing: "pid=\(pid)] closed listener admin early")
            }
            try baton.process.waitForLine(after: mark, containing: "gen=1 exited")
            #expect(try baton.get("/listeners").body == "http ipv4 127.0.0.1:\(baton.port)\n")

            // Nobody accepts on admin now; the kernel still completes the handshake into the queue.
            let waiting = try KeepAliveConnection(port: adminPort, timeout: .seconds(30))
            defer { waiting.close() }
            try waiting.send(waiting.request("/"))
            let status = try FaultClient.status(controlPath: baton.controlPath)
            let listeners = status["listeners"] as? [[String: Any]] ?? []
            #expect(listeners.compactMap { $0["address"] as? String }.contains("tcp://127.0.0.1:\(adminPort)"))

            try baton.setNextGenerationSwitches("")
            Self.expectReloadOK(try baton.client(["reload", "--wait"]), generation: 3)
            let answer = try waiting.readResponse()
            #expect(answer.status == 200)
            #expect(answer.generation == "3")

            let report = load.stop()
            Self.expectNoFailures(report)
        }
    }
}
