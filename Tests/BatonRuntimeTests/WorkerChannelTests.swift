import BatonCore
import CBaton
import Glibc
import Testing

@testable import BatonRuntime

/// The master's end of a worker's channel, on a real SOCK_SEQPACKET pair: the outbox when the
/// socket is full, what is rejected, and a closed peer told apart from an empty message.
@Suite struct WorkerChannelTests {
    static let id = WorkerID(generation: 1, index: 0)

    /// A channel (the master's end) and the worker's end, which the caller closes.
    static func pair() throws -> (channel: WorkerChannel, worker: CInt) {
        let (master, worker) = try WorkerChannel.makePair()
        // A test that goes wrong fails at the deadline instead of blocking for ever.
        var limit = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(worker, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        return (WorkerChannel(fd: master, id: id, pid: 4242), worker)
    }

    /// Receives one message on `fd` (blocking), with up to 253 fds.
    static func receive(_ fd: CInt) -> (text: String, fds: [CInt]) {
        var buffer = [UInt8](repeating: 0, count: 70000)
        var fds = [CInt](repeating: -1, count: 253)
        var count: CInt = 0
        var truncated: CInt = 0
        let length = baton_recv_with_fds(fd, &buffer, buffer.count, &fds, 253, &count, &truncated)
        return (String(decoding: buffer.prefix(max(length, 0)), as: UTF8.self), Array(fds.prefix(Int(count))))
    }

    static func send(_ fd: CInt, _ text: String, fds: [CInt] = []) {
        let bytes = Array(text.utf8)
        _ = baton_send_with_fds(fd, bytes, bytes.count, fds, CInt(fds.count))
    }

    static func collect(_ channel: WorkerChannel, hangUp: Bool) -> (open: Bool, incoming: [String]) {
        var incoming: [String] = []
        let open = channel.receiveAll(hangUp: hangUp) { message in
            switch message {
            case .notices(let notices):
                incoming.append(notices.map { notice in
                    switch notice {
                    case .ready: "READY=1"
                    case .stopping: "STOPPING=1"
                    case .status(let text): "STATUS=\(text)"
                    case .errno(let code): "ERRNO=\(code)"
                    }
                }.joined(separator: ","))
            case .rejected(let reason): incoming.append("rejected: \(reason)")
            }
        }
        return (open, incoming)
    }

    @Test func masterEndIsNonBlockingAndBothEndsCloseOnExec() throws {
        let (channel, worker) = try Self.pair()
        defer { channel.close(); close(worker) }
        #expect(fcntl(channel.fd, F_GETFL) & O_NONBLOCK != 0)
        #expect(fcntl(worker, F_GETFL) & O_NONBLOCK == 0)
        #expect(fcntl(channel.fd, F_GETFD) & FD_CLOEXEC != 0)
        #expect(fcntl(worker, F_GETFD) & FD_CLOEXEC != 0)
    }

    @Test func aFullSocketKeepsTheRestQueuedInOrder() throws {
        let (channel, worker) = try Self.pair()
        defer { channel.close(); close(worker) }
        var ends: [CInt] = [-1, -1]
        try #require(pipe(&ends) == 0)
        defer { close(ends[0]); close(ends[1]) }
        // 60 KiB messages, far more than the socket buffer takes.
        let filler = String(repeating: "x", count: 60_000)
        for index in 0..<40 { channel.enqueue("STATUS=\(index) \(filler)", fds: [ends[0]]) }
        #expect(channel.flush() == .blocked)
        #expect(channel.hasPending)
        var received = 0
        while received < 40 {
            let message = Self.receive(worker)
            try #require(!message.text.isEmpty, "message \(received) did not arrive")
            #expect(message.text.hasPrefix("STATUS=\(received) "))
            #expect(message.fds.count == 1)
            for fd in message.fds { close(fd) }
            received += 1
            if channel.hasPending { _ = channel.flush() }
        }
        #expect(!channel.hasPending)
    }

    @Test func sendingToAClosedWorkerFails() throws {
        let (channel, worker) = try Self.pair()
        defer { channel.close() }
        close(worker)
        channel.enqueue(ChannelProtocol.drain(timeout: .seconds(1)))
        #expect(channel.flush() == .failed(EPIPE))
        #expect(!channel.hasPending)
    }

    @Test func noticesAreReadAndBadMessagesRejected() throws {
        let (channel, worker) = try Self.pair()
        defer { channel.close(); close(worker) }
        var ends: [CInt] = [-1, -1]
        try #require(pipe(&ends) == 0)
        defer { close(ends[0]) }
        Self.send(worker, "READY=1\nSTATUS=up")
        Self.send(worker, "STATUS=with an fd", fds: [ends[1]])
        close(ends[1])
        Self.send(worker, "STATUS=" + String(repeating: "y", count: 5000))
        Self.send(worker, "")
        Self.send(worker, "DRAIN=1")
        let (open, incoming) = Self.collect(channel, hangUp: false)
        #expect(open)
        #expect(incoming == [
            "READY=1,STATUS=up",
            "rejected: message carried 1 fd(s); none are expected (closed)",
            "rejected: message over 4096 bytes",
            "rejected: unknown key DRAIN (a worker may send READY, STATUS, STOPPING, ERRNO)",
        ])
        // The fd that came with the message was closed: the pipe's last write end is gone.
        var byte: UInt8 = 0
        #expect(read(ends[0], &byte, 1) == 0)
    }

    @Test func closedPeerEndsTheChannelAfterItsLastMessages() throws {
        let (channel, worker) = try Self.pair()
        defer { channel.close() }
        Self.send(worker, "")
        Self.send(worker, "READY=1")
        close(worker)
        let (open, incoming) = Self.collect(channel, hangUp: true)
        #expect(!open)
        #expect(incoming == ["READY=1"])
    }

    @Test func peerThatOnlyShutsDownItsSendingSideEndsTheChannelToo() throws {
        let (channel, worker) = try Self.pair()
        defer { channel.close(); close(worker) }
        Self.send(worker, "STOPPING=1")
        try #require(shutdown(worker, Int32(SHUT_WR)) == 0)
        // No EPOLLHUP for this: reading must still end rather than spin on EOF.
        let (open, incoming) = Self.collect(channel, hangUp: false)
        #expect(!open)
        #expect(incoming == ["STOPPING=1"])
    }

    @Test func emptyMessageAloneIsNotAClose() throws {
        let (channel, worker) = try Self.pair()
        defer { channel.close(); close(worker) }
        Self.send(worker, "")
        let (open, incoming) = Self.collect(channel, hangUp: false)
        #expect(open)
        #expect(incoming.isEmpty)
    }
}
