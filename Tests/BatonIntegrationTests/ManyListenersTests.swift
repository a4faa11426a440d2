import BatonTestSupport
import Foundation
import Testing

extension IntegrationTests {
    /// 1,000 listeners reach every worker of every generation, names and order intact, in both
    /// handoff modes (the channel in four messages of at most 252 fds).
    @Suite struct ManyListeners {
        static let count = 1000

        @Test(arguments: ["listen-fds", "channel"])
        func thousandListenersReachEveryWorkerWithTheirNames(handoff: String) throws {
            let prefix = "baton-many-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            // The first is the HTTP listener the fixture finds; the rest are abstract Unix sockets
            // (no port, no file to clean up).
            var listeners = [("http", "tcp://127.0.0.1:0")]
            for index in 1..<Self.count {
                listeners.append(("l\(index)", "unix:@\(prefix)-\(index)"))
            }
            let text = WorkerInterface.config(
                listeners: listeners, command: [try Binaries.testWorker(), "--ready-delay", "20"],
                program: ["workers = 2", "handoff = \"\(handoff)\"", "ready_timeout = \"60s\"", "drain_timeout = \"10s\""])
            let clock = ContinuousClock()
            let started = clock.now
            let (baton, directory, _) = try WorkerInterface.start(config: text)
            defer { baton.cleanup(); directory.cleanup() }
            let startUp = clock.now - started
            let expected = ["http ipv4 127.0.0.1:\(baton.port)"]
                + (1..<Self.count).map { "l\($0) unix @\(prefix)-\($0)" }

            for generation in 1...2 {
                if generation == 2 {
                    let times = try baton.reload(to: 2)
                    print("\(Self.count) listeners, \(handoff): reload → gen 2 serving in \(times.serving)")
                }
                let response = try baton.get("/listeners")
                #expect(response.header("X-Baton-Generation") == String(generation))
                let listing = response.body.split(separator: "\n").map(String.init)
                let difference = zip(listing, expected).enumerated().first { $0.element.0 != $0.element.1 }?.offset
                #expect(listing == expected, "gen \(generation): \(listing.count) listeners, first difference at \(difference ?? -1)")
                // Every worker of the generation got all of them.
                let pids = baton.workerPIDs(generation: generation)
                #expect(pids.count == 2)
                for pid in pids {
                    try baton.process.waitForLine(
                        containing: "[web gen=\(generation) pid=\(pid)] worker pid=\(pid) gen=\(generation) listening on \(Self.count) sockets")
                }
            }
            if handoff == "channel" {
                // At most 252 fds per message: 252 + 252 + 252 + 244, to each of the 4 workers.
                let handovers = baton.process.lines.filter { $0.contains("] handover over the channel in ") }
                #expect(handovers.count == 4)
                #expect(handovers.allSatisfy { $0.hasSuffix(" in 4 messages") }, "\(handovers)")
            }
            print("\(Self.count) listeners, \(handoff): start-up (bind, spawn, handover, ready) in \(startUp)")
        }
    }
}
