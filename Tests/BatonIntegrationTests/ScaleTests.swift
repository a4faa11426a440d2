import BatonTestSupport
import Foundation
import Testing

extension IntegrationTests {
    /// The worker count at run time: SIGTTIN/SIGTTOU and `baton scale N`, under load.
    @Suite struct Scale {
        @Test func ttinTtouAndScaleChangeTheServingGenerationAndTheNextOne() throws {
            let baton = try BatonFixture(workers: 2, workerArguments: ["--ready-delay", "20", "--idle-grace", "1500"])
            defer { baton.cleanup() }
            let load = LoadGenerator.start(port: baton.port, shortClients: 2, keepAliveClients: 4)

            var mark = baton.process.mark()
            baton.process.signal(SIGTTIN)
            try baton.process.waitForLine(after: mark, containing: "scale: 2 → 3 workers per generation")
            try baton.process.waitForLine(after: mark, containing: "gen=1 worker=2 pid=")
            try baton.process.waitForLine(after: mark) { $0.contains("gen=1 worker=2 pid=") && $0.contains(" ready in ") }
            #expect(baton.workerPIDs(generation: 1).count == 3)

            mark = baton.process.mark()
            baton.process.signal(SIGTTOU)
            try baton.process.waitForLine(after: mark, containing: "scale: 3 → 2 workers per generation")
            baton.process.signal(SIGTTOU)
            try baton.process.waitForLine(after: mark, containing: "scale: 2 → 1 workers per generation")
            let retired = try baton.waitForLines(2, after: mark, containing: "retired by scale: draining")
            #expect(retired.contains { $0.contains("gen=1 worker=2 pid=") })
            #expect(retired.contains { $0.contains("gen=1 worker=1 pid=") })
            try baton.process.waitForLine(after: mark) { $0.contains("gen=1 worker=2 pid=") && $0.contains("exited with status 0") }
            try baton.process.waitForLine(after: mark) { $0.contains("gen=1 worker=1 pid=") && $0.contains("exited with status 0") }
            // Retired workers are not restarted.
            #expect(!baton.process.lines[mark...].contains { $0.contains("restarting in") })
            // TTOU at one worker changes nothing.
            baton.process.signal(SIGTTOU)
            try baton.process.waitForLine(after: mark, containing: "scale: already 1 worker(s) per generation")

            mark = baton.process.mark()
            let scaled = try baton.client(["scale", "3"])
            #expect(scaled.status == .exited(0), "\(scaled.output)")
            #expect(scaled.output.contains("workers: 3"), "\(scaled.output)")
            try baton.waitForLines(2, after: mark, containing: " ready in ")
            let status = try baton.client(["status", "--json"])
            let data = try #require(status.output.data(using: .utf8))
            let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            let generations = try #require(json["generations"] as? [[String: Any]])
            let workers = try #require(generations.first?["workers"] as? [[String: Any]])
            #expect(workers.filter { $0["state"] as? String == "ready" }.count == 3, "\(workers)")

            // The next generation starts with the new count.
            try baton.reload(to: 2)
            #expect(baton.workerPIDs(generation: 2).count == 3)

            _ = try load.waitForReport(timeout: .seconds(30)) { $0.served > 50 }
            let report = load.stop()
            #expect(report.failed == 0, "failures: \(report.failures)")
            #expect(report.served > 50)
        }

        @Test func scaleIsRefusedOutOfRangeByTheClient() throws {
            let baton = try BatonFixture(workers: 1)
            defer { baton.cleanup() }
            let result = try baton.client(["scale", "0"])
            #expect(result.status == .exited(2), "\(result.output)")
            #expect(baton.workerPIDs(generation: 1).count == 1)
        }
    }
}
