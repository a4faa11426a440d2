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
