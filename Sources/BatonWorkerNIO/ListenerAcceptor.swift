import BatonWorker
import CBaton
import Dispatch
import Glibc
import Synchronization

/// Accepts on one shared listener and hands each connection on; closes this process's copy of
/// the listener when stopped (never `shutdown()`: the accept queue is the master's and the next
/// generation's too).
///
/// Why not NIO's own server channel: a listener shared between processes wakes all of them, and
/// all but one find nothing to accept. NIO's debug builds assert that a readable socket yields
/// something (`BaseSocketChannel.readable0`), so a debug-built NIO worker crashes whenever another
/// worker or generation wins the race. Accepting here, until `EAGAIN`, has no such assumption.
final class ListenerAcceptor: Sendable {
    private let listener: BatonListener
    private let queue: DispatchQueue
    private let source: Mutex<RetainedReadSource?> = Mutex(nil)
    private let onAccept: @Sendable (Int32) -> Void
    private let onError: @Sendable (String) -> Void

    init(
        listener: BatonListener, queue: DispatchQueue, onAccept: @escaping @Sendable (Int32) -> Void,
        onError: @escaping @Sendable (String) -> Void
    ) {
        self.listener = listener
        self.queue = queue
        self.onAccept = onAccept
        self.onError = onError
    }

    func start() {
        // O_NONBLOCK lands on the shared open file description: every holder must accept until
        // EAGAIN, as baton's workers do.
        _ = baton_set_nonblocking(listener.fd, 1)
        let fd = listener.fd
        let readSource = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        readSource.setEventHandler { [self] in acceptAll() }
        readSource.setCancelHandler { close(fd) }
        source.withLock { $0 = RetainedReadSource(source: readSource) }
        readSource.resume()
    }

    /// Stops accepting and closes this process's copy of the listener.
    func stop() {
        let retained = source.withLock { current -> RetainedReadSource? in
            defer { current = nil }
            return current
        }
        retained?.source.cancel()
    }

    private func acceptAll() {
        while true {
            let client = accept(listener.fd, nil, nil)
            if client >= 0 {
                // Accepted sockets inherit neither flag on Linux (NIO sets O_NONBLOCK itself).
                _ = baton_set_cloexec(client, 1)
                onAccept(client)
                continue
            }
            switch errno {
            case EINTR, ECONNABORTED:
                continue
            case EAGAIN, EWOULDBLOCK:
                return  // empty, or another worker took it
            case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                // Out of fds: pause instead of spinning on a readable listener.
                onError("accept on \(listener.name): \(String(cString: strerror(errno))); pausing for 100 ms")
                let retained = source.withLock { $0 }
                retained?.source.suspend()
                queue.asyncAfter(deadline: .now() + .milliseconds(100)) { retained?.source.resume() }
                return
            default:
                onError("accept on \(listener.name): \(String(cString: strerror(errno)))")
                return
            }
        }
    }
}

/// A dispatch source kept by the acceptor (dispatch sources are thread-safe).
private struct RetainedReadSource: @unchecked Sendable {
    let source: any DispatchSourceRead
}
