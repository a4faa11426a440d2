import BatonTestSupport
import Foundation
import Testing

extension IntegrationTests {
    /// Stopping: graceful, fast, and the master's own death.
    @Suite struct Stop {
        @Test func termDrainsEverythingAndExitsZero() throws {
            let baton = try BatonFixture(workers: 2)
            defer { baton.cleanup() }
            let pids = baton.workerPIDs(generation: 1)
            let mark = baton.process.mark()
            baton.process.signal(SIGTERM)
            try baton.process.waitForLine(after: mark, containing: "gen=1 draining (stopping)")
            #expect(try baton.process.waitForExit() == .exited(0))
            for pid in pids { #expect(!processExists(pid), "worker \(pid) outlived the master") }
            #expect(baton.process.lines.contains { $0.hasSuffix("stopped") })
        }

        @Test func quitKillsWorkersThatIgnoreTheDrain() throws {
            let baton = try BatonFixture(workers: 1, workerArguments: ["--ready-delay", "20", "--ignore-drain"])
            defer { baton.cleanup() }
            let pid = try #require(baton.workerPIDs(generation: 1).first)
            baton.process.signal(SIGQUIT)
            #expect(try baton.process.waitForExit(timeout: .seconds(10)) == .exited(0))
            #expect(!processExists(pid))
        }

        @Test func secondInterruptEscalatesToFastStop() throws {
            let baton = try BatonFixture(workers: 1, workerArguments: ["--ready-delay", "20", "--ignore-drain"])
            defer { baton.cleanup() }
            let mark = baton.process.mark()
            baton.process.signal(SIGINT)
            try baton.process.waitForLine(after: mark, containing: "gen=1 draining (stopping)")
            baton.process.signal(SIGINT)
            #expect(try baton.process.waitForExit(timeout: .seconds(10)) == .exited(0))
        }

        /// Two connections a graceful stop would wait for: one idle between keep-alive requests,
        /// one with a request in flight that takes two minutes to answer, against a drain timeout
        /// of a minute. `baton stop --now` ends both at once.
        @Test func stopNowEndsKeepAliveConnectionsLongBeforeTheDrainTimeout() throws {
            let baton = try BatonFixture(workers: 2, batonArguments: ["--drain-timeout", "60s"])
            defer { baton.cleanup() }
            let workers = baton.workerPIDs(generation: 1)
            try #require(workers.count == 2)
            let (idle, busy) = try Self.heldConnections(baton)
            defer { idle.close(); busy.close() }

            let started = ContinuousClock.now
            let result = try baton.client(["stop", "--now"])
            #expect(result.status == .exited(0), "\(result.output)")
            #expect(result.output == "stopping")
            #expect(try baton.process.waitForExit(timeout: .seconds(30)) == .exited(0))
            let took = ContinuousClock.now - started
            #expect(took < .seconds(20), "took \(took): not a fast stop")
            // Closed without an answer: waitForServerClose throws if a byte arrives first.
            #expect(try busy.waitForServerClose() < .seconds(20))
            #expect(try idle.waitForServerClose() < .seconds(20))
            for pid in workers { #expect(waitUntilGone(pid, timeout: .seconds(10)), "worker \(pid) still runs") }
            #expect(baton.process.lines.contains { $0.hasSuffix("stopping now: killing every worker") })
            #expect(!baton.process.lines.contains { $0.contains("drain deadline reached") })
        }

        /// A graceful stop held up by a request in flight can be turned into a fast one.
        @Test func stopNowEscalatesAGracefulStopHeldUpByARequestInFlight() throws {
            let baton = try BatonFixture(workers: 1, batonArguments: ["--drain-timeout", "60s"])
            defer { baton.cleanup() }
            let pid = try #require(baton.workerPIDs(generation: 1).first)
            let (idle, busy) = try Self.heldConnections(baton)
            defer { idle.close(); busy.close() }

            let mark = baton.process.mark()
            let graceful = try baton.client(["stop"])
            #expect(graceful.status == .exited(0), "\(graceful.output)")
            try baton.process.waitForLine(after: mark, containing: "gen=1 draining (stopping)")
            // The worker drains: the idle connection goes after its grace, the busy one stays.
            try baton.process.waitForLine(after: mark, containing: "pid=\(pid)] draining after SIGTERM: stopped accepting, 2 connections open")
            #expect(try idle.waitForServerClose() < .seconds(20))
            #expect(processExists(pid) && baton.process.exitStatus == nil, "the in-flight request holds the drain")

            let started = ContinuousClock.now
            let fast = try baton.client(["stop", "--now"])
            #expect(fast.status == .exited(0), "\(fast.output)")
            #expect(try baton.process.waitForExit(timeout: .seconds(30)) == .exited(0))
            #expect(ContinuousClock.now - started < .seconds(20), "not a fast stop")
            #expect(try busy.waitForServerClose() < .seconds(20))
            #expect(waitUntilGone(pid, timeout: .seconds(10)))
            #expect(baton.process.lines[mark...].contains { $0.hasSuffix("stopping now: killing every worker") })
        }

        /// A keep-alive connection that got an answer and now sits idle, and one whose request
        /// (`/slow`, two minutes) is still being answered; both accepted by a worker.
        static func heldConnections(_ baton: BatonFixture) throws -> (idle: KeepAliveConnection, busy: KeepAliveConnection) {
            let idle = try KeepAliveConnection(port: baton.port, timeout: .seconds(30))
            let answer = try idle.get()
            #expect(answer.status == 200 && answer.generation == "1" && !idle.serverSaidClose, "\(answer)")
            let busy = try KeepAliveConnection(port: baton.port, timeout: .seconds(30))
            #expect(try busy.get().status == 200)
            try busy.send(busy.request("/slow?ms=120000"))
            return (idle, busy)
        }

        @Test func killedMasterMakesItsWorkersDrainAndExit() throws {
            let baton = try BatonFixture(workers: 2)
            defer { baton.cleanup() }
            let pids = baton.workerPIDs(generation: 1)
            try #require(pids.count == 2)
            baton.process.signal(SIGKILL)
            _ = try baton.process.waitForExit()
            // PR_SET_PDEATHSIG delivers the drain signal: the workers drain and exit on their own.
            for pid in pids {
                #expect(waitUntilGone(pid, timeout: .seconds(20)), "worker \(pid) survived its master")
            }
        }
    }
}
