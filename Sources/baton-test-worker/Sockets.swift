import CBaton
import Glibc

/// An address the worker can bind, or the local address of a socket it was handed.
enum SocketAddress: Equatable {
    case ipv4(host: String, port: UInt16)
    case ipv6(host: String, port: UInt16)
    /// A filesystem path, or an abstract name written with a leading "@".
    case unix(path: String)

    /// `127.0.0.1:8080`, `[::1]:0`, `unix:/path`, `unix:@abstract`; a `tcp://` prefix is allowed.
    init?(parsing text: String) {
        var text = Substring(text)
        if text.hasPrefix("unix:") {
            let path = text.dropFirst("unix:".count)
            guard !path.isEmpty else { return nil }
            self = .unix(path: String(path))
            return
        }
        if text.hasPrefix("tcp://") { text = text.dropFirst("tcp://".count) }
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else {
            return nil
        }
        let host = text[..<colon]
        if host.hasPrefix("[") && host.hasSuffix("]") {
            self = .ipv6(host: String(host.dropFirst().dropLast()), port: port)
        } else if host.isEmpty || host == "*" {
            self = .ipv4(host: "0.0.0.0", port: port)
        } else if host == "localhost" {
            self = .ipv4(host: "127.0.0.1", port: port)
        } else {
            self = .ipv4(host: String(host), port: port)
        }
    }

    /// "ipv4", "ipv6" or "unix": the family column of `/listeners`.
    var familyName: String {
        switch self {
        case .ipv4: "ipv4"
        case .ipv6: "ipv6"
        case .unix: "unix"
        }
    }

    /// `127.0.0.1:8080`, `[::1]:8080`, `/path` or `@name`.
    var text: String {
        switch self {
        case .ipv4(let host, let port): "\(host):\(port)"
        case .ipv6(let host, let port): "[\(host)]:\(port)"
        case .unix(let path): path
        }
    }

    /// Calls `body` with this address as a `sockaddr`, or returns nil when it cannot be encoded
    /// (a host that is not a numeric address, a path longer than `sun_path`).
    func withSockaddr<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result? {
        switch self {
        case .ipv4(let host, let port):
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { return nil }
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    body($0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        case .ipv6(let host, let port):
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = port.bigEndian
            guard inet_pton(AF_INET6, host, &address.sin6_addr) == 1 else { return nil }
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    body($0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        case .unix(let path):
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            var bytes = Array(path.utf8)
            let abstract = bytes.first == UInt8(ascii: "@")
            if abstract { bytes[0] = 0 }
            let capacity = MemoryLayout.size(ofValue: address.sun_path)
            // A path needs its terminating NUL; an abstract name is counted by the length instead.
            guard bytes.count + (abstract ? 0 : 1) <= capacity else { return nil }
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                raw.copyBytes(from: bytes)
            }
            let offset = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)!
            let length = offset + bytes.count + (abstract ? 0 : 1)
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(length)) }
            }
        }
    }
}

enum Sockets {
    /// Binds a listening stream socket with SO_REUSEADDR (and IPV6_V6ONLY for IPv6), close-on-exec.
    /// A stale Unix socket file at the path is removed first.
    static func bindListener(_ address: SocketAddress, backlog: Int32 = 1024) throws(SystemError) -> Int32 {
        let family: Int32
        switch address {
        case .ipv4: family = AF_INET
        case .ipv6: family = AF_INET6
        case .unix(let path):
            family = AF_UNIX
            if !path.hasPrefix("@") {
                var info = stat()
                if lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFSOCK { unlink(path) }
            }
        }
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket") }
        var one: Int32 = 1
        let size = socklen_t(MemoryLayout<Int32>.size)
        if family != AF_UNIX {
            _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, size)
        }
        if family == AF_INET6 {
            _ = setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, size)
        }
        guard let bound = address.withSockaddr({ bind(fd, $0, $1) }) else {
            close(fd)
            throw SystemError("bind \(address.text)", code: EINVAL)
        }
        guard bound == 0 else {
            let code = errno
            close(fd)
            throw SystemError("bind \(address.text)", code: code)
        }
        guard listen(fd, backlog) == 0 else {
            let code = errno
            close(fd)
            throw SystemError("listen \(address.text)", code: code)
        }
        return fd
    }

    /// The local address of a socket (getsockname), nil when it has none we can describe.
    static func localAddress(of fd: Int32) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard result == 0 else { return nil }
        return withUnsafePointer(to: &storage) { pointer -> SocketAddress? in
            switch Int32(pointer.pointee.ss_family) {
            case AF_INET:
                return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { inet in
                    var address = inet.pointee.sin_addr
                    return .ipv4(host: numericHost(AF_INET, &address), port: UInt16(bigEndian: inet.pointee.sin_port))
                }
            case AF_INET6:
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { inet in
                    var address = inet.pointee.sin6_addr
                    return .ipv6(host: numericHost(AF_INET6, &address), port: UInt16(bigEndian: inet.pointee.sin6_port))
                }
            case AF_UNIX:
                return pointer.withMemoryRebound(to: sockaddr_un.self, capacity: 1) { unix in
                    let offset = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)!
                    let count = Int(length) - offset
                    guard count > 0 else { return .unix(path: "(unnamed)") }
                    let bytes = withUnsafeBytes(of: unix.pointee.sun_path) { Array($0.prefix(count)) }
                    if bytes[0] == 0 {
                        return .unix(path: "@" + String(decoding: bytes.dropFirst(), as: UTF8.self))
                    }
                    let path = bytes.prefix { $0 != 0 }
                    return .unix(path: String(decoding: path, as: UTF8.self))
                }
            default:
                return nil
            }
        }
    }

    /// True for a socket of type SOCK_STREAM that is listening.
    static func isStreamListener(_ fd: Int32) -> Bool {
        intOption(fd, SO_TYPE) == Int32(SOCK_STREAM.rawValue) && intOption(fd, SO_ACCEPTCONN) == 1
    }

    /// "stream", "dgram" or "seqpacket"; "?" for anything else (or no socket).
    static func typeName(_ fd: Int32) -> String {
        switch intOption(fd, SO_TYPE) {
        case Int32(SOCK_STREAM.rawValue): "stream"
        case Int32(SOCK_DGRAM.rawValue): "dgram"
        case Int32(SOCK_SEQPACKET.rawValue): "seqpacket"
        default: "?"
        }
    }

    private static func intOption(_ fd: Int32, _ option: Int32) -> Int32? {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, option, &value, &length) == 0 else { return nil }
        return value
    }

    private static func numericHost(_ family: Int32, _ address: UnsafeRawPointer) -> String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        guard inet_ntop(family, address, &buffer, socklen_t(buffer.count)) != nil else { return "?" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
