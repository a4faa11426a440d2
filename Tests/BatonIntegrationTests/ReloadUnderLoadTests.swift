import BatonTestSupport
import Foundation
import Testing

extension IntegrationTests {
    /// The promise itself: requests keep flowing through many reloads and not one fails.
    @Suite struct ReloadUnderLoad {
        @Test func twentyReloadsWithShortAndKeepAliveClientsFailNoRequest() throws {
            // Idle grace 1.5 s: longer than any keep-alive client's 100 ms gap between requests.
            let baton = try BatonFixture(
                workers: 2, workerArguments: ["--ready-delay", "20", "--idle-grace", "1500"])
            defer { baton.cleanup() }
            let load = LoadGenerator.start(
                port: baton.port, shortClients: 4, keepAliveClients: 8,
                keepAliveGap: .milliseconds(100), shortGap: .milliseconds(2), maxDuration: .seconds(300))
            var servingTimes: [Duration] = []
            var goneTimes: [Duration] = []
            for generation in 2...21 {
                let times = try baton.reload(to: generation)
                servingTimes.append(times.serving)
                goneTimes.append(times.oldGone ?? .zero)
                // The old generation has exited: every new connection is answered by the new one.
                for _ in 0..<3 {
                    let response = try baton.get()
                    #expect(response.generation == String(generation), "answered by \(response.body)")
                }
                // Let every kind of client reach the new generation before the next reload.
                _ = try load.waitForReport(timeout: .seconds(30)) { ($0.perGeneration[String(generation)] ?? 0) >= 100 }
            }
            let report = load.stop()
            print("reload under load: \(report)")
            print("signal → new generation serving: \(summary(servingTimes)); signal → old generation gone: \(summary(goneTimes))")
            #expect(report.failed == 0, "failures: \(report.failures)")
            #expect(report.served > 500, "too little load to prove anything: \(report.served) requests")
            #expect(report.perGeneration.count >= 15, "load did not reach most generations: \(report.perGeneration)")
        }

        func summary(_ times: [Duration]) -> String {
            let millis = times.map { Double($0.components.seconds) * 1000 + Double($0.components.attoseconds) / 1e15 }.sorted()
            guard let first = millis.first, let last = millis.last else { return "-" }
            let median = millis[millis.count / 2]
            return String(format: "min %.0f ms, median %.0f ms, max %.0f ms", first, median, last)
        }
    }
}
