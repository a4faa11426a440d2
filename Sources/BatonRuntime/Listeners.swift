import BatonCore
import CBaton
import Glibc

/// A bound socket of a listener, owned by the master for its whole life. Every generation gets
/// this same open file description, so the accept queue survives every handover.
public struct BoundSocket: Sendable {
    public var name: String
    public var configured: ListenAddress
    public var fd: CInt
    /// The address actually bound (a port 0 resolved), in the configuration's syntax.
    public var local: String
    /// Whether the master created a socket file it should remove when it exits.
    public var ownsPath: String?
    /// Passed by systemd (socket activation or the fd store) rather than bound by the master.
    /// Such a socket is shared with systemd: never `shutdown()` it, never unlink its file, and do
    /// not put it in the fd store (systemd keeps its own copy).
    public var fromSystemd: Bool = false
}

public enum ListenerBinder {
    /// Binds every address of every listener, in order. On failure the sockets already bound are
    /// closed and the error names the listener, the address and what to do.
    public static func bind(_ listeners: [ListenerSpec]) throws(ListenerError) -> [BoundSocket] {
        var bound: [BoundSocket] = []
        for listener in listeners {
            for address in listener.addresses {
                do {
                    bound.append(try bind(address, of: listener))
                } catch {
                    for socket in bound { close(socket.fd) }
                    throw error
                }
            }
        }
        return bound
    }

    static func bind(_ address: ListenAddress, of listener: ListenerSpec) throws(ListenerError) -> BoundSocket {
        func failure(_ operation: String, _ code: Int32 = errno) -> ListenerError {
            ListenerError(listener: listener.name, address: address.description, operation: operation, code: code)
        }
        switch address {
        case .tcp(let host, let port), .udp(let host, let port):
            let stream: Bool
            if case .tcp = address { stream = true } else { stream = false }
            let info: PassiveAddress
            switch PassiveAddress.resolve(host: host, port: port, datagram: !stream) {
            case .success(let resolved):
                info = resolved[0]
            case .failure(let error):
                throw ListenerError(
                    listener: listener.name, address: address.description, operation: "resolve",
                    code: 0, detail: error.description)
            }
            let fd = socket(info.family, info.socketType | CInt(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw failure("socket") }
            var one: CInt = 1
            var v6only: CInt = listener.ipv6only ? 1 : 0
            if stream && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<CInt>.size)) != 0 {
                let error = failure("setsockopt(SO_REUSEADDR)")
                close(fd)
                throw error
            }
            if listener.reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<CInt>.size)) != 0 {
                let error = failure("setsockopt(SO_REUSEPORT)")
                close(fd)
                throw error
            }
            if info.family == AF_INET6
                && setsockopt(fd, CInt(IPPROTO_IPV6), IPV6_V6ONLY, &v6only, socklen_t(MemoryLayout<CInt>.size)) != 0
            {
                let error = failure("setsockopt(IPV6_V6ONLY)")
                close(fd)
                throw error
            }
            var storage = info.storage
            let bound = withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, info.length) }
            }
            guard bound == 0 else {
                let error = failure("bind")
                close(fd)
                throw error
            }
            if stream && listen(fd, listener.backlog) != 0 {
                let error = failure("listen")
                close(fd)
                throw error
            }
            let local = SocketAddress.local(of: fd).map { "\(stream ? "tcp" : "udp")://\($0)" } ?? address.description
            return BoundSocket(name: listener.name, configured: address, fd: fd, local: local, ownsPath: nil)
        case .unixPath(let path):
            try removeStaleSocketFile(path, listener: listener, address: address)
            let fd = socket(AF_UNIX, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw failure("socket") }
            let bound = SocketAddress.withUnix(path: path, abstract: false) { Glibc.bind(fd, $0, $1) }
            guard bound == 0 else {
                let error = failure("bind")
                close(fd)
                throw error
            }
            if let mode = listener.mode, chmod(path, mode_t(mode)) != 0 {
                let error = failure("chmod")
                close(fd)
                unlink(path)
                throw error
            }
            if listener.owner != nil || listener.group != nil {
                do throws(ListenerError) {
                    let owner: (uid: uid_t?, gid: gid_t?)
                    do {
                        owner = try Credentials.fileOwnership(owner: listener.owner, group: listener.group)
                    } catch {
                        throw ListenerError(
                            listener: listener.name, address: address.description, operation: "chown", code: error.errno,
                            detail: error.message)
                    }
                    // -1 leaves that id as it is.
                    guard chown(path, owner.uid ?? uid_t.max, owner.gid ?? gid_t.max) == 0 else { throw failure("chown") }
                } catch {
                    close(fd)
                    unlink(path)
                    throw error
                }
            }
            guard listen(fd, listener.backlog) == 0 else {
                let error = failure("listen")
                close(fd)
                unlink(path)
                throw error
            }
            return BoundSocket(name: listener.name, configured: address, fd: fd, local: "unix:\(path)", ownsPath: path)
        case .unixAbstract(let name):
            let fd = socket(AF_UNIX, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw failure("socket") }
            let bound = SocketAddress.withUnix(path: name, abstract: true) { Glibc.bind(fd, $0, $1) }
            guard bound == 0, listen(fd, listener.backlog) == 0 else {
                let error = failure(bound == 0 ? "listen" : "bind")
                close(fd)
                throw error
            }
            return BoundSocket(name: listener.name, configured: address, fd: fd, local: "unix:@\(name)", ownsPath: nil)
        }
    }

    /// A socket file left by a dead process is removed; one somebody still listens on, or a file
    /// that is not a socket, is an error.
    static func removeStaleSocketFile(_ path: String, listener: ListenerSpec, address: ListenAddress) throws(ListenerError) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw ListenerError(
                listener: listener.name, address: address.description, operation: "bind", code: EEXIST,
                detail: "\(path) exists and is not a socket")
        }
        let probe = socket(AF_UNIX, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        guard probe >= 0 else { return }
        defer { close(probe) }
        let connected = SocketAddress.withUnix(path: path, abstract: false) { connect(probe, $0, $1) }
        if connected == 0 {
            throw ListenerError(
                listener: listener.name, address: address.description, operation: "bind", code: EADDRINUSE,
                detail: "another process listens on \(path)")
        }
        if errno == ECONNREFUSED { unlink(path) }
    }
}

public struct ListenerError: Error, Sendable, CustomStringConvertible {
    public var listener: String
    public var address: String
    public var operation: String
    public var code: Int32
    public var detail: String?

    public var description: String {
        var text = "listener \"\(listener)\": \(address): \(operation): "
        text += detail ?? String(cString: strerror(code))
        switch code {
        case EACCES where operation == "bind": text += " (run as root or use a port >= 1024)"
        case EADDRINUSE where detail == nil: text += " (another process is listening there)"
        case EADDRNOTAVAIL: text += " (no interface of this machine has that address)"
        default: break
        }
        return text
    }
}

/// sockaddr plumbing.
enum SocketAddress {
    /// Calls `body` with a `sockaddr_un` for `path` (abstract: a leading NUL byte).
    static func withUnix<R>(path: String, abstract: Bool, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let offset = abstract ? 1 : 0
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.prefix(raw.count - offset - 1).enumerated() { raw[index + offset] = byte }
        }
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)!
        let length = abstract ? pathOffset + 1 + bytes.count : MemoryLayout<sockaddr_un>.size
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(length)) }
        }
    }

    /// `127.0.0.1:8080` or `[::1]:8080` for a bound inet socket.
    static func local(of fd: CInt) -> String? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let status = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard status == 0 else { return nil }
        return describe(&storage)
    }

    static func cString(_ chars: [CChar]) -> String {
        String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func describe(_ storage: inout sockaddr_storage) -> String? {
        var host = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch CInt(storage.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { address in
                    var raw = address.pointee.sin_addr
                    inet_ntop(AF_INET, &raw, &host, socklen_t(host.count))
                    return "\(cString(host)):\(UInt16(bigEndian: address.pointee.sin_port))"
                }
            }
        case AF_INET6:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { address in
                    var raw = address.pointee.sin6_addr
                    inet_ntop(AF_INET6, &raw, &host, socklen_t(host.count))
                    return "[\(cString(host))]:\(UInt16(bigEndian: address.pointee.sin6_port))"
                }
            }
        default:
            return nil
        }
    }
}
