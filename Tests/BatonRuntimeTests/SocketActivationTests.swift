import BatonCore
import BatonTestSupport
import CBaton
import Foundation
import Glibc
import Logging
import Testing

@testable import BatonRuntime

/// Socket activation in: received fds (real sockets, described by the kernel) matched to
/// configured listeners by name, then by address; what matches nothing is closed.
@Suite struct SocketActivationTests {
    @Test func describesWhatTheKernelSays() throws {
        let tcp = try TestSocket.tcp()
        let udp = try TestSocket.udp()
        let abstractName = "baton-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let abstract = try TestSocket.unix(abstract: abstractName)
        let idle = try TestSocket.tcp(listening: false)
        var ends: [CInt] = [-1, -1]
        try #require(pipe(&ends) == 0)
        defer { [tcp, udp, abstract, idle].forEach { $0.close() }; close(ends[0]); close(ends[1]) }

        let stream = ReceivedSocket.describe(fd: tcp.fd, name: "http")
        #expect(stream.kind == .stream)
        #expect(stream.isListening)
        #expect(stream.family == AF_INET)
        #expect(stream.address == .tcp(host: "127.0.0.1", port: tcp.port))
        #expect(stream.description == "fd=\(tcp.fd) name=http tcp://127.0.0.1:\(tcp.port) (listening stream)")

        let datagram = ReceivedSocket.describe(fd: udp.fd, name: "dns")
        #expect(datagram.kind == .datagram)
        #expect(datagram.address == .udp(host: "127.0.0.1", port: udp.port))

        #expect(ReceivedSocket.describe(fd: abstract.fd, name: "ctl").address == .unixAbstract(abstractName))
        #expect(!ReceivedSocket.describe(fd: idle.fd, name: "x").isListening)
        #expect(ReceivedSocket.describe(fd: ends[0], name: "x").kind == .notASocket)
    }

    @Test func matchesByNameAndAddress() throws {
        let v4 = try TestSocket.tcp()
        let v6 = try TestSocket.tcp(host: "::1")
        let other = try TestSocket.tcp()
        defer { [v4, v6, other].forEach { $0.close() } }
        let listeners = [
            ListenerSpec(name: "http", addresses: [.tcp(host: "::1", port: v6.port), .tcp(host: "127.0.0.1", port: v4.port)]),
            ListenerSpec(name: "admin", addresses: [.tcp(host: "127.0.0.1", port: 0)]),
        ]
        // systemd's order differs from the configuration's: each address takes its own socket.
        let received = [v4.received("http"), v6.received("http")]
        let plan = SocketActivation.match(received: received, listeners: listeners)
        #expect(plan.unmatched.isEmpty)
        #expect(plan.slots.map { $0.received?.fd } == [v6.fd, v4.fd, nil])
        let sockets = plan.sockets
        #expect(sockets.map(\.fd) == [v6.fd, v4.fd])
        #expect(sockets.map(\.name) == ["http", "http"])
        #expect(sockets.allSatisfy { $0.fromSystemd && $0.ownsPath == nil })
        #expect(sockets.map(\.local) == ["tcp://[::1]:\(v6.port)", "tcp://127.0.0.1:\(v4.port)"])
        #expect(plan.toBind.map(\.listener.name) == ["admin"])
        #expect(plan.toBind.map(\.address) == [.tcp(host: "127.0.0.1", port: 0)])
        // `other` is named http and surplus: a name's fds never go to another listener.
        let surplus = SocketActivation.match(received: received + [other.received("http")], listeners: listeners)
        #expect(surplus.unmatched.map(\.socket.fd) == [other.fd])
        #expect(surplus.unmatched.first?.reason.contains("each already has a socket") == true)
        #expect(surplus.toBind.map(\.listener.name) == ["admin"])
    }

    @Test func aNameFallsBackToOrderOnTheSamePort() throws {
        let first = try TestSocket.tcp()
        let second = try TestSocket.tcp(host: "::1")
        defer { [first, second].forEach { $0.close() } }
        // The socket unit listens on other hosts than the configuration says (as `ListenStream=80`
        // gives `[::]:80` where the file says `0.0.0.0:80`): the name and the port decide.
        let listeners = [
            ListenerSpec(
                name: "http",
                addresses: [.tcp(host: "0.0.0.0", port: second.port), .tcp(host: "0.0.0.0", port: first.port)])
        ]
        let plan = SocketActivation.match(received: [first.received("http"), second.received("http")], listeners: listeners)
        #expect(plan.slots.map { $0.received?.fd } == [second.fd, first.fd])
        #expect(plan.toBind.isEmpty)
        #expect(plan.unmatched.isEmpty)
        // One fd for two addresses: its port's address takes it, the other is bound by the master.
        let short = SocketActivation.match(received: [first.received("http")], listeners: listeners)
        #expect(short.slots.map { $0.received?.fd } == [nil, first.fd])
        #expect(short.toBind.map(\.address) == [.tcp(host: "0.0.0.0", port: second.port)])
    }

    @Test func aChangedPortIsNotTakenFromTheStore() throws {
        // After `systemctl restart` with a new port in the file, the fd store still passes the
        // old socket under the same name: the configuration wins, the old socket is closed.
        let old = try TestSocket.tcp()
        defer { old.close() }
        let moved: UInt16 = old.port == 65535 ? 65534 : old.port + 1
        let listeners = [ListenerSpec(name: "http", addresses: [.tcp(host: "127.0.0.1", port: moved)])]
        let plan = SocketActivation.match(received: [old.received("http")], listeners: listeners)
        #expect(plan.sockets.isEmpty)
        #expect(plan.toBind.map(\.address) == [.tcp(host: "127.0.0.1", port: moved)])
        #expect(plan.unmatched.map(\.socket.fd) == [old.fd])
        #expect(plan.unmatched.first?.reason == "listener \"http\" is configured at tcp://127.0.0.1:\(moved), not at this address")
        // The same for a Unix socket at another path.
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let unix = try TestSocket.unix(path: directory.file("old.sock"))
        defer { unix.close() }
        let moves = SocketActivation.match(
            received: [unix.received("ctl")], listeners: [ListenerSpec(name: "ctl", addresses: [.unixPath(directory.file("new.sock"))])])
        #expect(moves.unmatched.map(\.socket.fd) == [unix.fd])
        #expect(moves.toBind.count == 1)
    }

    @Test func portZeroFindsItsHostAgainWhateverTheOrder() throws {
        // The fd store gives a name's sockets back in any order; listeners configured with port 0
        // (bound by an earlier master) each take the socket of their own host.
        let v4 = try TestSocket.tcp()
        let v6 = try TestSocket.tcp(host: "::1")
        defer { [v4, v6].forEach { $0.close() } }
        let listeners = [ListenerSpec(name: "http", addresses: [.tcp(host: "127.0.0.1", port: 0), .tcp(host: "::1", port: 0)])]
        let plan = SocketActivation.match(received: [v6.received("http"), v4.received("http")], listeners: listeners)
        #expect(plan.slots.map { $0.received?.fd } == [v4.fd, v6.fd])
        // By address alone (no name), port 0 is no wildcard: an unrelated socket is not taken.
        let unnamed = SocketActivation.match(received: [v4.received("unknown")], listeners: listeners)
        #expect(unnamed.sockets.isEmpty)
        #expect(unnamed.unmatched.map(\.socket.fd) == [v4.fd])
    }

    @Test func unnamedFDsMatchByAddress() throws {
        let tcp = try TestSocket.tcp()
        let udp = try TestSocket.udp()
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let path = directory.file("ctl.sock")
        let unix = try TestSocket.unix(path: path)
        defer { [tcp, udp, unix].forEach { $0.close() } }
        let listeners = [
            ListenerSpec(name: "web", addresses: [.tcp(host: "127.0.0.1", port: tcp.port)]),
            ListenerSpec(name: "dns", addresses: [.udp(host: "127.0.0.1", port: udp.port)]),
            ListenerSpec(name: "ctl", addresses: [.unixPath(path)]),
        ]
        // A socket unit's default name is its unit name; `unknown` when LISTEN_FDNAMES was absent.
        let received = [unix.received("unknown"), udp.received("baton-dns.socket"), tcp.received("baton-web.socket")]
        let plan = SocketActivation.match(received: received, listeners: listeners)
        #expect(plan.slots.map { $0.received?.fd } == [tcp.fd, udp.fd, unix.fd])
        #expect(plan.sockets.map(\.local) == ["tcp://127.0.0.1:\(tcp.port)", "udp://127.0.0.1:\(udp.port)", "unix:\(path)"])
        #expect(plan.toBind.isEmpty)
        #expect(plan.unmatched.isEmpty)
        // `stored` (an fd stored without FDNAME=) is never matched, not even by address.
        let stored = SocketActivation.match(received: [tcp.received("stored")], listeners: listeners)
        #expect(stored.unmatched.map(\.socket.fd) == [tcp.fd])
        #expect(stored.toBind.count == 3)
    }

    @Test func aSocketOfTheWrongTypeIsRejected() throws {
        let udp = try TestSocket.udp()
        let idle = try TestSocket.tcp(listening: false)
        let tcp = try TestSocket.tcp()
        defer { [udp, idle, tcp].forEach { $0.close() } }
        let listeners = [
            ListenerSpec(name: "http", addresses: [.tcp(host: "127.0.0.1", port: udp.port)]),
            ListenerSpec(name: "dns", addresses: [.udp(host: "127.0.0.1", port: 0)]),
        ]
        // A datagram socket and a stream socket that is not listening, both named http; a
        // listening stream socket named dns, which wants datagrams.
        let received = [udp.received("http"), idle.received("http"), tcp.received("dns")]
        let plan = SocketActivation.match(received: received, listeners: listeners)
        #expect(plan.sockets.isEmpty)
        #expect(plan.toBind.map(\.listener.name) == ["http", "dns"])
        let reasons = Dictionary(uniqueKeysWithValues: plan.unmatched.map { ($0.socket.fd, $0.reason) })
        #expect(reasons[udp.fd]?.contains("a datagram fd where a listening stream socket is configured") == true)
        #expect(reasons[idle.fd]?.contains("not listening") == true)
        #expect(reasons[tcp.fd]?.contains("a stream fd where a datagram socket is configured") == true)
    }

    @Test func activationClosesWhatMatchesNothingAndBindsTheRest() throws {
        let http = try TestSocket.tcp()
        let stale = try TestSocket.tcp()
        let stored = try TestSocket.tcp()
        // The same socket twice (a socket unit's copy and the fd store's): one is kept.
        let copy = fcntl(http.fd, F_DUPFD_CLOEXEC, 0)
        try #require(copy >= 0)
        let listeners = [
            ListenerSpec(name: "http", addresses: [.tcp(host: "127.0.0.1", port: http.port)]),
            ListenerSpec(name: "admin", addresses: [.tcp(host: "127.0.0.1", port: 0)]),
        ]
        let received = [
            stale.received("old-listener"), http.received("http"), stored.received("stored"),
            ReceivedSocket.describe(fd: copy, name: "http"),
        ]
        let activated = try SocketActivation.activate(listeners, received: received, logger: Logger(label: "test"))
        defer {
            for socket in activated.sockets { close(socket.fd) }
        }
        #expect(activated.sockets.map(\.name) == ["http", "admin"])
        #expect(activated.sockets.map(\.fromSystemd) == [true, false])
        #expect(activated.sockets[0].fd == http.fd)
        #expect(activated.sockets[1].local.hasPrefix("tcp://127.0.0.1:"))
        #expect(activated.sockets[1].local != "tcp://127.0.0.1:0")
        #expect(Set(activated.rejected.map(\.socket.name)) == ["old-listener", "stored"])
        // Closed: their only fd is gone, so nobody listens there any more.
        #expect(connectResult(port: stale.port) == ECONNREFUSED)
        #expect(connectResult(port: stored.port) == ECONNREFUSED)
        // The duplicate's close left the adopted socket listening.
        #expect(connectResult(port: http.port) == 0)
        #expect(fcntl(copy, F_GETFD) == -1 || SocketIdentity(fd: copy) != SocketIdentity(fd: http.fd))
        // Each adopted and bound socket listens.
        let bound = try #require(activated.sockets[1].local.split(separator: ":").last.flatMap { UInt16($0) })
        #expect(connectResult(port: bound) == 0)
    }

    @Test func aBindFailureClosesEverythingAndNamesTheListener() throws {
        let http = try TestSocket.tcp()
        let occupied = try TestSocket.tcp()
        defer { occupied.close() }
        let listeners = [
            ListenerSpec(name: "http", addresses: [.tcp(host: "127.0.0.1", port: http.port)]),
            ListenerSpec(name: "busy", addresses: [.tcp(host: "127.0.0.1", port: occupied.port)]),
        ]
        #expect {
            _ = try SocketActivation.activate(listeners, received: [http.received("http")], logger: Logger(label: "test"))
        } throws: { error in
            (error as? ListenerError).map { $0.listener == "busy" && $0.code == EADDRINUSE } ?? false
        }
        // The adopted socket was closed with the rest.
        #expect(connectResult(port: http.port) == ECONNREFUSED)
    }
}

extension SocketActivationTests {
    /// The notifier and the fd store against a notify socket the test owns. libsystemd reads
    /// NOTIFY_SOCKET (and WATCHDOG_*) from the process environment, so these tests set it, one at a
    /// time, and put back what was there.
    @Suite(.serialized) struct Notifier {
        @Test func inertWithoutNotifySocket() throws {
            try withVariables(["NOTIFY_SOCKET": nil, "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": String(getpid())]) {
                let notifier = SystemdNotifier(environment: [("WATCHDOG_USEC", "1000000")])
                #expect(!notifier.isEnabled)
                #expect(notifier.watchdogInterval == nil)
                #expect(notifier.ready(status: "serving") == 0)
                #expect(notifier.reloading(status: "reloading") == 0)
                #expect(notifier.storeFDs(name: "http", fds: [0]) == 0)
            }
        }

        @Test func eachNotificationIsOneDatagramFromThisProcess() throws {
            let receiver = try NotifyReceiver()
            try withVariables(["NOTIFY_SOCKET": receiver.address]) {
                let notifier = SystemdNotifier(environment: [("NOTIFY_SOCKET", receiver.address)])
                #expect(notifier.isEnabled)
                #expect(notifier.perform(.ready(status: "gen=1 serving")) > 0)
                var message = try receiver.receive()
                #expect(message.text == "READY=1\nSTATUS=gen=1 serving")
                #expect(message.pid == getpid())

                let before = baton_monotonic_ns() / 1000
                notifier.perform(.reloading(status: "reloading"))
                let after = baton_monotonic_ns() / 1000
                message = try receiver.receive()
                let fields = message.fields
                #expect(message.lines.first == "RELOADING=1")
                #expect(fields["STATUS"] == "reloading")
                let stamp = try #require(fields["MONOTONIC_USEC"].flatMap { UInt64($0) })
                #expect(stamp >= before && stamp <= after)

                notifier.perform(.stopping(status: "stopping"))
                #expect(try receiver.receive().text == "STOPPING=1\nSTATUS=stopping")
                notifier.perform(.status("two\nlines"))
                #expect(try receiver.receive().text == "STATUS=two lines")
                notifier.errno(EADDRINUSE, status: "listener \"http\": bind failed")
                #expect(try receiver.receive().text == "ERRNO=\(EADDRINUSE)\nSTATUS=listener \"http\": bind failed")
                notifier.watchdogPing()
                #expect(try receiver.receive().text == "WATCHDOG=1")
            }
        }

        @Test func storedFDsTravelWithTheirName() throws {
            let receiver = try NotifyReceiver()
            let first = try TestSocket.tcp()
            let second = try TestSocket.tcp()
            defer { [first, second].forEach { $0.close() } }
            try withVariables(["NOTIFY_SOCKET": receiver.address]) {
                let notifier = SystemdNotifier(environment: [("NOTIFY_SOCKET", receiver.address)])
                #expect(notifier.storeFDs(name: "http", fds: [first.fd, second.fd]) > 0)
                let stored = try receiver.receive()
                #expect(stored.text == "FDSTORE=1\nFDNAME=http")
                #expect(stored.identities == [SocketIdentity(fd: first.fd), SocketIdentity(fd: second.fd)])
                notifier.removeStoredFDs(name: "http")
                let removed = try receiver.receive()
                #expect(removed.text == "FDSTOREREMOVE=1\nFDNAME=http")
                #expect(removed.identities.isEmpty)
            }
        }

        @Test func watchdogIntervalIsHalfOfWatchdogUsecForThisProcessOnly() throws {
            let receiver = try NotifyReceiver()
            let environment = [("NOTIFY_SOCKET", receiver.address)]
            try withVariables(["NOTIFY_SOCKET": receiver.address, "WATCHDOG_USEC": "3000000", "WATCHDOG_PID": String(getpid())]) {
                #expect(SystemdNotifier(environment: environment).watchdogInterval == .milliseconds(1500))
            }
            try withVariables(["NOTIFY_SOCKET": receiver.address, "WATCHDOG_USEC": "3000000", "WATCHDOG_PID": nil]) {
                #expect(SystemdNotifier(environment: environment).watchdogInterval == .milliseconds(1500))
            }
            try withVariables(["NOTIFY_SOCKET": receiver.address, "WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "1"]) {
                #expect(SystemdNotifier(environment: environment).watchdogInterval == nil)
            }
            try withVariables(["NOTIFY_SOCKET": receiver.address, "WATCHDOG_USEC": nil, "WATCHDOG_PID": nil]) {
                #expect(SystemdNotifier(environment: environment).watchdogInterval == nil)
            }
        }

        @Test func watchdogPingsOnItsTimer() throws {
            let receiver = try NotifyReceiver()
            try withVariables(["NOTIFY_SOCKET": receiver.address, "WATCHDOG_USEC": "100000", "WATCHDOG_PID": nil]) {
                let notifier = SystemdNotifier(environment: [("NOTIFY_SOCKET", receiver.address)])
                let watchdog = try #require(try SystemdWatchdog(notifier: notifier))
                #expect(watchdog.interval == .milliseconds(50))
                // The first ping goes out at once, the next when the timerfd says so.
                #expect(try receiver.receive().text == "WATCHDOG=1")
                for _ in 0..<2 {
                    var entry = pollfd(fd: watchdog.fd, events: Int16(POLLIN), revents: 0)
                    #expect(poll(&entry, 1, 30_000) == 1)
                    watchdog.fire()
                    #expect(try receiver.receive().text == "WATCHDOG=1")
                }
            }
        }

        @Test func fdStoreFollowsTheSelfBoundListeners() throws {
            let receiver = try NotifyReceiver()
            let own = try TestSocket.tcp()
            let more = try TestSocket.tcp()
            let fromSystemd = try TestSocket.tcp()
            let stale = try TestSocket.tcp()
            defer { [own, more, fromSystemd, stale].forEach { $0.close() } }
            try withVariables(["NOTIFY_SOCKET": receiver.address]) {
                let notifier = SystemdNotifier(environment: [("NOTIFY_SOCKET", receiver.address)])
                var store = SystemdFDStore(notifier: notifier)
                let http = own.bound("http")
                let admin = fromSystemd.bound("admin", fromSystemd: true)
                store.start(
                    ActivatedListeners(
                        sockets: [http, admin],
                        rejected: [.init(socket: stale.received("old"), reason: "matches nothing")]))
                // The stale name leaves the store; only the self-bound listener goes in.
                #expect(try receiver.receive().text == "FDSTOREREMOVE=1\nFDNAME=old")
                var message = try receiver.receive()
                #expect(message.text == "FDSTORE=1\nFDNAME=http")
                #expect(message.identities == [SocketIdentity(fd: own.fd)])

                // Nothing changed: nothing is sent (the marker is the next message).
                store.sync([http, admin])
                notifier.status("marker")
                #expect(try receiver.receive().text == "STATUS=marker")

                // A new address of http: only the new socket is stored.
                let added = more.bound("http")
                store.sync([http, added, admin])
                message = try receiver.receive()
                #expect(message.text == "FDSTORE=1\nFDNAME=http")
                #expect(message.identities == [SocketIdentity(fd: more.fd)])

                // http loses a socket: the name is removed and stored again with what it still has.
                store.sync([added, admin])
                #expect(try receiver.receive().text == "FDSTOREREMOVE=1\nFDNAME=http")
                message = try receiver.receive()
                #expect(message.text == "FDSTORE=1\nFDNAME=http")
                #expect(message.identities == [SocketIdentity(fd: more.fd)])

                // Listeners removed from the configuration leave the store by name.
                store.sync([added])
                #expect(try receiver.receive().text == "FDSTOREREMOVE=1\nFDNAME=admin")
                store.sync([])
                #expect(try receiver.receive().text == "FDSTOREREMOVE=1\nFDNAME=http")
                notifier.status("marker")
                #expect(try receiver.receive().text == "STATUS=marker")
            }
        }
    }
}

// MARK: - Helpers

/// A socket the test creates; `close()` is explicit because activation may close it first.
private struct TestSocket {
    var fd: CInt
    var port: UInt16 = 0
    var address: ListenAddress?

    static func tcp(host: String = "127.0.0.1", listening: Bool = true) throws -> TestSocket {
        try inet(host: host, type: SOCK_STREAM, listening: listening)
    }

    static func udp(host: String = "127.0.0.1") throws -> TestSocket {
        try inet(host: host, type: SOCK_DGRAM, listening: false)
    }

    static func inet(host: String, type: __socket_type, listening: Bool) throws -> TestSocket {
        var hints = addrinfo()
        hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV
        hints.ai_socktype = CInt(type.rawValue)
        var results: UnsafeMutablePointer<addrinfo>?
        try #require(getaddrinfo(host, "0", &hints, &results) == 0)
        defer { freeaddrinfo(results) }
        let info = try #require(results)
        let fd = socket(info.pointee.ai_family, CInt(type.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        try #require(fd >= 0)
        guard bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0, !listening || listen(fd, 16) == 0 else {
            let text = String(cString: strerror(errno))
            Glibc.close(fd)
            throw TestSupportError("bind/listen \(host): \(text)")
        }
        let described = ReceivedSocket.describe(fd: fd, name: "")
        var port: UInt16 = 0
        switch described.address {
        case .tcp(_, let bound)?, .udp(_, let bound)?: port = bound
        default: break
        }
        return TestSocket(fd: fd, port: port, address: described.address)
    }

    static func unix(path: String) throws -> TestSocket {
        try unixSocket(path, abstract: false)
    }

    static func unix(abstract name: String) throws -> TestSocket {
        try unixSocket(name, abstract: true)
    }

    private static func unixSocket(_ path: String, abstract: Bool) throws -> TestSocket {
        let fd = socket(AF_UNIX, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        try #require(fd >= 0)
        let bound = SocketAddress.withUnix(path: path, abstract: abstract) { bind(fd, $0, $1) }
        guard bound == 0, listen(fd, 16) == 0 else {
            Glibc.close(fd)
            throw TestSupportError("bind/listen unix \(path): \(String(cString: strerror(errno)))")
        }
        return TestSocket(fd: fd, address: abstract ? .unixAbstract(path) : .unixPath(path))
    }

    /// As systemd would pass it, named.
    func received(_ name: String) -> ReceivedSocket {
        ReceivedSocket.describe(fd: fd, name: name)
    }

    /// As the master would hold it.
    func bound(_ name: String, fromSystemd: Bool = false) -> BoundSocket {
        let address = address ?? .tcp(host: "127.0.0.1", port: port)
        return BoundSocket(
            name: name, configured: address, fd: fd, local: address.description, ownsPath: nil, fromSystemd: fromSystemd)
    }

    /// Closes the fd (and removes the socket file). Only for sockets activation did not close:
    /// the number of a closed one may already belong to another test.
    func close() {
        if case .unixPath(let path)? = address { unlink(path) }
        Glibc.close(fd)
    }
}

/// connect() to 127.0.0.1:port: 0 when something listens, else the errno (ECONNREFUSED).
private func connectResult(port: UInt16) -> Int32 {
    let fd = socket(AF_INET, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { return errno }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
    let result = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    return result == 0 ? 0 : errno
}

/// A test-owned stand-in for systemd's notify socket: abstract, with SO_PASSCRED, keeping the
/// fds a message carries just long enough to identify them.
private final class NotifyReceiver {
    let socket: BatonTestSupport.NotifySocket
    var address: String { socket.environmentValue }

    struct Message {
        var text: String
        var pid: pid_t
        var identities: [SocketIdentity?]
        var lines: [String] { text.split(separator: "\n").map(String.init) }
        var fields: [String: String] {
            var result: [String: String] = [:]
            for line in lines {
                guard let equals = line.firstIndex(of: "=") else { continue }
                result[String(line[..<equals])] = String(line[line.index(after: equals)...])
            }
            return result
        }
    }

    init() throws {
        socket = try BatonTestSupport.NotifySocket("@baton-test-systemd-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        var one: CInt = 1
        try #require(setsockopt(socket.fd, SOL_SOCKET, SO_PASSCRED, &one, socklen_t(MemoryLayout<CInt>.size)) == 0)
    }

    /// The next datagram, with the sender's kernel-attested pid; the fds it carried are closed
    /// once identified.
    func receive(timeout: Int32 = 30_000) throws -> Message {
        var entry = pollfd(fd: socket.fd, events: Int16(POLLIN), revents: 0)
        guard poll(&entry, 1, timeout) == 1 else { throw TestSupportError("no notify message within \(timeout) ms") }
        let datagram = try receiveDatagram(socket.fd)
        defer { datagram.fds.forEach { close($0) } }
        return Message(text: datagram.text, pid: datagram.pid, identities: datagram.fds.map { SocketIdentity(fd: $0) })
    }
}


/// Sets (or, for nil, unsets) environment variables around `body` and restores them after.
private func withVariables(_ values: [String: String?], _ body: () throws -> Void) throws {
    var saved: [String: String?] = [:]
    for (key, value) in values {
        saved[key] = getenv(key).map { String(cString: $0) }
        if let value { setenv(key, value, 1) } else { unsetenv(key) }
    }
    defer {
        for (key, value) in saved {
            if let value { setenv(key, value, 1) } else { unsetenv(key) }
        }
    }
    try body()
}
