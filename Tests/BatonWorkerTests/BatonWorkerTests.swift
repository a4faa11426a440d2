import BatonCore
import BatonTestSupport
import CBaton
import Foundation
import Testing

@testable import BatonWorker

/// The worker library outside baton (binding itself), its drain request, and the channel handover.
/// `drainSignals: []` everywhere: a test must not take SIGTERM/SIGINT from the test runner.
@Suite struct BatonWorkerTests {
    @Test func outsideBatonItBindsEveryAddressItIsGivenAndDescribesIt() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let path = directory.file("web.sock")
        let worker = try BatonWorker.start(
            standalone: [
                ("http", "tcp://127.0.0.1:0"), ("http", "tcp://[::1]:0"), ("local", "unix:\(path)"),
                ("dns", "udp://127.0.0.1:0"),
            ],
            backlog: 55, drainSignals: [])
        defer { for listener in worker.listeners { close(listener.fd) } }
        #expect(worker.handoff == .standalone)
        #expect(worker.generation == nil && worker.workerIndex == nil)
        #expect(worker.listeners.map(\.name) == ["http", "http", "local", "dns"])
        #expect(worker.listeners(named: "http").count == 2)
        #expect(worker.listeners.allSatisfy { $0.backlog == 55 })
        #expect(worker.listeners.map(\.isStream) == [true, true, true, false])
        let addresses = worker.listeners.map { $0.address ?? "" }
        #expect(addresses[0].hasPrefix("tcp://127.0.0.1:") && !addresses[0].hasSuffix(":0"))
        #expect(addresses[1].hasPrefix("tcp://[::1]:"))
        #expect(addresses[2] == "unix:\(path)")
        #expect(addresses[3].hasPrefix("udp://127.0.0.1:"))
        // It listens: a connection completes before anything accepts it.
        let port = try #require(Int(addresses[0].split(separator: ":").last ?? ""))
        let client = try KeepAliveConnection(port: port, timeout: .seconds(5))
        client.close()
        // Outside baton (and systemd) there is nobody to tell.
        if ProcessInfo.processInfo.environment["NOTIFY_SOCKET"] == nil { #expect(!worker.ready()) }
    }

    @Test func anAddressThatCannotBeBoundNamesTheListener() {
        #expect(throws: BatonWorkerError.self) {
            _ = try BatonWorker.start(standalone: [("http", "tcp://127.0.0.1")], drainSignals: [])
        }
        do {
            _ = try BatonWorker.start(standalone: [("admin", "unix:relative/path")], drainSignals: [])
            Issue.record("a relative unix path was accepted")
        } catch {
            #expect(error.description.hasPrefix("listener admin: "))
        }
    }

    @Test func aDrainRequestReachesEveryKindOfWaiterWithItsDeadline() async throws {
        let worker = try BatonWorker.start(drainSignals: [])
        #expect(worker.currentDrain == nil)
        let stream = worker.drainRequests
        let (called, calledContinuation) = AsyncStream<BatonDrainRequest>.makeStream()
        worker.onDrain { calledContinuation.yield($0) }
        async let awaited = worker.drainRequested()
        worker.requestDrain(timeout: .seconds(5))
        let first = await awaited
        #expect(first.source == .program)
        #expect(first.timeout == .seconds(5))
        #expect(first.deadline == first.receivedAt + .seconds(5))
        var streamIterator = stream.makeAsyncIterator()
        #expect(await streamIterator.next() == first)
        var calledIterator = called.makeAsyncIterator()
        #expect(await calledIterator.next() == first)
        // Later waiters learn of it at once; a second request reaches the streams as a hint.
        #expect(await worker.drainRequested() == first)
        worker.requestDrain(timeout: .seconds(1))
        #expect(await streamIterator.next()?.timeout == .seconds(1))
        #expect(worker.currentDrain == first)
    }

    @Test func theChannelHandoverIsReadAcrossSeveralMessages() throws {
        var ends: [Int32] = [-1, -1]
        #expect(socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &ends) == 0)
        defer { close(ends[0]); close(ends[1]) }
        // 300 sockets need two messages (at most 252 fds each).
        let names = (0..<300).map { $0 < 150 ? "http" : "admin" }
        let sockets = names.map { _ in socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        let masterEnd = ends[0]
        defer { for fd in sockets { close(fd) } }
        let messages = ChannelProtocol.handoff(names: names, generation: 7)
        #expect(messages.count == 2)
        let sender = Thread {
            for message in messages {
                let bytes = Array(message.text.utf8)
                let fds = Array(sockets[message.sockets])
                _ = bytes.withUnsafeBytes { raw in
                    fds.withUnsafeBufferPointer { baton_send_with_fds(masterEnd, raw.baseAddress, raw.count, $0.baseAddress, Int32($0.count)) }
                }
            }
        }
        sender.start()
        let handover = try Discovery.receiveHandover(channel: ends[1])
        defer { for fd in handover.fds { close(fd) } }
        #expect(handover.fds.count == 300)
        #expect(handover.names == names)
        #expect(handover.generation == 7)
        #expect(handover.fds.allSatisfy { WorkerSockets.socketType($0) == Int32(SOCK_STREAM.rawValue) })
    }

    @Test func aClosedChannelBeforeTheHandoverIsAnError() {
        var ends: [Int32] = [-1, -1]
        #expect(socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &ends) == 0)
        close(ends[0])
        defer { close(ends[1]) }
        #expect(throws: BatonWorkerError("channel handover: the master closed the channel")) {
            _ = try Discovery.receiveHandover(channel: ends[1])
        }
    }
}
