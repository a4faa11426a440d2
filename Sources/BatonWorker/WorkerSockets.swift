import BatonCore
import Glibc

/// The few socket calls the library makes itself: binding outside baton, and describing a socket
/// it was handed.
enum WorkerSockets {
    /// Binds `address` as baton's master would: SO_REUSEADDR for TCP, IPV6_V6ONLY for IPv6, a
    /// stale Unix socket file removed first; stream sockets listen with `backlog`. Close-on-exec.
    static func bind(_ address: ListenAddress, backlog: Int32) throws(BatonWorkerError) -> Int32 {
        func failure(_ operation: String, _ code: Int32 = errno) -> BatonWorkerError {
            BatonWorkerError("\(address): \(operation): \(String(cString: strerror(code)))")
        }
        switch address {
        case .tcp(let host, let port), .udp(let host, let port):
            var stream = true
            if case .udp = address { stream = false }
            var hints = addrinfo()
            hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
            hints.ai_socktype = Int32(stream ? SOCK_STREAM.rawValue : SOCK_DGRAM.rawValue)
            var results: UnsafeMutablePointer<addrinfo>?
            let status = getaddrinfo(host, String(port), &hints, &results)
            guard status == 0, let info = results else {
                throw BatonWorkerError("\(address): resolve: \(String(cString: gai_strerror(status)))")
            }
            defer { freeaddrinfo(results) }
            let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw failure("socket") }
            var one: Int32 = 1
            let size = socklen_t(MemoryLayout<Int32>.size)
            if stream { _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, size) }
            if info.pointee.ai_family == AF_INET6 { _ = setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, size) }
            guard Glibc.bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
                let error = failure("bind")
                close(fd)
                throw error
            }
            if stream && listen(fd, backlog) != 0 {
                let error = failure("listen")
                close(fd)
                throw error
            }
            return fd
        case .unixPath(let path), .unixAbstract(let path):
            var abstract = false
            if case .unixAbstract = address { abstract = true }
            if !abstract {
                var info = stat()
                if lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFSOCK { unlink(path) }
            }
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw failure("socket") }
            var unix = sockaddr_un()
            unix.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            let offset = abstract ? 1 : 0
            withUnsafeMutableBytes(of: &unix.sun_path) { raw in
                for (index, byte) in bytes.prefix(raw.count - offset - 1).enumerated() { raw[index + offset] = byte }
            }
            let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)!
            let length = abstract ? pathOffset + 1 + bytes.count : MemoryLayout<sockaddr_un>.size
            let bound = withUnsafePointer(to: &unix) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(length)) }
            }
            guard bound == 0, listen(fd, backlog) == 0 else {
                let error = failure(bound == 0 ? "listen" : "bind")
                close(fd)
                throw error
            }
            return fd
        }
    }

    /// `SO_TYPE` of a socket, or -1 when `fd` is no socket.
    static func socketType(_ fd: Int32) -> Int32 {
        var value: Int32 = -1
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_TYPE, &value, &length) == 0 else { return -1 }
        return value
    }

    /// The bound address in baton's syntax (`tcp://127.0.0.1:8080`, `udp://[::1]:53`,
    /// `unix:/path`, `unix:@name`), nil when it cannot be described.
    static func describe(_ fd: Int32) -> String? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard result == 0 else { return nil }
        let scheme = socketType(fd) == Int32(SOCK_DGRAM.rawValue) ? "udp://" : "tcp://"
        return withUnsafePointer(to: &storage) { pointer -> String? in
            switch Int32(pointer.pointee.ss_family) {
            case AF_INET:
                return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { inet in
                    var address = inet.pointee.sin_addr
                    return "\(scheme)\(numericHost(AF_INET, &address)):\(UInt16(bigEndian: inet.pointee.sin_port))"
                }
            case AF_INET6:
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { inet in
                    var address = inet.pointee.sin6_addr
                    return "\(scheme)[\(numericHost(AF_INET6, &address))]:\(UInt16(bigEndian: inet.pointee.sin6_port))"
                }
            case AF_UNIX:
                return pointer.withMemoryRebound(to: sockaddr_un.self, capacity: 1) { unix in
                    let offset = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)!
                    let count = Int(length) - offset
                    guard count > 0 else { return nil }
                    let bytes = withUnsafeBytes(of: unix.pointee.sun_path) { Array($0.prefix(count)) }
                    if bytes[0] == 0 { return "unix:@" + String(decoding: bytes.dropFirst(), as: UTF8.self) }
                    return "unix:" + String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
                }
            default:
                return nil
            }
        }
    }

    private static func numericHost(_ family: Int32, _ address: UnsafeRawPointer) -> String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        guard inet_ntop(family, address, &buffer, socklen_t(buffer.count)) != nil else { return "?" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Sends one datagram to `NOTIFY_SOCKET` (`@name` for an abstract address, else a path).
    static func notify(_ text: String, socketAddress: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var unix = sockaddr_un()
        unix.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(socketAddress.utf8)
        let abstract = bytes.first == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: unix.sun_path)
        guard bytes.count + (abstract ? 0 : 1) <= capacity else { return false }
        withUnsafeMutableBytes(of: &unix.sun_path) { $0.copyBytes(from: bytes) }
        let length = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)! + bytes.count + (abstract ? 0 : 1)
        let payload = Array(text.utf8)
        let sent = withUnsafePointer(to: &unix) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, payload, payload.count, Int32(MSG_NOSIGNAL), $0, socklen_t(length))
            }
        }
        return sent == payload.count
    }
}

/// What went wrong finding or binding the worker's sockets, said for a person.
public struct BatonWorkerError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
