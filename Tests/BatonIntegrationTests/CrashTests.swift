import BatonTestSupport
import Foundation
import Testing

extension IntegrationTests {
    /// A crashed worker costs only the connections it held: it is replaced, the others serve on.
    @Suite struct Crash {
        @Test func killedWorkerIsReplacedWhileTheOthersServe() throws {
            let baton = try BatonFixture(workers: 2)
            defer { baton.cleanup() }
            let pids = baton.workerPIDs(generation: 1)
            try #require(pids.count == 2)
            let load = LoadGenerator.start(port: baton.port, shortClients: 2, keepAliveClients: 0)
            let mark = baton.process.mark()
            kill(pids[0], SIGKILL)
            try baton.process.waitForLine(after: mark, containing: "pid=\(pids[0]) killed by SIGKILL; restarting in 100ms")
            let spawned = try baton.process.waitForLine(after: mark) { $0.contains("gen=1 worker=0 pid=") && $0.hasSuffix("spawned") }
            let replacement = try #require(pid_t(spawned.split(separator: "pid=").last?.split(separator: " ").first ?? ""))
            try baton.process.waitForLine(after: mark, containing: "gen=1 worker=0 pid=\(replacement) ready")
            // Both the survivor and the replacement answer.
            var answered = Set<pid_t>()
            for _ in 0..<200 where answered.count < 2 {
                if let pid = try baton.get().pid { answered.insert(pid) }
            }
            #expect(answered == [pids[1], replacement])
            let report = load.stop()
            // Short connections: at most the one the killed worker held when it died.
            #expect(report.failed <= 2, "failures: \(report.failures)")
            #expect(report.served > 0)
        }
    }
}
