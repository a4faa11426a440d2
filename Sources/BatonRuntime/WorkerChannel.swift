import BatonCore
import CBaton
import Glibc

/// The master's end of one worker's channel (`handoff = "channel"`): a non-blocking
/// `SOCK_SEQPACKET` socket whose peer is the worker's fd 3. Messages out (the handover, `DRAIN=1`)
/// wait in an outbox while the socket is full; messages in are read, checked and turned into
/// notices. The fds an outgoing message names are the master's listeners, open for as long as the
/// worker's generation lives, which outlives the channel (`Master.forgetGeneration` closes it).
final class WorkerChannel {
    let fd: CInt
    let id: WorkerID
    let pid: pid_t

    private struct Outgoing {
        var bytes: [UInt8]
        var fds: [CInt]
    }

    private var outbox: [Outgoing] = []
    private var buffer = [UInt8](repeating: 0, count: NotifyMessage.maximumSize + 1)

    /// What one incoming message amounted to.
    enum Incoming {
        case notices([ChannelProtocol.Notice])
        /// Not acted on; the reason is for the log.
        case rejected(String)
    }

    /// A connected pair: the master's end (non-blocking) and the worker's (to be placed at fd 3
    /// by the spawn, which clears its close-on-exec flag). Both are close-on-exec.
    static func makePair() throws(SystemError) -> (master: CInt, worker: CInt) {
        var ends: [CInt] = [-1, -1]
        guard socketpair(AF_UNIX, CInt(SOCK_SEQPACKET.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0, &ends) == 0 else {
            throw SystemError("channel: socketpair(AF_UNIX, SOCK_SEQPACKET)")
        }
        guard baton_set_nonblocking(ends[0], 1) == 0 else {
            let error = SystemError("channel: fcntl(O_NONBLOCK)")
            Glibc.close(ends[0])
            Glibc.close(ends[1])
            throw error
        }
        return (ends[0], ends[1])
    }

    init(fd: CInt, id: WorkerID, pid: pid_t) {
        self.fd = fd
        self.id = id
        self.pid = pid
    }

    var hasPending: Bool { !outbox.isEmpty }

    /// Queues a message with the fds it carries (at most `ChannelProtocol.maximumFDsPerMessage`).
    func enqueue(_ text: String, fds: [CInt] = []) {
        outbox.append(Outgoing(bytes: Array(text.utf8), fds: fds))
    }

    enum FlushResult: Equatable {
        /// Everything queued went out.
        case done
        /// The socket is full: wait until it is writable.
        case blocked
        /// The worker's end is gone (or the send failed otherwise), with the errno.
        case failed(Int32)
    }

    /// Sends queued messages in order until done or the socket is full.
    func flush() -> FlushResult {
        while let next = outbox.first {
            let sent = next.bytes.withUnsafeBytes { bytes in
                next.fds.withUnsafeBufferPointer { fds in
                    baton_send_with_fds(fd, bytes.baseAddress, bytes.count, fds.baseAddress, CInt(fds.count))
                }
            }
            if sent < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK { return .blocked }
                let code = errno
                outbox.removeAll()
                return .failed(code)
            }
            outbox.removeFirst()
        }
        return .done
    }

    /// Reads every message queued now. Returns false when the worker closed its end (`hangUp`
    /// is the reactor's EPOLLHUP for this wake-up): the caller closes the channel.
    ///
    /// A message is rejected when it carries fds (closed at once: nothing is expected), is larger
    /// than `NotifyMessage.maximumSize`, or breaks the grammar or the channel's vocabulary.
    func receiveAll(hangUp: Bool, _ deliver: (Incoming) -> Void) -> Bool {
        var fds = [CInt](repeating: -1, count: 253)
        var emptyInARow = 0
        while true {
            var count: CInt = 0
            var truncated: CInt = 0
            let length = buffer.withUnsafeMutableBytes { raw in
                baton_recv_with_fds(fd, raw.baseAddress, raw.count, &fds, CInt(fds.count), &count, &truncated)
            }
            if length < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK { return true }
                return false  // ECONNRESET and the like: the worker's end is gone
            }
            // MSG_CMSG_CLOEXEC made them close-on-exec; none may stay open in the master.
            for received in fds.prefix(Int(count)) { Glibc.close(received) }
            if length == 0 && count == 0 && truncated == 0 {
                // EOF and an empty message both read as 0 bytes. EOF repeats, while an empty
                // message is followed by something else or by EAGAIN. A peer that only shut down
                // its sending side raises no EPOLLHUP, hence the longer run without `hangUp`.
                emptyInARow += 1
                if emptyInARow >= (hangUp ? 2 : 64) { return false }
                continue
            }
            emptyInARow = 0
            if count > 0 {
                deliver(.rejected("message carried \(count) fd(s); none are expected (closed)"))
            } else if truncated != 0 {
                deliver(.rejected("message over \(NotifyMessage.maximumSize) bytes"))
            } else {
                switch ChannelProtocol.notices(parsing: buffer.prefix(length)) {
                case .success(let notices): deliver(.notices(notices))
                case .failure(let error): deliver(.rejected(error.description))
                }
            }
        }
    }

    func close() {
        outbox.removeAll()
        Glibc.close(fd)
    }
}
