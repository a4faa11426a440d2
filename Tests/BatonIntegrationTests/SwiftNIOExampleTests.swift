import BatonTestSupport
import Foundation
import Testing

extension IntegrationTests {
    /// `Examples/swift-nio-server`: SwiftNIO through BatonWorker, BatonWorkerNIO and
    /// BatonWorkerLifecycle, under baton with many keep-alive clients across reloads.
    @Suite struct SwiftNIOExample {
        static func reloadUnderLoad(
            _ baton: BatonFixture, reloads: ClosedRange<Int>, keepAliveClients: Int
        ) throws -> LoadReport {
            let load = LoadGenerator.start(
                port: baton.port, shortClients: 2, keepAliveClients: keepAliveClients,
                keepAliveGap: .milliseconds(100), shortGap: .milliseconds(10), maxDuration: .seconds(300))
            for generation in reloads {
                try baton.reload(to: generation)
                #expect(try baton.get().generation == String(generation))
                // Every keep-alive client has moved over, several requests each.
                _ = try load.waitForReport(timeout: .seconds(60)) {
                    ($0.perGeneration[String(generation)] ?? 0) >= keepAliveClients * 5
                }
            }
            return load.stop()
        }

        /// The `ss -ltn` Send-Q of the listening socket on `port`: its backlog.
        static func listenBacklog(port: Int) throws -> Int? {
            let ss = try SupervisedProcess(executable: "/usr/bin/ss", arguments: ["-ltnH", "sport = :\(port)"])
            defer { ss.cleanup() }
            _ = try ss.waitForExit(timeout: .seconds(30))
            _ = try? ss.waitForLine(after: ss.mark(), timeout: .seconds(5)) { _ in false }
            let fields = ss.lines.first?.split(separator: " ", omittingEmptySubsequences: true) ?? []
            return fields.count > 2 ? Int(fields[2]) : nil
        }

        @Test func fiftyKeepAliveClientsAcrossReloadsSeeNoFailureAndTheBacklogIsKept() throws {
            let server = try Binaries.executable(named: "swift-nio-server")
            let config = WorkerInterface.config(
                listeners: [], command: [server],
                program: ["workers = 2"])
            let (baton, directory, _) = try WorkerInterface.start(
                config: "[[listener]]\nname = \"http\"\naddress = \"tcp://127.0.0.1:0\"\nbacklog = 77\n\n" + config)
            defer {
                baton.cleanup()
                directory.cleanup()
            }
            let first = try baton.get()
            #expect(first.body.hasPrefix("hello from swift-nio worker gen=1 pid="))
            // NIO called listen() again with the configured backlog, not its default of 128.
            if FileManager.default.isExecutableFile(atPath: "/usr/bin/ss") {
                #expect(try Self.listenBacklog(port: baton.port) == 77)
            }
            let mark = baton.process.mark()
            let report = try Self.reloadUnderLoad(baton, reloads: 2...5, keepAliveClients: 50)
            print("swift-nio example, 50 keep-alive clients: \(report)")
            #expect(report.failed == 0, "failures: \(report.failures)")
            #expect(report.served > 1000, "too little load to prove anything: \(report.served)")
            let lines = baton.process.lines[mark...]
            #expect(lines.filter { $0.contains("] drain after signal 15 within 30.0 seconds: stopped accepting") }.count == 8)
            #expect(lines.filter { $0.hasSuffix("] drained") }.count == 8)
            #expect(!baton.process.lines.contains { $0.contains("killed by") })
            if FileManager.default.isExecutableFile(atPath: "/usr/bin/ss") {
                #expect(try Self.listenBacklog(port: baton.port) == 77)
            }
        }

        @Test func channelHandoffCarriesReadinessAndTheDrainWithItsTimeout() throws {
            let server = try Binaries.executable(named: "swift-nio-server")
            let baton = try BatonFixture(
                workers: 2, batonArguments: ["--handoff", "channel", "--drain-timeout", "20s"], command: [server])
            defer { baton.cleanup() }
            let pid = try #require(try baton.get().pid)
            #expect(baton.process.lines.contains {
                $0.contains("[swift-nio-server gen=1 pid=\(pid)] listening http fd=") && $0.hasSuffix("backlog=4096 (channel)")
            })
            let mark = baton.process.mark()
            let report = try Self.reloadUnderLoad(baton, reloads: 2...3, keepAliveClients: 10)
            print("swift-nio example, channel handoff: \(report)")
            #expect(report.failed == 0, "failures: \(report.failures)")
            let drains = baton.process.lines[mark...].filter { $0.contains("] drain after DRAIN=1 within 20.0 seconds") }
            #expect(drains.count == 4, "\(drains)")
        }
    }
}
