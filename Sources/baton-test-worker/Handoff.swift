import CBaton
import Glibc

/// One socket this worker was given or bound.
struct Listener {
    var fd: Int32
    var name: String
    /// nil when getsockname could not describe it.
    var address: SocketAddress?
    /// A listening stream socket (TCP or Unix): the worker accepts on it. Others are only listed.
    var accepts: Bool

    /// `<name> <family> <address>`, the line of `/listeners` and of the start-up output.
    var line: String {
        "\(name) \(address?.familyName ?? Sockets.typeName(fd)) \(address?.text ?? "?")"
    }
}

/// How the worker got its sockets, and what the handover told it.
struct Handoff {
    var listeners: [Listener]
    /// The channel socket (`BATON_CHANNEL_FD`), kept open for `READY=1` and `DRAIN=1`.
    var channelFD: Int32?
    /// `BATON_GENERATION` from the channel, which wins over the environment.
    var generation: String?
    /// How many messages the handover over the channel took (nil without a channel).
    var channelMessages: Int? = nil

    /// Takes the sockets from, in this order: the channel (`BATON_CHANNEL_FD`), `LISTEN_FDS` when
    /// `LISTEN_PID` names this process (or its parent with `--listen-pid-parent`), `--listen`.
    static func acquire(_ options: Options) throws(HandoffError) -> Handoff {
        if let channel = environment("BATON_CHANNEL_FD") {
            guard let fd = Int32(channel), fd >= 0 else {
                throw HandoffError("BATON_CHANNEL_FD=\(channel) is not an fd number")
            }
            return try receive(fromChannel: fd)
        }
        var mismatch: String?
        if let count = environment("LISTEN_FDS") {
            let expected = options.listenPidParent ? getppid() : getpid()
            let listenPid = environment("LISTEN_PID") ?? ""
            if Int32(listenPid) == expected {
                guard let number = Int32(count), number >= 0 else {
                    throw HandoffError("LISTEN_FDS=\(count) is not a count")
                }
                let names = (environment("LISTEN_FDNAMES") ?? "")
                    .split(separator: ":", omittingEmptySubsequences: false).map(String.init)
                let fds = (0..<number).map { 3 + $0 }
                return Handoff(listeners: describe(fds, names: names), channelFD: nil, generation: nil)
            }
            mismatch = "LISTEN_FDS is set but LISTEN_PID=\(listenPid) is not "
                + (options.listenPidParent ? "the parent (pid \(expected))" : "this process (pid \(expected))")
                + (options.listenPidParent ? "" : "; under a shell wrapper use --listen-pid-parent")
        }
        if !options.listen.isEmpty {
            var listeners: [Listener] = []
            for (name, address) in options.listen {
                do {
                    let fd = try Sockets.bindListener(address)
                    _ = baton_set_nonblocking(fd, 1)
                    listeners.append(Listener(fd: fd, name: name, address: Sockets.localAddress(of: fd), accepts: true))
                } catch {
                    throw HandoffError(error.description)
                }
            }
            return Handoff(listeners: listeners, channelFD: nil, generation: nil)
        }
        throw HandoffError(mismatch ?? "no sockets: expected LISTEN_FDS, BATON_CHANNEL_FD or --listen")
    }

    /// Reads the handover messages (`LISTEN_FDS=n`, `LISTEN_FDNAMES=…`, `BATON_GENERATION=…`, the
    /// fds in SCM_RIGHTS, `MORE=1` on all but the last) from a SOCK_SEQPACKET channel.
    private static func receive(fromChannel channel: Int32) throws(HandoffError) -> Handoff {
        var fds: [Int32] = []
        var names: [String] = []
        var generation: String?
        var messages = 0
        var buffer = [UInt8](repeating: 0, count: 65536)
        var received = [Int32](repeating: -1, count: 253)
        while true {
            // The channel may be non-blocking (its description is the master's): wait for a message.
            var entry = pollfd(fd: channel, events: Int16(POLLIN), revents: 0)
            let ready = poll(&entry, 1, -1)
            if ready < 0 {
                if errno == EINTR { continue }
                throw HandoffError(SystemError("poll on the channel").description)
            }
            var count: Int32 = 0
            var truncated: Int32 = 0
            let length = baton_recv_with_fds(channel, &buffer, buffer.count, &received, Int32(received.count),
                                             &count, &truncated)
            if length < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                throw HandoffError(SystemError("recvmsg on the channel").description)
            }
            let messageFDs = Array(received.prefix(Int(count)))
            messages += 1
            if length == 0 && count == 0 {
                throw HandoffError("the channel closed before the sockets were handed over")
            }
            if truncated != 0 {
                throw HandoffError("a handover message was truncated")
            }
            let fields = NotifyFields(parsing: Array(buffer.prefix(length)))
            if let declared = fields["LISTEN_FDS"], Int(declared) != messageFDs.count {
                throw HandoffError("LISTEN_FDS=\(declared) but the message carried \(messageFDs.count) fds")
            }
            var messageNames = (fields["LISTEN_FDNAMES"] ?? "")
                .split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            if messageNames.count < messageFDs.count {
                messageNames += Array(repeating: "unknown", count: messageFDs.count - messageNames.count)
            }
            fds += messageFDs
            names += messageNames.prefix(messageFDs.count)
            if let value = fields["BATON_GENERATION"] { generation = value }
            if fields["MORE"] != "1" { break }
        }
        return Handoff(
            listeners: describe(fds, names: names), channelFD: channel, generation: generation, channelMessages: messages)
    }

    /// Describes handed-over fds. Listening stream sockets are made non-blocking: the flag lands on
    /// the description shared with the master and other generations, and an accept that lost the
    /// race to another process must return EAGAIN, not block the whole worker.
    private static func describe(_ fds: [Int32], names: [String]) -> [Listener] {
        fds.enumerated().map { index, fd in
            let accepts = Sockets.isStreamListener(fd)
            if accepts { _ = baton_set_nonblocking(fd, 1) }
            _ = baton_set_cloexec(fd, 1)
            let name = index < names.count && !names[index].isEmpty ? names[index] : "unknown"
            return Listener(fd: fd, name: name, address: Sockets.localAddress(of: fd), accepts: accepts)
        }
    }
}

/// The worker cannot get its sockets; it exits 1 with this message.
struct HandoffError: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// The value of an environment variable.
func environment(_ name: String) -> String? {
    guard let value = getenv(name) else { return nil }
    return String(cString: value)
}

/// `KEY=VALUE` lines, the grammar of sd_notify and of baton's channel. Later keys win.
struct NotifyFields {
    private var values: [String: String] = [:]

    init(parsing bytes: [UInt8]) {
        for raw in bytes.split(separator: UInt8(ascii: "\n")) {
            let line = String(decoding: raw, as: UTF8.self)
            guard let equals = line.firstIndex(of: "=") else { continue }
            values[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
    }

    subscript(key: String) -> String? { values[key] }
}
