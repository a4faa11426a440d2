import BatonCore
import CBaton
import CSystemd
import Glibc
import Logging

/// A file descriptor systemd passed at start-up (`LISTEN_FDS`: a socket unit's listener, or one
/// the fd store kept), described from the kernel's view of it rather than trusted by its name.
public struct ReceivedSocket: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable, CustomStringConvertible {
        case stream, datagram, seqpacket
        case other(Int32)
        /// Not a socket at all (`sd_listen_fds` checks nothing).
        case notASocket

        public var description: String {
            switch self {
            case .stream: return "stream"
            case .datagram: return "datagram"
            case .seqpacket: return "seqpacket"
            case .other(let type): return "socket type \(type)"
            case .notASocket: return "not a socket"
            }
        }
    }

    public var fd: CInt
    /// Its `LISTEN_FDNAMES` entry: a socket unit's `FileDescriptorName=` (default: the unit's
    /// name), an `FDNAME=` of the fd store, or `unknown`.
    public var name: String
    public var kind: Kind
    /// `AF_INET`, `AF_INET6`, `AF_UNIX`, ...; `AF_UNSPEC` when unknown.
    public var family: Int32
    /// `SO_ACCEPTCONN`: listen() was called on it.
    public var isListening: Bool
    /// The local address (getsockname) in the configuration's syntax; nil for an unnamed socket.
    public var address: ListenAddress?
    /// The socket itself (device and inode): two fds of one socket share it.
    public var identity: SocketIdentity?

    /// Reads what the kernel says about `fd`.
    public static func describe(fd: CInt, name: String) -> ReceivedSocket {
        var result = ReceivedSocket(
            fd: fd, name: name, kind: .notASocket, family: AF_UNSPEC, isListening: false, address: nil,
            identity: SocketIdentity(fd: fd))
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFSOCK else { return result }
        var type: CInt = 0
        var length = socklen_t(MemoryLayout<CInt>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) == 0 else { return result }
        switch type {
        case CInt(SOCK_STREAM.rawValue): result.kind = .stream
        case CInt(SOCK_DGRAM.rawValue): result.kind = .datagram
        case CInt(SOCK_SEQPACKET.rawValue): result.kind = .seqpacket
        default: result.kind = .other(type)
        }
        var listening: CInt = 0
        length = socklen_t(MemoryLayout<CInt>.size)
        result.isListening = getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) == 0 && listening != 0
        var storage = sockaddr_storage()
        var addressLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &addressLength) }
        }
        guard named == 0 else { return result }
        result.family = CInt(storage.ss_family)
        result.address = SocketActivation.listenAddress(&storage, length: addressLength, datagram: result.kind == .datagram)
        return result
    }

    /// `fd=3 name=http tcp://127.0.0.1:8080 (listening stream)`.
    public var description: String {
        let state: String
        switch kind {
        case .stream: state = isListening ? "listening stream" : "stream, not listening"
        default: state = kind.description
        }
        return "fd=\(fd) name=\(name) \(address?.description ?? "(no address)") (\(state))"
    }
}

/// Which socket an fd refers to: its device and inode, as fstat() reports them. Two fds of one
/// socket (say, a socket unit's and the fd store's copy) compare equal.
public struct SocketIdentity: Sendable, Hashable {
    public var device: UInt64
    public var inode: UInt64

    public init?(fd: CInt) {
        var info = stat()
        guard fstat(fd, &info) == 0 else { return nil }
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
    }
}

/// How systemd's sockets map onto the configured listeners: one slot per configured address, in
/// configuration (fd) order, each either taking a received socket or to be bound by the master.
public struct ActivationMatch: Sendable {
    public struct Slot: Sendable {
        public var listener: ListenerSpec
        public var address: ListenAddress
        /// The socket systemd passed for this address; nil: the master binds it.
        public var received: ReceivedSocket?

        /// The received socket as the master keeps it: never unlinked, never stored.
        public var adopted: BoundSocket? {
            received.map { received in
                BoundSocket(
                    name: listener.name, configured: address, fd: received.fd,
                    local: received.address?.description ?? "fd \(received.fd)", ownsPath: nil, fromSystemd: true)
            }
        }
    }

    /// A received fd that no listener takes, and why. It is closed, never a start failure.
    public struct Rejection: Sendable, CustomStringConvertible {
        public var socket: ReceivedSocket
        public var reason: String
        public var description: String { "\(socket): \(reason)" }
    }

    public var slots: [Slot]
    public var unmatched: [Rejection]
    /// Further fds of a socket that was already matched (a socket unit's copy and the fd store's
    /// copy of one socket): closed silently, the socket stays open through the other fd.
    public var duplicates: [ReceivedSocket]

    /// The received sockets as the master keeps them, in configuration order.
    public var sockets: [BoundSocket] {
        slots.compactMap(\.adopted)
    }

    /// The configured addresses that got no socket from systemd, in configuration order.
    public var toBind: [(listener: ListenerSpec, address: ListenAddress)] {
        slots.filter { $0.received == nil }.map { ($0.listener, $0.address) }
    }
}

/// The master's listeners after socket activation: every configured address has a socket, in
/// configuration order; `rejected` were closed (and should leave the fd store).
public struct ActivatedListeners: Sendable {
    public var sockets: [BoundSocket]
    public var rejected: [ActivationMatch.Rejection]
}

/// Socket activation in: the fds systemd passed at start-up, matched to the configured listeners.
public enum SocketActivation {
    /// What `receive()` found.
    public struct Reception: Sendable {
        public var sockets: [ReceivedSocket]
        /// Set when systemd's variables were inconsistent (the fds are then matched by address only).
        public var problem: String?

        public init(sockets: [ReceivedSocket] = [], problem: String? = nil) {
            self.sockets = sockets
            self.problem = problem
        }
    }

    /// Takes the fds systemd passed (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`) and removes
    /// those variables from the environment, so nothing started later inherits them. Each fd is
    /// made close-on-exec. Call once, first thing in `main`, before any thread exists: libsystemd
    /// reads and unsets the variables with getenv/unsetenv.
    public static func receive() -> Reception {
        // Read before libsystemd unsets them: if the names do not match the fds, the fds are still
        // ours (LISTEN_PID matched) and must not be left open unknown.
        let announced = getenv("LISTEN_FDS").flatMap { Int32(String(cString: $0)) } ?? 0
        let forUs = getenv("LISTEN_PID").flatMap { pid_t(String(cString: $0)) } == getpid()
        var names: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
        let count = sd_listen_fds_with_names(1, &names)
        defer {
            if let names {
                var cursor = names
                while let name = cursor.pointee {
                    free(name)
                    cursor += 1
                }
                free(names)
            }
        }
        let start = CInt(SD_LISTEN_FDS_START)
        if count < 0 {
            guard forUs, announced > 0, announced < 4096 else {
                return Reception(problem: "systemd's LISTEN_FDS/LISTEN_PID are invalid: \(String(cString: strerror(-count)))")
            }
            let fds = (start..<(start + announced)).filter { fcntl($0, F_GETFD) >= 0 }
            for fd in fds { _ = baton_set_cloexec(fd, 1) }
            return Reception(
                sockets: fds.map { ReceivedSocket.describe(fd: $0, name: "unknown") },
                problem: "LISTEN_FDNAMES does not name each of the \(announced) fds in LISTEN_FDS: matching them by address only")
        }
        var sockets: [ReceivedSocket] = []
        for index in 0..<Int(count) {
            let fd = start + CInt(index)
            // sd_listen_fds sets FD_CLOEXEC too (checked on 252); keep it true whatever the version.
            _ = baton_set_cloexec(fd, 1)
            let name = names?[index].map { String(cString: $0) } ?? "unknown"
            sockets.append(ReceivedSocket.describe(fd: fd, name: name))
        }
        return Reception(sockets: sockets)
    }

    /// Matches received sockets to configured listeners. Pure apart from resolving configured
    /// host names (getaddrinfo, as binding would) when an fd must be matched by address.
    ///
    /// 1. By name: each configured address of a listener takes a received fd of the same name
    ///    and the same address (port 0 matching any port); the addresses left take that name's
    ///    remaining fds on the same port in order (another host, e.g. `[::]` for `0.0.0.0`).
    /// 2. By address: fds whose name names no configured listener (`unknown`, a socket unit's
    ///    default name) are matched by their exact local address.
    /// Every candidate must be of the listener's type (a listening stream socket for `tcp://` and
    /// `unix:`, a datagram socket for `udp://`). Fds named `stored`, of a wrong type, or matching
    /// nothing are `unmatched`; a second fd of an already matched socket is a `duplicate`.
    public static func match(received: [ReceivedSocket], listeners: [ListenerSpec]) -> ActivationMatch {
        var slots = listeners.flatMap { listener in
            listener.addresses.map { ActivationMatch.Slot(listener: listener, address: $0, received: nil) }
        }
        var remaining: [ReceivedSocket] = []
        var duplicates: [ReceivedSocket] = []
        var seen: Set<SocketIdentity> = []
        for socket in received {
            if let identity = socket.identity, socket.kind != .notASocket, !seen.insert(identity).inserted {
                duplicates.append(socket)
            } else {
                remaining.append(socket)
            }
        }
        let configuredNames = Set(listeners.map(\.name))
        var resolved: [ListenAddress: [ListenAddress]] = [:]
        func matches(_ socket: ReceivedSocket, _ address: ListenAddress, anyPortForZero: Bool) -> Bool {
            guard let local = socket.address else { return false }
            if resolved[address] == nil { resolved[address] = canonicalAddresses(address) }
            return resolved[address]!.contains { sameAddress(local, configured: $0, anyPortForZero: anyPortForZero) }
        }
        func take(where predicate: (ReceivedSocket) -> Bool) -> ReceivedSocket? {
            guard let index = remaining.firstIndex(where: predicate) else { return nil }
            return remaining.remove(at: index)
        }
        // 1a. By name and address. A configured port 0 takes any port here: the fd store gives a
        // name's sockets back in any order, and each should find its own host again.
        for index in slots.indices {
            let slot = slots[index]
            slots[index].received = take {
                $0.name == slot.listener.name && incompatibility($0, slot.address) == nil
                    && matches($0, slot.address, anyPortForZero: true)
            }
        }
        // 1b. By name, in order, on the same port: a socket unit's `ListenStream=80` is `[::]:80`
        // where the configuration may say `0.0.0.0:80`. A socket on another port (or path) stays
        // unmatched: after a restart with a changed address, the fd store's old socket must not win.
        for index in slots.indices where slots[index].received == nil {
            let slot = slots[index]
            slots[index].received = take {
                $0.name == slot.listener.name && incompatibility($0, slot.address) == nil && samePort($0.address, slot.address)
            }
        }
        // 2. By address, for fds whose name is no listener's.
        for index in slots.indices where slots[index].received == nil {
            let slot = slots[index]
            slots[index].received = take {
                !configuredNames.contains($0.name) && $0.name != "stored"
                    && incompatibility($0, slot.address) == nil && matches($0, slot.address, anyPortForZero: false)
            }
        }
        let unmatched = remaining.map { socket in
            ActivationMatch.Rejection(socket: socket, reason: rejectionReason(socket, slots: slots, configuredNames: configuredNames))
        }
        return ActivationMatch(slots: slots, unmatched: unmatched, duplicates: duplicates)
    }

    /// The master's listeners: received sockets adopted, the other configured addresses bound.
    /// Unmatched and duplicate fds are closed (a warning for each unmatched one). On a bind
    /// failure every socket is closed (self-bound socket files removed) and the error thrown.
    public static func activate(
        _ listeners: [ListenerSpec], received: [ReceivedSocket], logger: Logger
    ) throws(ListenerError) -> ActivatedListeners {
        let plan = match(received: received, listeners: listeners)
        for rejection in plan.unmatched {
            logger.warning("systemd passed \(rejection.socket): \(rejection.reason); closed")
            close(rejection.socket.fd)
        }
        for duplicate in plan.duplicates {
            logger.debug("systemd passed \(duplicate): another fd of an already matched socket; closed")
            close(duplicate.fd)
        }
        var sockets: [BoundSocket] = []
        for slot in plan.slots {
            if let adopted = slot.adopted {
                sockets.append(adopted)
                if let local = slot.received?.address,
                    !canonicalAddresses(slot.address).contains(where: { sameAddress(local, configured: $0) })
                {
                    logger.notice(
                        "listener=\(slot.listener.name): systemd passed \(local) where the configuration says \(slot.address); using systemd's socket")
                }
                continue
            }
            do {
                sockets.append(try ListenerBinder.bind(slot.address, of: slot.listener))
            } catch {
                for socket in sockets {
                    close(socket.fd)
                    if let path = socket.ownsPath { unlink(path) }
                }
                throw error
            }
        }
        return ActivatedListeners(sockets: sockets, rejected: plan.unmatched)
    }

    // MARK: - Helpers

    /// Why `socket` cannot serve `address`, or nil when it can.
    static func incompatibility(_ socket: ReceivedSocket, _ address: ListenAddress) -> String? {
        switch address {
        case .udp:
            return socket.kind == .datagram ? nil : "a \(socket.kind) fd where a datagram socket is configured"
        case .tcp, .unixPath, .unixAbstract:
            guard socket.kind == .stream else { return "a \(socket.kind) fd where a listening stream socket is configured" }
            return socket.isListening ? nil : "a stream socket that is not listening (an accepted connection?)"
        }
    }

    static func rejectionReason(_ socket: ReceivedSocket, slots: [ActivationMatch.Slot], configuredNames: Set<String>) -> String {
        if socket.kind == .notASocket { return "not a socket" }
        if socket.name == "stored" { return "stored in the fd store without a name (FDNAME=)" }
        if configuredNames.contains(socket.name) {
            let own = slots.filter { $0.listener.name == socket.name }
            let open = own.filter { $0.received == nil }
            guard let first = open.first else {
                return "listener \"\(socket.name)\" has \(own.count) address(es), each already has a socket"
            }
            if let problem = incompatibility(socket, first.address) {
                return "listener \"\(socket.name)\" wants \(first.address): \(problem)"
            }
            let addresses = open.map(\.address.description).joined(separator: ", ")
            return "listener \"\(socket.name)\" is configured at \(addresses), not at this address"
        }
        return "matches no configured listener by name or address"
    }

    /// A configured address as bind() would see it: numeric hosts normalised, host names
    /// resolved (every result), so it compares with a getsockname() result.
    static func canonicalAddresses(_ address: ListenAddress) -> [ListenAddress] {
        switch address {
        case .unixPath, .unixAbstract:
            return [address]
        case .tcp(let host, let port), .udp(let host, let port):
            let datagram: Bool
            if case .udp = address { datagram = true } else { datagram = false }
            guard case .success(let resolved) = PassiveAddress.resolve(host: host, port: port, datagram: datagram) else {
                return [address]
            }
            var found: [ListenAddress] = []
            for var candidate in resolved {
                if let canonical = listenAddress(&candidate.storage, length: candidate.length, datagram: datagram),
                    !found.contains(canonical)
                {
                    found.append(canonical)
                }
            }
            return found.isEmpty ? [address] : found
        }
    }

    /// Both inet addresses of the same port (a configured port 0 matches any); never for Unix
    /// sockets, whose path is their whole address.
    static func samePort(_ local: ListenAddress?, _ configured: ListenAddress) -> Bool {
        switch (local, configured) {
        case (.tcp(_, let port)?, .tcp(_, let wanted)), (.udp(_, let port)?, .udp(_, let wanted)):
            return port == wanted || wanted == 0
        default:
            return false
        }
    }

    /// Equal addresses; with `anyPortForZero`, a configured port 0 ("any free port") matches any
    /// port of the same host.
    static func sameAddress(_ local: ListenAddress, configured: ListenAddress, anyPortForZero: Bool = true) -> Bool {
        switch (local, configured) {
        case (.tcp(let host, let port), .tcp(let wantedHost, let wantedPort)),
            (.udp(let host, let port), .udp(let wantedHost, let wantedPort)):
            return host == wantedHost && (port == wantedPort || (anyPortForZero && wantedPort == 0))
        default:
            return local == configured
        }
    }

    /// A socket address in the configuration's terms: `tcp://`/`udp://` for inet (by socket
    /// type), `unix:/path` or `unix:@name`; nil for an unnamed Unix socket or another family.
    static func listenAddress(_ storage: inout sockaddr_storage, length: socklen_t, datagram: Bool) -> ListenAddress? {
        var host = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch CInt(storage.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { address in
                    var raw = address.pointee.sin_addr
                    inet_ntop(AF_INET, &raw, &host, socklen_t(host.count))
                    let text = SocketAddress.cString(host)
                    let port = UInt16(bigEndian: address.pointee.sin_port)
                    return datagram ? .udp(host: text, port: port) : .tcp(host: text, port: port)
                }
            }
        case AF_INET6:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { address in
                    var raw = address.pointee.sin6_addr
                    inet_ntop(AF_INET6, &raw, &host, socklen_t(host.count))
                    let text = SocketAddress.cString(host)
                    let port = UInt16(bigEndian: address.pointee.sin6_port)
                    return datagram ? .udp(host: text, port: port) : .tcp(host: text, port: port)
                }
            }
        case AF_UNIX:
            let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)!
            let count = min(Int(length) - pathOffset, MemoryLayout<sockaddr_un>.size - pathOffset)
            guard count > 0 else { return nil }
            let bytes: [UInt8] = withUnsafeBytes(of: &storage) { Array($0[pathOffset..<(pathOffset + count)]) }
            if bytes[0] == 0 {
                // Abstract: every byte after the leading NUL counts, NULs included.
                return .unixAbstract(String(decoding: bytes.dropFirst(), as: UTF8.self))
            }
            return .unixPath(String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self))
        default:
            return nil
        }
    }
}
