import CBaton
import Glibc

/// The worker's single-threaded event loop: signals, the channel, listeners and connections, all
/// through poll(2), with every deadline (readiness, `/slow`, drain grace, drain timeout) folded
/// into the poll timeout.
final class Server {
    /// State that exists once a drain began.
    struct Drain {
        var started: UInt64
        /// Everything is closed at this time (`BATON_DRAIN_TIMEOUT_USEC` or the channel's
        /// `TIMEOUT_USEC`, counted from the drain signal); nil for none or once it has passed.
        var deadline: UInt64?
        /// `--drain-delay`: the worker exits no sooner than this.
        var exitNotBefore: UInt64
    }

    /// What a poll entry stands for.
    private enum Source {
        case signals
        case channel
        case listener(Int32)
        case datagrams(Int32)
        case connection(Connection)
    }

    /// The largest backlog of unsent or unparsed bytes per connection before reading pauses.
    private static let bufferLimit = 1 << 20
    /// How long a closing connection waits for the peer's close after the final response.
    static let lingerNs: UInt64 = 2_000_000_000

    let options: Options
    let endpoints: Endpoints
    let notifier: Notifier
    let signalFD: Int32
    var channelFD: Int32?
    /// The listeners this process still holds (closed, never shut down, when draining).
    var listeners: [Listener]
    var connections: [Int32: Connection] = [:]
    var served = 0
    let readyAt: UInt64
    var ready = false
    var drain: Drain?
    /// Out of fds: accepting pauses until then instead of spinning on a readable listener.
    var acceptPausedUntil: UInt64 = 0
    var scratch = [UInt8](repeating: 0, count: 65536)

    init(options: Options, endpoints: Endpoints, listeners: [Listener], signalFD: Int32, channelFD: Int32?,
         notifier: Notifier, started: UInt64) {
        self.options = options
        self.endpoints = endpoints
        self.listeners = listeners
        self.signalFD = signalFD
        self.channelFD = channelFD
        self.notifier = notifier
        self.readyAt = started + Self.ns(milliseconds: options.readyDelayMs)
    }

    /// Serves until drained, then exits 0.
    func run() -> Never {
        var entries: [pollfd] = []
        var sources: [Source] = []
        while true {
            let now = baton_monotonic_ns()
            fireTimers(now)
            if let drain, connections.isEmpty, now >= drain.exitNotBefore {
                say("drained")
                exit(0)
            }

            entries.removeAll(keepingCapacity: true)
            sources.removeAll(keepingCapacity: true)
            func watch(_ fd: Int32, _ events: Int32, _ source: Source) {
                entries.append(pollfd(fd: fd, events: Int16(events), revents: 0))
                sources.append(source)
            }
            watch(signalFD, POLLIN, .signals)
            if let channelFD { watch(channelFD, POLLIN, .channel) }
            if drain == nil && (ready || options.serveBeforeReady) && now >= acceptPausedUntil {
                for listener in listeners where listener.accepts { watch(listener.fd, POLLIN, .listener(listener.fd)) }
                for listener in listeners where listener.isDatagram { watch(listener.fd, POLLIN, .datagrams(listener.fd)) }
            }
            for connection in connections.values {
                let events = (wantsInput(connection) ? POLLIN : 0) | (connection.unsent > 0 ? POLLOUT : 0)
                // A connection that waits only for a timer stays out: a hung-up peer would
                // otherwise wake the loop at once, again and again.
                if events != 0 { watch(connection.fd, events, .connection(connection)) }
            }

            let count = poll(&entries, nfds_t(entries.count), pollTimeout(now))
            if count < 0 {
                if errno == EINTR { continue }
                complain("poll: \(errnoText())")
                exit(1)
            }
            let after = baton_monotonic_ns()
            for (entry, source) in zip(entries, sources) where entry.revents != 0 {
                switch source {
                case .signals:
                    readSignals(after)
                case .channel:
                    readChannel(after)
                case .listener(let fd):
                    if drain == nil, listeners.contains(where: { $0.fd == fd }) { acceptAll(fd, after) }
                case .datagrams(let fd):
                    if drain == nil, listeners.contains(where: { $0.fd == fd }) { echoAll(fd) }
                case .connection(let connection):
                    guard connections[connection.fd] === connection else { continue }
                    if Int32(entry.revents) & (POLLIN | POLLHUP | POLLERR) != 0 && wantsInput(connection) {
                        readable(connection, after)
                    } else {
                        service(connection, after)
                    }
                }
            }
        }
    }

    // MARK: - Events

    private func readSignals(_ now: UInt64) {
        while case let number = baton_signalfd_read(signalFD), number != 0 {
            beginDrain("\(signalName(number))", timeoutUsec: nil, now)
        }
    }

    private func readChannel(_ now: UInt64) {
        guard let channel = channelFD else { return }
        var fds = [Int32](repeating: -1, count: 8)
        var count: Int32 = 0
        var truncated: Int32 = 0
        let length = baton_recv_with_fds(channel, &scratch, scratch.count, &fds, Int32(fds.count), &count, &truncated)
        // Nothing after the handover should carry fds; do not keep any.
        for fd in fds.prefix(Int(count)) { close(fd) }
        if length < 0 {
            if errno == EAGAIN || errno == EINTR { return }
            complain("channel: \(errnoText())")
        }
        if length <= 0 && count == 0 {
            say("channel closed by the master")
            close(channel)
            channelFD = nil
            return
        }
        let fields = NotifyFields(parsing: Array(scratch.prefix(length)))
        if fields["DRAIN"] == "1" {
            beginDrain("DRAIN=1", timeoutUsec: fields["TIMEOUT_USEC"].flatMap { UInt64($0) }, now)
        }
    }

    private func acceptAll(_ listenerFD: Int32, _ now: UInt64) {
        while true {
            let fd = accept(listenerFD, nil, nil)
            if fd < 0 {
                switch errno {
                case EINTR, ECONNABORTED: continue
                case EAGAIN: return  // another worker or generation took it, or the queue is empty
                case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                    complain("accept: \(errnoText()); pausing accepts for 100 ms")
                    acceptPausedUntil = now + 100_000_000
                    return
                default:
                    complain("accept: \(errnoText())")
                    return
                }
            }
            // Accepted sockets do not inherit O_NONBLOCK on Linux.
            _ = baton_set_nonblocking(fd, 1)
            _ = baton_set_cloexec(fd, 1)
            var one: Int32 = 1
            _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            connections[fd] = Connection(fd: fd, now: now)
        }
    }

    private func wantsInput(_ connection: Connection) -> Bool {
        if connection.readClosed { return false }
        if connection.lingerUntil != nil { return true }
        return connection.input.count < Self.bufferLimit && connection.unsent < Self.bufferLimit
    }

    private func readable(_ connection: Connection, _ now: UInt64) {
        let count = scratch.withUnsafeMutableBytes { recv(connection.fd, $0.baseAddress!, $0.count, 0) }
        if count < 0 {
            if errno == EAGAIN || errno == EINTR { return }
            closeConnection(connection)  // reset by the peer, or worse
            return
        }
        if count == 0 {
            connection.readClosed = true
            if connection.lingerUntil != nil {
                closeConnection(connection)
                return
            }
        } else {
            connection.lastActivity = now
            if connection.lingerUntil != nil { return }  // after the final response: discard
            connection.input += scratch[0..<count]
        }
        service(connection, now)
    }

    // MARK: - Requests and responses

    /// Answers what can be answered, sends what can be sent, closes when done.
    func service(_ connection: Connection, _ now: UInt64) {
        // When parsing stopped on a full output buffer, sending may make room for more answers;
        // nothing else would wake this connection up again once everything is sent.
        var full: Bool
        repeat {
            full = connection.lingerUntil == nil && process(connection, now)
            guard flush(connection, now) else { return }
        } while full && connection.unsent < Self.bufferLimit
        guard connection.unsent == 0, connection.lingerUntil == nil else { return }
        if connection.closeAfterFlush {
            startLinger(connection, now)
        } else if connection.readClosed && connection.pending == nil {
            closeConnection(connection)  // the peer is gone and no answer is owed
        }
    }

    /// Parses requests in order and queues their responses, until one has to wait. Returns true
    /// when it stopped only because the output buffer is full.
    private func process(_ connection: Connection, _ now: UInt64) -> Bool {
        while connection.pending == nil && !connection.closeAfterFlush {
            if connection.unsent >= Self.bufferLimit { return true }
            if connection.bodyToDiscard > 0 {
                let count = min(connection.bodyToDiscard, connection.input.count)
                connection.input.removeFirst(count)
                connection.bodyToDiscard -= count
                if connection.bodyToDiscard > 0 { return false }
            }
            if connection.input.isEmpty { return false }
            switch HTTPParser.parseHead(connection.input) {
            case .incomplete:
                return false
            case .tooLarge:
                refuse(connection, Response(status: 431, body: "request head larger than 16 KiB\n"))
            case .invalid(let reason):
                refuse(connection, Response(status: 400, body: reason + "\n"))
            case .complete(let head, let consumed):
                connection.input.removeFirst(consumed)
                if head.isChunked {
                    refuse(connection, Response(status: 501, body: "chunked request bodies are not supported\n"))
                    return false
                }
                guard let length = head.contentLength else {
                    refuse(connection, Response(status: 400, body: "bad Content-Length\n"))
                    return false
                }
                connection.bodyToDiscard = length
                let routed = endpoints.route(head)
                if routed.delayMs > 0 {
                    connection.pending = (now + Self.ns(milliseconds: routed.delayMs), head, routed.response)
                } else {
                    answer(connection, head, routed.response)
                }
            }
        }
        return false
    }

    /// Queues a response. Once draining, every response says `Connection: close`.
    func answer(_ connection: Connection, _ head: RequestHead, _ response: Response) {
        let keepAlive = head.wantsKeepAlive && drain == nil
        connection.output += response.serialized(keepAlive: keepAlive, version: head.version,
                                                 headOnly: head.method == "HEAD")
        if !keepAlive { connection.closeAfterFlush = true }
        served += 1
        if let limit = options.crashAfter, served >= limit {
            _ = flush(connection, baton_monotonic_ns())
            complain("crashing after \(served) requests")
            abort()
        }
    }

    /// An error response; the connection closes after it (its framing can no longer be trusted).
    private func refuse(_ connection: Connection, _ response: Response) {
        connection.input.removeAll()
        connection.bodyToDiscard = 0
        connection.output += response.serialized(keepAlive: false, version: "HTTP/1.1", headOnly: false)
        connection.closeAfterFlush = true
    }

    /// Sends queued bytes until done or EAGAIN. Returns false when the connection was closed.
    func flush(_ connection: Connection, _ now: UInt64) -> Bool {
        while connection.unsent > 0 {
            let sent = connection.output.withUnsafeBytes { raw in
                send(connection.fd, raw.baseAddress! + connection.outputOffset, connection.unsent, Int32(MSG_NOSIGNAL))
            }
            if sent > 0 {
                connection.outputOffset += sent
            } else if sent < 0 && errno == EINTR {
                continue
            } else if sent < 0 && errno == EAGAIN {
                return true
            } else {
                closeConnection(connection)
                return false
            }
        }
        if !connection.output.isEmpty {
            connection.output.removeAll(keepingCapacity: true)
            connection.outputOffset = 0
            connection.lastActivity = now
        }
        return true
    }

    private func startLinger(_ connection: Connection, _ now: UInt64) {
        // Only this connection's own socket is shut down; listeners never are (they are shared).
        _ = shutdown(connection.fd, Int32(SHUT_WR))
        connection.input.removeAll()
        var until = now + Self.lingerNs
        if let deadline = drain?.deadline { until = min(until, deadline) }
        connection.lingerUntil = until
        if connection.readClosed { closeConnection(connection) }
    }

    func closeConnection(_ connection: Connection) {
        guard connections[connection.fd] === connection else { return }
        connections[connection.fd] = nil
        close(connection.fd)
    }

    static func ns(milliseconds: Int) -> UInt64 { UInt64(milliseconds) * 1_000_000 }
}
