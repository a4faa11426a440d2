import BatonTestSupport
import Foundation
import Testing

extension IntegrationTests {
    /// The control CLI against a real master: exit codes, status schema, stop, check.
    @Suite struct Control {
        @Test func reloadWaitExitsZeroOnceTheNewGenerationServes() throws {
            let baton = try BatonFixture(workers: 2)
            defer { baton.cleanup() }
            let load = LoadGenerator.start(port: baton.port, shortClients: 2, keepAliveClients: 4)
            let result = try baton.client(["reload", "--wait"])
            #expect(result.status == .exited(0), "\(result.output)")
            #expect(result.output.contains("reload ok: gen=2 serving"))
            // By the time the command returned, gen 2 serves.
            #expect(try baton.get().generation == "2")
            let report = load.stop()
            #expect(report.failed == 0, "failures: \(report.failures)")
        }

        @Test func reloadWaitExitsOneWithTheReasonAndTheWorkersLastWords() throws {
            let baton = try BatonFixture(workers: 1)
            defer { baton.cleanup() }
            try baton.setNextGenerationSwitches("--exit-before-ready 7")
            let result = try baton.client(["reload", "--wait"])
            #expect(result.status == .exited(1), "\(result.output)")
            #expect(result.output.contains("exited with status 7 before ready"), "\(result.output)")
            #expect(result.output.contains("exiting with 7 before ready"), "\(result.output)")
            #expect(try baton.get().generation == "1")
        }

        @Test func statusJSONDescribesTheMaster() throws {
            let baton = try BatonFixture(workers: 2)
            defer { baton.cleanup() }
            let result = try baton.client(["status", "--json"])
            #expect(result.status == .exited(0))
            let data = try #require(result.output.data(using: .utf8))
            let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            #expect(json["master_pid"] as? Int == Int(baton.process.pid))
            let listeners = try #require(json["listeners"] as? [[String: Any]])
            #expect(listeners.first?["name"] as? String == "http")
            #expect(listeners.first?["address"] as? String == "tcp://127.0.0.1:\(baton.port)")
            let generations = try #require(json["generations"] as? [[String: Any]])
            #expect(generations.count == 1)
            #expect(generations.first?["state"] as? String == "serving")
            let workers = try #require(generations.first?["workers"] as? [[String: Any]])
            #expect(Set(workers.compactMap { $0["pid"] as? Int }) == Set(baton.workerPIDs(generation: 1).map(Int.init)))
            #expect(workers.allSatisfy { $0["state"] as? String == "ready" })
        }

        @Test func stopDrainsAndTheMasterExits() throws {
            let baton = try BatonFixture(workers: 1)
            defer { baton.cleanup() }
            let result = try baton.client(["stop"])
            #expect(result.status == .exited(0))
            #expect(try baton.process.waitForExit() == .exited(0))
        }

        @Test func clientWithoutAMasterExitsThree() throws {
            let directory = try TemporaryDirectory()
            defer { directory.cleanup() }
            let child = try SupervisedProcess(
                executable: try Binaries.baton(), arguments: ["status", "--control", directory.file("none.sock")])
            defer { child.cleanup(reportedGroups: false) }
            #expect(try child.waitForExit() == .exited(3))
        }
    }
}
