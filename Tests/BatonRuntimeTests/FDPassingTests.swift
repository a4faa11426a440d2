import CBaton
import Glibc
import Testing

/// SCM_RIGHTS and SCM_CREDENTIALS through the CBaton helpers, on real socketpairs.
@Suite struct FDPassingTests {
    @Test func threeFdsArriveAsTheSameOpenFilesWithCloseOnExec() throws {
        let (sender, receiver) = try socketPair(SOCK_SEQPACKET)
        defer { close(sender); close(receiver) }
        let pipes = try (0..<3).map { _ in try pipePair() }
        defer { for pipe in pipes { close(pipe.read); close(pipe.write) } }

        let payload = Array("handoff".utf8)
        #expect(baton_send_with_fds(sender, payload, payload.count, pipes.map(\.read), 3) == payload.count)

        var buffer = [UInt8](repeating: 0, count: 64)
        var received = [CInt](repeating: -1, count: 8)
        var count: CInt = 0
        var truncated: CInt = 0
        let n = baton_recv_with_fds(receiver, &buffer, buffer.count, &received, 8, &count, &truncated)
        #expect(n == payload.count)
        #expect(Array(buffer.prefix(max(n, 0))) == payload)
        #expect(truncated == 0)
        try #require(count == 3)
        defer { for fd in received.prefix(3) { close(fd) } }

        for (index, pipe) in pipes.enumerated() {
            let fd = received[index]
            #expect(fd != pipe.read)
            #expect(try inode(fd) == inode(pipe.read))
            #expect(fcntl(fd, F_GETFD) & FD_CLOEXEC != 0)
            // Same pipe: what goes into the original write end comes out of the received fd.
            var byte = UInt8(ascii: "a") + UInt8(index)
            #expect(write(pipe.write, &byte, 1) == 1)
            var got: UInt8 = 0
            #expect(read(fd, &got, 1) == 1)
            #expect(got == byte)
        }
    }

    @Test func fdsBeyondWhatTheReceiverTakesAreClosed() throws {
        let (sender, receiver) = try socketPair(SOCK_SEQPACKET)
        defer { close(sender); close(receiver) }
        let pipes = try (0..<3).map { _ in try pipePair() }
        defer { for pipe in pipes { close(pipe.read) } }

        // Send the write ends and drop ours: a pipe reaches EOF once every copy in flight or
        // in the receiver is closed.
        #expect(baton_send_with_fds(sender, "x", 1, pipes.map(\.write), 3) == 1)
        for pipe in pipes { close(pipe.write) }

        var buffer = [UInt8](repeating: 0, count: 8)
        var taken: [CInt] = [-1]
        var count: CInt = 0
        var truncated: CInt = 0
        #expect(baton_recv_with_fds(receiver, &buffer, buffer.count, &taken, 1, &count, &truncated) == 1)
        try #require(count == 1)
        #expect(truncated == 1)

        #expect(isAtEOF(pipes[1].read, waitingMilliseconds: 10_000))
        #expect(isAtEOF(pipes[2].read, waitingMilliseconds: 10_000))
        #expect(!isAtEOF(pipes[0].read, waitingMilliseconds: 0), "the fd we took still holds pipe 0 open")
        close(taken[0])
        #expect(isAtEOF(pipes[0].read, waitingMilliseconds: 10_000))
    }

    @Test func credentialsArriveAndCarriedFdsAreClosed() throws {
        let (sender, receiver) = try socketPair(SOCK_DGRAM)
        defer { close(sender); close(receiver) }
        var on: CInt = 1
        try #require(setsockopt(receiver, SOL_SOCKET, SO_PASSCRED, &on, socklen_t(MemoryLayout<CInt>.size)) == 0)
        let pipes = try (0..<2).map { _ in try pipePair() }
        defer { for pipe in pipes { close(pipe.read) } }

        let payload = Array("READY=1".utf8)
        #expect(baton_send_with_fds(sender, payload, payload.count, pipes.map(\.write), 2) == payload.count)
        for pipe in pipes { close(pipe.write) }

        var buffer = [UInt8](repeating: 0, count: 64)
        var pid: pid_t = 0
        var uid: uid_t = 0
        var truncated: CInt = 0
        var closed: CInt = 0
        let n = baton_recv_with_credentials(receiver, &buffer, buffer.count, &pid, &uid, &truncated, &closed)
        #expect(n == payload.count)
        #expect(Array(buffer.prefix(max(n, 0))) == payload)
        #expect(pid == getpid())
        #expect(uid == getuid())
        #expect(truncated == 0)
        #expect(closed == 2)
        // The receiver's duplicates are gone: both pipes see EOF.
        for pipe in pipes { #expect(isAtEOF(pipe.read, waitingMilliseconds: 10_000)) }

        // Nothing queued: EAGAIN at once (MSG_DONTWAIT), even on a blocking socket.
        #expect(baton_recv_with_credentials(receiver, &buffer, buffer.count, &pid, &uid, &truncated, &closed) == -1)
        #expect(errno == EAGAIN)
    }

    @Test func withoutPassCredNoCredentialsAreReported() throws {
        let (sender, receiver) = try socketPair(SOCK_DGRAM)
        defer { close(sender); close(receiver) }
        #expect(baton_send_with_fds(sender, "hi", 2, nil, 0) == 2)
        var buffer = [UInt8](repeating: 0, count: 8)
        var pid: pid_t = 0
        var uid: uid_t = 0
        var truncated: CInt = 0
        var closed: CInt = 0
        #expect(baton_recv_with_credentials(receiver, &buffer, buffer.count, &pid, &uid, &truncated, &closed) == 2)
        #expect(pid == -1)
        #expect(uid == uid_t.max)
        #expect(closed == 0)
    }

    @Test func datagramsAboveCapacityAreFlaggedTruncated() throws {
        let (sender, receiver) = try socketPair(SOCK_DGRAM)
        defer { close(sender); close(receiver) }
        var on: CInt = 1
        try #require(setsockopt(receiver, SOL_SOCKET, SO_PASSCRED, &on, socklen_t(MemoryLayout<CInt>.size)) == 0)
        let payload = (0..<100).map { UInt8($0) }
        #expect(baton_send_with_fds(sender, payload, payload.count, nil, 0) == payload.count)

        var buffer = [UInt8](repeating: 0, count: 10)
        var pid: pid_t = 0
        var uid: uid_t = 0
        var truncated: CInt = 0
        var closed: CInt = 0
        let n = baton_recv_with_credentials(receiver, &buffer, buffer.count, &pid, &uid, &truncated, &closed)
        #expect(n == 10, "the length of what is in the buffer")
        #expect(buffer == Array(payload.prefix(10)))
        #expect(truncated == 1)
        #expect(pid == getpid())

        // The same for a seqpacket message read with baton_recv_with_fds.
        let (left, right) = try socketPair(SOCK_SEQPACKET)
        defer { close(left); close(right) }
        #expect(baton_send_with_fds(left, payload, payload.count, nil, 0) == payload.count)
        var count: CInt = 0
        #expect(baton_recv_with_fds(right, &buffer, buffer.count, nil, 0, &count, &truncated) == 10)
        #expect(truncated == 1)
        #expect(count == 0)
    }

    @Test func sendingMoreThanTheKernelLimitIsRefused() throws {
        let (sender, receiver) = try socketPair(SOCK_SEQPACKET)
        defer { close(sender); close(receiver) }
        let fds = [CInt](repeating: sender, count: 254)
        #expect(baton_send_with_fds(sender, "x", 1, fds, 254) == -1)
        #expect(errno == EINVAL)
    }
}

// MARK: - Helpers

private struct SocketFailure: Error {
    var call: String
    var errno: Int32
}

private func socketPair(_ type: __socket_type) throws -> (CInt, CInt) {
    var fds: [CInt] = [-1, -1]
    guard socketpair(AF_UNIX, CInt(type.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
        throw SocketFailure(call: "socketpair", errno: errno)
    }
    return (fds[0], fds[1])
}

private func pipePair() throws -> (read: CInt, write: CInt) {
    var fds: [CInt] = [-1, -1]
    guard pipe(&fds) == 0 else { throw SocketFailure(call: "pipe", errno: errno) }
    _ = baton_set_cloexec(fds[0], 1)
    _ = baton_set_cloexec(fds[1], 1)
    return (fds[0], fds[1])
}

private func inode(_ fd: CInt) throws -> UInt64 {
    var info = stat()
    guard fstat(fd, &info) == 0 else { throw SocketFailure(call: "fstat", errno: errno) }
    return UInt64(info.st_ino)
}

/// True when reading `fd` (a pipe's read end with nothing written) reports EOF within the wait.
private func isAtEOF(_ fd: CInt, waitingMilliseconds: CInt) -> Bool {
    var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    var ready: CInt
    repeat {
        ready = poll(&entry, 1, waitingMilliseconds)
    } while ready < 0 && errno == EINTR
    guard ready == 1 else { return false }
    var byte: UInt8 = 0
    return read(fd, &byte, 1) == 0
}
