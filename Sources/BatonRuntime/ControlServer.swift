import BatonCore
import CBaton
import Glibc
import Logging

/// The master's control socket: a Unix stream socket speaking newline-delimited JSON
/// (`ControlProtocol`). It runs on the master's `Reactor` and never blocks it: every socket is
/// non-blocking, outgoing lines are buffered per connection and written as the socket takes them,
/// and every buffer, the number of clients and the time a request may take to arrive are bounded.
///
/// Only root and the master's own uid may talk to it (`SO_PEERCRED`); the socket file is 0600 in a
/// directory that only its owner can write. Not thread-safe: use it on the reactor's thread.
final class ControlServer {
    /// The bounds that keep a slow or hostile client from costing the master more than a little.
    struct Limits: Sendable {
        /// Connections served at once; more are answered with an error and closed.
        var maximumClients = 256
        /// The longest request line, newline included.
        var maximumRequestSize = ControlProtocol.maximumRequestSize
        /// How long a connection may wait for a whole request line, and how long a closing one
        /// may take to read its last reply.
        var requestTimeout: Duration = .seconds(5)
        /// Output a client may leave unread (events of a long reload) before it is dropped.
        var maximumPendingOutput = 1 << 20
        /// How long accepting pauses when the master runs out of file descriptors.
        var acceptPause: Duration = .seconds(1)

        static let standard = Limits()
    }

    /// The socket file's path.
    let path: String
    let limits: Limits
    /// Called after a connection went away (not when the server itself closes), e.g. to forget a
    /// client that waited for a reload.
    var onDisconnect: ((ControlClientID) -> Void)?
    /// While true, lines are written by `flushHeld()` only: the master calls it once after each
    /// wake-up, so the events of one wake-up (a reload's "ready", "serving", "draining" and its
    /// reply often come together) cost one `send`, not one each.
    var holdsOutput = false
    /// Connections with held lines, in the order they were queued.
    private var awaitingFlush: [ControlConnection] = []

    private let reactor: Reactor
    private let masterUID: uid_t
    private let onRequest: (ControlClientID, ControlRequest) -> Void
    private let logger: Logger
    private var listenFD: CInt = -1
    private var timerFD: CInt = -1
    /// Held open so that a connection can still be accepted and closed when the process is out of
    /// file descriptors (otherwise the listener stays readable and the loop spins).
    private var spareFD: CInt = -1
    /// The socket file we bound, so `close()` never removes a file somebody else put there.
    private var boundFile: (device: UInt64, inode: UInt64)?
    private var connections: [ControlClientID: ControlConnection] = [:]
    private var nextClient: UInt64 = 1
    private var armedAt: MonotonicInstant?
    private var acceptResumesAt: MonotonicInstant?
    private var closed = false

    /// Creates the socket file at `path` and starts serving on `reactor`.
    /// - Parameters:
    ///   - masterUID: the uid allowed besides root (the master's effective uid).
    ///   - onRequest: each request, in order per client. Answer it with `reply(_:to:)` (now or
    ///     later; events with `send(_:to:)` before that); the client's next request is read only then.
    init(
        path: String, reactor: Reactor, masterUID: uid_t = geteuid(), limits: Limits = .standard,
        logger: Logger = Logger(label: "baton.control"),
        onRequest: @escaping (ControlClientID, ControlRequest) -> Void
    ) throws(SystemError) {
        self.path = path
        self.reactor = reactor
        self.masterUID = masterUID
        self.limits = limits
        self.logger = logger
        self.onRequest = onRequest
        do {
            try open()
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    /// How many clients are connected now.
    var clientCount: Int { connections.count }

    /// True while the client's connection is open.
    func isConnected(_ client: ControlClientID) -> Bool { connections[client] != nil }

    /// Sends a progress event for the client's request in flight; a no-op if the client has gone
    /// or has no request in flight.
    func send(_ event: ControlEvent, to client: ControlClientID) {
        guard let connection = connections[client], let request = connection.inFlight else { return }
        var event = event
        event.id = request
        queue(ControlCodec.encode(event), on: connection)
    }

    /// Answers the client's request in flight (its id is filled in); then the client may send its
    /// next request. A no-op if the client has gone or has no request in flight.
    func reply(_ reply: ControlReply, to client: ControlClientID) {
        guard let connection = connections[client], let request = connection.inFlight else { return }
        var reply = reply
        reply.id = request
        connection.inFlight = nil
        connection.deadline = Clock.now() + limits.requestTimeout
        queue(ControlCodec.encode(reply), on: connection)
        guard !connection.isClosed else { return }
        processLines(connection)
    }

    /// Closes every connection and the socket, and removes the socket file. Idempotent.
    func close() {
        guard !closed else { return }
        closed = true
        for connection in Array(connections.values) {
            // A last reply (to "stop") still queued gets one more chance, without waiting.
            if !connection.output.isEmpty { flush(connection) }
            drop(connection)
        }
        for fd in [listenFD, timerFD] where fd >= 0 {
            reactor.unregister(fd)
            Glibc.close(fd)
        }
        if spareFD >= 0 { Glibc.close(spareFD) }
        (listenFD, timerFD, spareFD) = (-1, -1, -1)
        if let bound = boundFile, let current = ControlSocketFile.identity(of: path), current == bound {
            unlink(path)
        }
        boundFile = nil
    }

    // MARK: - Setting up

    private func open() throws(SystemError) {
        guard !path.isEmpty, path.utf8.count <= 107 else {
            throw SystemError("control socket \"\(path)\": a socket path needs 1 to 107 bytes", code: ENAMETOOLONG)
        }
        try ControlSocketFile.prepareDirectory(ControlSocketFile.directory(of: path), owner: masterUID)
        try ControlSocketFile.removeStale(path)
        listenFD = socket(AF_UNIX, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_NONBLOCK.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        guard listenFD >= 0 else { throw SystemError("control socket: socket") }
        guard SocketAddress.withUnix(path: path, abstract: false, { Glibc.bind(listenFD, $0, $1) }) == 0 else {
            throw SystemError("control socket: bind \(path)")
        }
        boundFile = ControlSocketFile.identity(of: path)
        guard chmod(path, 0o600) == 0 else { throw SystemError("control socket: chmod 0600 \(path)") }
        guard listen(listenFD, 512) == 0 else { throw SystemError("control socket: listen \(path)") }
        timerFD = baton_timerfd_create()
        guard timerFD >= 0 else { throw SystemError("control socket: timerfd_create") }
        spareFD = Glibc.open("/dev/null", O_RDONLY | O_CLOEXEC)
        try reactor.register(listenFD) { [weak self] _ in self?.acceptAll() }
        try reactor.register(timerFD) { [weak self] _ in self?.fireTimer() }
    }

    // MARK: - Accepting

    private func acceptAll() {
        while !closed {
            let fd = baton_accept_cloexec_nonblocking(listenFD)
            if fd < 0 {
                switch errno {
                case EINTR, ECONNABORTED:
                    continue
                case EAGAIN:
                    return
                case EMFILE where spareFD >= 0, ENFILE where spareFD >= 0:
                    // Out of fds: free the spare one to take the connection off the queue and
                    // refuse it, rather than leave the listener readable forever.
                    Glibc.close(spareFD)
                    let victim = baton_accept_cloexec_nonblocking(listenFD)
                    let code = errno
                    if victim >= 0 {
                        refuse(victim, "the master is out of file descriptors")
                    }
                    spareFD = Glibc.open("/dev/null", O_RDONLY | O_CLOEXEC)
                    if victim < 0 && code != EAGAIN {
                        pauseAccepting(errno: code)
                        return
                    }
                    continue
                default:
                    pauseAccepting(errno: errno)
                    return
                }
            }
            guard connections.count < limits.maximumClients else {
                refuse(fd, "too many control clients (\(limits.maximumClients) connected); try again later")
                continue
            }
            guard let uid = Self.peerUID(fd) else {
                refuse(fd, "cannot read the peer's credentials")
                continue
            }
            guard uid == 0 || uid == masterUID else {
                logger.warning("control: refused a connection from uid \(uid)")
                refuse(fd, "permission denied: uid \(uid)")
                continue
            }
            let id = ControlClientID(rawValue: nextClient)
            nextClient += 1
            let connection = ControlConnection(id: id, fd: fd, uid: uid)
            do {
                try reactor.register(fd, events: connection.interest) { [weak self] events in
                    self?.handle(id, events: events)
                }
            } catch {
                logger.warning("control: \(error)")
                Glibc.close(fd)
                continue
            }
            connections[id] = connection
            connection.deadline = Clock.now() + limits.requestTimeout
            rearmTimer()
        }
    }

    /// A persistent accept failure: stop watching the listener for a while instead of spinning.
    private func pauseAccepting(errno code: Int32) {
        logger.warning("control: accept: \(String(cString: strerror(code))); pausing for \(DurationText.format(limits.acceptPause))")
        reactor.update(listenFD, events: 0)
        acceptResumesAt = Clock.now() + limits.acceptPause
        rearmTimer()
    }

    /// Answers a connection that will not be served with one error line, and closes it.
    private func refuse(_ fd: CInt, _ message: String) {
        let line = ControlCodec.encode(ControlReply.failure(message))
        _ = line.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, CInt(MSG_NOSIGNAL | MSG_DONTWAIT)) }
        Glibc.close(fd)
    }

    static func peerUID(_ fd: CInt) -> uid_t? {
        // struct ucred { pid_t pid; uid_t uid; gid_t gid; }, not imported into Swift.
        var credentials: (Int32, UInt32, UInt32) = (0, 0, 0)
        var length = socklen_t(MemoryLayout.size(ofValue: credentials))
        guard getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0,
            length == socklen_t(MemoryLayout.size(ofValue: credentials))
        else { return nil }
        return credentials.1
    }

    // MARK: - Serving a connection

    private func handle(_ id: ControlClientID, events: UInt32) {
        // Events are hints: an event may be stale (the fd closed and its number reused within one
        // epoll batch), so every decision rests on what the system calls say.
        guard let connection = connections[id] else { return }
        if !connection.output.isEmpty {
            flush(connection)
            if connection.isClosed { return }
        }
        if connection.interest & UInt32(BATON_EV_IN) != 0 {
            readInput(connection)
            if connection.isClosed { return }
        }
        if events & UInt32(BATON_EV_HUP | BATON_EV_ERR) != 0 && Self.isHungUp(connection.fd) {
            drop(connection)
            return
        }
        reactor.update(connection.fd, events: connection.interest)
    }

    private func readInput(_ connection: ControlConnection) {
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        reading: while !connection.readClosed {
            // One byte past the limit is enough to know a line is too long.
            let room = limits.maximumRequestSize + 1 - connection.input.count
            guard room > 0 else { break }
            let count = chunk.withUnsafeMutableBytes { Glibc.read(connection.fd, $0.baseAddress, min($0.count, room)) }
            switch count {
            case 1...:
                connection.input += chunk[..<count]
                if chunk[..<count].contains(UInt8(ascii: "\n")) { break reading }
            case 0:
                connection.readClosed = true
            default:
                if errno == EINTR { continue }
                if errno == EAGAIN { break reading }
                drop(connection)
                return
            }
        }
        processLines(connection)
    }

    /// Takes request lines while no request is in flight: a bad line gets an error reply, a good
    /// one goes to `onRequest`.
    private func processLines(_ connection: ControlConnection) {
        guard !connection.dispatching else { return }
        connection.dispatching = true
        defer { connection.dispatching = false }
        while !connection.isClosed && !connection.closing && connection.inFlight == nil {
            guard let line = connection.nextLine() else {
                if connection.input.count >= limits.maximumRequestSize {
                    reject(tooLong: connection)
                } else if connection.readClosed {
                    beginClosing(connection)
                }
                break
            }
            guard line.count < limits.maximumRequestSize else {
                reject(tooLong: connection)
                break
            }
            if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) { continue }
            switch ControlCodec.decodeRequest(line) {
            case .failure(let error):
                var reply = ControlReply.failure(error.message)
                reply.id = error.id
                queue(ControlCodec.encode(reply), on: connection)
            case .success(let request):
                connection.inFlight = request.id
                connection.deadline = nil
                onRequest(connection.id, request)
            }
        }
        guard !connection.isClosed else { return }
        if connection.inFlight == nil && connection.deadline == nil {
            connection.deadline = Clock.now() + limits.requestTimeout
        }
        reactor.update(connection.fd, events: connection.interest)
        rearmTimer()
    }

    private func reject(tooLong connection: ControlConnection) {
        queue(
            ControlCodec.encode(ControlReply.failure("request line over \(limits.maximumRequestSize) bytes")),
            on: connection)
        beginClosing(connection)
    }

    /// No more requests: close once the pending output is written (or the deadline passes).
    private func beginClosing(_ connection: ControlConnection) {
        guard !connection.isClosed else { return }
        connection.closing = true
        connection.input = []
        connection.deadline = Clock.now() + limits.requestTimeout
        if connection.output.isEmpty {
            drop(connection)
        } else {
            reactor.update(connection.fd, events: connection.interest)
            rearmTimer()
        }
    }

    private func queue(_ line: [UInt8], on connection: ControlConnection) {
        guard !connection.isClosed else { return }
        guard connection.output.count + line.count <= limits.maximumPendingOutput else {
            logger.warning("control: dropped \(connection.id) (uid \(connection.uid)): it does not read what it is sent")
            drop(connection)
            return
        }
        connection.output += line
        if holdsOutput {
            if !connection.awaitsFlush {
                connection.awaitsFlush = true
                awaitingFlush.append(connection)
            }
            return
        }
        flush(connection)
    }

    /// Writes the lines held since the last call (see `holdsOutput`).
    func flushHeld() {
        guard !awaitingFlush.isEmpty else { return }
        let pending = awaitingFlush
        awaitingFlush = []
        for connection in pending {
            connection.awaitsFlush = false
            if !connection.isClosed { flush(connection) }
        }
    }

    private func flush(_ connection: ControlConnection) {
        var written = 0
        while written < connection.output.count {
            let count = connection.output.withUnsafeBytes {
                Glibc.send(connection.fd, $0.baseAddress! + written, $0.count - written, CInt(MSG_NOSIGNAL | MSG_DONTWAIT))
            }
            if count > 0 {
                written += count
            } else if count < 0 && errno == EINTR {
                continue
            } else if count < 0 && errno == EAGAIN {
                break
            } else {
                // EPIPE, ECONNRESET: the client has gone.
                drop(connection)
                return
            }
        }
        connection.output.removeFirst(written)
        if connection.output.isEmpty && connection.closing {
            drop(connection)
            return
        }
        reactor.update(connection.fd, events: connection.interest)
    }

    private func drop(_ connection: ControlConnection) {
        guard !connection.isClosed else { return }
        connection.isClosed = true
        reactor.unregister(connection.fd)
        Glibc.close(connection.fd)
        connections[connection.id] = nil
        if connection.deadline != nil { rearmTimer() }
        if !closed { onDisconnect?(connection.id) }
    }

    static func isHungUp(_ fd: CInt) -> Bool {
        var entry = pollfd(fd: fd, events: 0, revents: 0)
        guard poll(&entry, 1, 0) == 1 else { return false }
        return Int32(entry.revents) & (Int32(POLLHUP) | Int32(POLLERR)) != 0
    }

    // MARK: - Deadlines

    private func fireTimer() {
        baton_timerfd_drain(timerFD)
        armedAt = nil
        let now = Clock.now()
        if let resume = acceptResumesAt, resume <= now {
            acceptResumesAt = nil
            reactor.update(listenFD, events: UInt32(BATON_EV_IN))
            acceptAll()
        }
        let expired = connections.values.filter { connection in connection.deadline.map { $0 <= now } ?? false }
        for connection in expired where !connection.isClosed {
            if connection.closing {
                drop(connection)
                continue
            }
            let seconds = DurationText.format(limits.requestTimeout)
            let message = connection.input.isEmpty
                ? "no request within \(seconds): closing the connection"
                : "timed out: no whole request line within \(seconds)"
            queue(ControlCodec.encode(ControlReply.failure(message)), on: connection)
            beginClosing(connection)
        }
        rearmTimer()
    }

    /// Arms the timerfd for the earliest deadline (at most `maximumClients` to look at).
    private func rearmTimer() {
        guard !closed, timerFD >= 0 else { return }
        var earliest = acceptResumesAt
        for connection in connections.values {
            if let deadline = connection.deadline, earliest.map({ deadline < $0 }) ?? true { earliest = deadline }
        }
        guard earliest != armedAt else { return }
        armedAt = earliest
        // Deadline 0 would disarm: one already due is armed at 1 ns, which fires at once.
        _ = baton_timerfd_arm(timerFD, earliest.map { max($0.nanoseconds, 1) } ?? 0)
    }
}
