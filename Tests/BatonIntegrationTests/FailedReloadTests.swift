import BatonTestSupport
import Foundation
import Testing

extension IntegrationTests {
    /// A failing new generation never replaces the serving one, and the log says why.
    @Suite struct FailedReload {
        @Test func workerExitingBeforeReadyKeepsOldGenerationServing() throws {
            let baton = try BatonFixture(workers: 2)
            defer { baton.cleanup() }
            let load = LoadGenerator.start(port: baton.port, shortClients: 2, keepAliveClients: 4)
            try baton.setNextGenerationSwitches("--exit-before-ready 3")
            let mark = baton.process.mark()
            baton.process.signal(SIGHUP)
            let failure = try baton.process.waitForLine(after: mark, containing: "reload failed: gen=2 failed")
            #expect(failure.contains("exited with status 3 before ready"))
            #expect(failure.contains("gen=1 keeps serving"))
            // The worker's last words are quoted after the failure.
            try baton.process.waitForLine(after: mark) { $0.contains("| exiting with 3 before ready") }
            try baton.process.waitForLine(after: mark, containing: "gen=2 exited")
            let response = try baton.get()
            #expect(response.generation == "1")

            // Fixed: the next reload succeeds (no state is stuck).
            try baton.setNextGenerationSwitches("")
            try baton.reload(to: 3, replacing: 1)
            let report = load.stop()
            #expect(report.failed == 0, "failures: \(report.failures)")
            #expect(report.perGeneration["2"] == nil, "gen 2 must never serve: \(report.perGeneration)")
        }

        @Test func workerNeverReadyTimesOut() throws {
            let baton = try BatonFixture(workers: 1, batonArguments: ["--ready-timeout", "1s"])
            defer { baton.cleanup() }
            let load = LoadGenerator.start(port: baton.port, shortClients: 2, keepAliveClients: 2)
            try baton.setNextGenerationSwitches("--never-ready")
            let mark = baton.process.mark()
            baton.process.signal(SIGHUP)
            let failure = try baton.process.waitForLine(after: mark, containing: "reload failed: gen=2 failed")
            #expect(failure.contains("not ready within 1s: 0/1 workers ready"))
            try baton.process.waitForLine(after: mark, containing: "gen=2 exited")
            #expect(try baton.get().generation == "1")
            let report = load.stop()
            #expect(report.failed == 0, "failures: \(report.failures)")
        }

        @Test func missingBinaryIsReportedAndOldGenerationServes() throws {
            let directory = try TemporaryDirectory()
            defer { directory.cleanup() }
            let link = directory.file("worker")
            try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: try Binaries.testWorker())
            let baton = try BatonFixture(workers: 2, command: [link, "--ready-delay", "20"])
            defer { baton.cleanup() }
            let load = LoadGenerator.start(port: baton.port, shortClients: 2, keepAliveClients: 2)
            try FileManager.default.removeItem(atPath: link)
            let mark = baton.process.mark()
            baton.process.signal(SIGHUP)
            let failure = try baton.process.waitForLine(after: mark, containing: "reload failed: gen=2 failed")
            #expect(failure.contains("cannot execute \"\(link)\": No such file or directory"), "\(failure)")
            #expect(try baton.get().generation == "1")

            try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: try Binaries.testWorker())
            try baton.reload(to: 3, replacing: 1)
            let report = load.stop()
            #expect(report.failed == 0, "failures: \(report.failures)")
        }
    }
}
