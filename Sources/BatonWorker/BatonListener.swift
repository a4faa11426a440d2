import Glibc

/// One listening socket of the worker: handed over by baton (or systemd), or bound by the worker
/// itself outside baton.
///
/// The fd belongs to the worker process. Hand it to exactly one owner that closes it (SwiftNIO
/// does, once it adopted it). Handed sockets are the **same open file description** as the
/// master's and every other generation's: never `shutdown()` one (it would stop the accept queue
/// for everyone; to stop accepting, close your copy), and know that `O_NONBLOCK` and `listen()`
/// act on the shared socket.
public struct BatonListener: Sendable, Hashable, CustomStringConvertible {
    /// The listener's name (`LISTEN_FDNAMES`); several sockets may share one (IPv4 and IPv6).
    public let name: String
    /// The socket.
    public let fd: Int32
    /// The bound address in baton's syntax: `tcp://127.0.0.1:8080`, `tcp://[::1]:8080`,
    /// `udp://…`, `unix:/path`, `unix:@name`; nil when the socket cannot be described.
    public let address: String?
    /// The configured backlog (`BATON_LISTEN_BACKLOGS`): pass it to anything that calls
    /// `listen()` again (SwiftNIO does), or the queue shrinks for every generation.
    public let backlog: Int32
    /// `SOCK_STREAM`, `SOCK_DGRAM`, … as `SO_TYPE` reports it.
    public let socketType: Int32

    public init(name: String, fd: Int32, address: String?, backlog: Int32, socketType: Int32) {
        self.name = name
        self.fd = fd
        self.address = address
        self.backlog = backlog
        self.socketType = socketType
    }

    /// A stream socket (TCP or Unix) to accept connections on.
    public var isStream: Bool { socketType == Int32(SOCK_STREAM.rawValue) }

    public var description: String { "\(name) fd=\(fd) \(address ?? "?") backlog=\(backlog)" }
}
