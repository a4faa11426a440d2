import Foundation

/// A listening socket the test owns, for handing to a process (`SupervisedProcess(passing:)`) the
/// way systemd or baton would. Closed on deinit.
public final class ListeningSocket: Sendable {
    /// The socket, owned by this object (pass copies with `SupervisedProcess(passing:)`).
    public let fd: Int32
    /// The bound port (TCP), 0 for a Unix socket.
    public let port: Int
    /// The Unix socket path, nil for TCP.
    public let path: String?

    /// A TCP listener on 127.0.0.1 and a free port.
    public init(tcpHost host: String = "127.0.0.1", backlog: Int32 = 1024) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        self.fd = fd
        guard fd >= 0 else { throw TestSupportError("socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        inet_pton(AF_INET, host, &address.sin_addr)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && listen(fd, backlog) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else {
            let text = String(cString: strerror(errno))
            close(fd)
            throw TestSupportError("bind/listen on \(host): \(text)")
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        path = nil
    }

    /// A Unix stream listener at `path`.
    public init(unixPath: String, backlog: Int32 = 1024) throws {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        self.fd = fd
        guard fd >= 0 else { throw TestSupportError("socket: \(String(cString: strerror(errno)))") }
        let bound = withUnixAddress(unixPath) { bind(fd, $0, $1) == 0 && listen(fd, backlog) == 0 }
        guard bound == true else {
            let text = bound == nil ? "path too long" : String(cString: strerror(errno))
            close(fd)
            throw TestSupportError("bind/listen on \(unixPath): \(text)")
        }
        port = 0
        path = unixPath
    }

    /// True while the socket is in the listening state (SO_ACCEPTCONN): a process that shares it
    /// and called shutdown() on it would have turned that off for every holder.
    public var isListening: Bool {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &value, &length) == 0 && value == 1
    }

    /// True when O_NONBLOCK is set on the open file description (shared with every holder).
    public var isNonBlocking: Bool {
        fcntl(fd, F_GETFL) & O_NONBLOCK != 0
    }

    deinit {
        close(fd)
        if let path { unlink(path) }
    }
}

/// A Unix datagram socket that receives sd_notify messages, to stand in for systemd or baton:
/// give a process `environmentValue` as `NOTIFY_SOCKET`.
public final class NotifySocket: Sendable {
    /// The bound datagram socket, owned by this object.
    public let fd: Int32
    /// The value for `NOTIFY_SOCKET`: the path, or `@name` for an abstract socket.
    public let environmentValue: String

    /// Binds at a filesystem path, or at an abstract name when `address` starts with "@".
    public init(_ address: String) throws {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        self.fd = fd
        guard fd >= 0 else { throw TestSupportError("socket: \(String(cString: strerror(errno)))") }
        guard withUnixAddress(address, { bind(fd, $0, $1) == 0 }) == true else {
            let text = String(cString: strerror(errno))
            close(fd)
            throw TestSupportError("bind \(address): \(text)")
        }
        environmentValue = address
    }

    /// Receives one datagram, or throws after `timeout`.
    public func receive(timeout: Duration = .seconds(30)) throws -> String {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let milliseconds = Int32(min(timeout.seconds * 1000, Double(Int32.max)))
        let ready = poll(&entry, 1, milliseconds)
        guard ready > 0 else { throw TestSupportError("no notify message on \(environmentValue) within \(timeout)") }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, Int32(MSG_DONTWAIT)) }
        guard count >= 0 else { throw TestSupportError("recv: \(String(cString: strerror(errno)))") }
        return String(decoding: buffer.prefix(count), as: UTF8.self)
    }

    deinit {
        close(fd)
        if !environmentValue.hasPrefix("@") { unlink(environmentValue) }
    }
}

/// Calls `body` with a `sockaddr_un` for a path (or "@abstract"); nil when it does not fit.
func withUnixAddress<Result>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result? {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    var bytes = Array(path.utf8)
    let abstract = bytes.first == UInt8(ascii: "@")
    if abstract { bytes[0] = 0 }
    guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
    let length = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)! + bytes.count + (abstract ? 0 : 1)
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(length)) }
    }
}
