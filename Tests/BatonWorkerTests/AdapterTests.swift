import BatonTestSupport
import BatonWorker
import BatonWorkerLifecycle
import BatonWorkerNIO
import Foundation
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
import Testing

@Suite struct AdapterTests {
    /// The `ss -ltn` Send-Q of the listening socket on `port`: its backlog.
    static func listenBacklog(port: Int) throws -> Int? {
        let ss = try SupervisedProcess(executable: "/usr/bin/ss", arguments: ["-ltnH", "sport = :\(port)"])
        defer { ss.cleanup() }
        _ = try ss.waitForExit(timeout: .seconds(30))
        _ = try? ss.waitForLine(after: ss.mark(), timeout: .seconds(5)) { _ in false }
        let fields = ss.lines.first?.split(separator: " ", omittingEmptySubsequences: true) ?? []
        return fields.count > 2 ? Int(fields[2]) : nil
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/ss")))
    func nioAdoptionKeepsTheConfiguredBacklog() async throws {
        let worker = try BatonWorker.start(standalone: [("http", "tcp://127.0.0.1:0")], backlog: 33, drainSignals: [])
        let listener = try #require(worker.listeners.first)
        let port = try #require(Int(listener.address?.split(separator: ":").last ?? ""))
        #expect(try Self.listenBacklog(port: port) == 33)
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(listener) { channel in channel.eventLoop.makeSucceededVoidFuture() }
        // NIO listen()ed again with 128; the adapter put the listener's backlog back.
        #expect(try Self.listenBacklog(port: port) == 33)
        try await server.channel.close()
    }

    /// A service that records whether the group shut it down gracefully.
    final class Recorder: Service {
        let shutDown = Mutex(false)

        func run() async throws {
            try? await gracefulShutdown()
            shutDown.withLock { $0 = true }
        }
    }

    @Test func theDrainRequestShutsTheServiceGroupDownGracefully() async throws {
        let worker = try BatonWorker.start(drainSignals: [])
        let recorder = Recorder()
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: recorder), .batonDrain(worker)], gracefulShutdownSignals: [],
                logger: .init(label: "test")))
        async let running: Void = group.run()
        worker.requestDrain(timeout: .seconds(5))
        try await running
        #expect(recorder.shutDown.withLock { $0 })
    }
}
