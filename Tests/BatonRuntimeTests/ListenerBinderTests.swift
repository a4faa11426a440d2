import BatonCore
import BatonTestSupport
import Glibc
import Testing

@testable import BatonRuntime

/// The listener options of the configuration, read back from the kernel and the file system.
@Suite struct ListenerBinderTests {
    static func option(_ fd: CInt, _ level: CInt, _ name: CInt) -> CInt {
        var value: CInt = -1
        var length = socklen_t(MemoryLayout<CInt>.size)
        _ = getsockopt(fd, level, name, &value, &length)
        return value
    }

    @Test func tcpListenersReuseTheAddressAndReusePortOnlyWhenAsked() throws {
        let plain = try ListenerBinder.bind([ListenerSpec(name: "http", addresses: [.tcp(host: "127.0.0.1", port: 0)])])
        defer { plain.forEach { close($0.fd) } }
        #expect(Self.option(plain[0].fd, SOL_SOCKET, SO_REUSEADDR) == 1)
        #expect(Self.option(plain[0].fd, SOL_SOCKET, SO_REUSEPORT) == 0)
        #expect(Self.option(plain[0].fd, SOL_SOCKET, SO_ACCEPTCONN) == 1)

        let shared = try ListenerBinder.bind([
            ListenerSpec(name: "http", addresses: [.tcp(host: "127.0.0.1", port: 0)], reuseport: true)
        ])
        defer { shared.forEach { close($0.fd) } }
        #expect(Self.option(shared[0].fd, SOL_SOCKET, SO_REUSEPORT) == 1)
    }

    @Test(arguments: [true, false])
    func ipv6ListenersFollowIPv6Only(_ ipv6only: Bool) throws {
        let bound: [BoundSocket]
        do {
            bound = try ListenerBinder.bind([
                // The wildcard: the kernel makes a socket bound to one IPv6 address v6-only anyway.
                ListenerSpec(name: "http", addresses: [.tcp(host: "::", port: 0)], ipv6only: ipv6only)
            ])
        } catch {
            // A machine without IPv6 on loopback has nothing to check.
            try #require(error.code == EADDRNOTAVAIL || error.code == EAFNOSUPPORT, "\(error)")
            return
        }
        defer { bound.forEach { close($0.fd) } }
        #expect(Self.option(bound[0].fd, CInt(IPPROTO_IPV6), IPV6_V6ONLY) == (ipv6only ? 1 : 0))
    }

    @Test func aStaleSocketFileIsReplacedAndTheModeApplied() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let path = directory.file("web.sock")
        // A socket file nobody listens on any more, as a crashed process leaves it.
        let dead = socket(AF_UNIX, CInt(SOCK_STREAM.rawValue), 0)
        try #require(SocketAddress.withUnix(path: path, abstract: false) { Glibc.bind(dead, $0, $1) } == 0)
        close(dead)

        let bound = try ListenerBinder.bind([ListenerSpec(name: "admin", addresses: [.unixPath(path)], mode: 0o640)])
        defer { bound.forEach { close($0.fd) } }
        #expect(bound[0].ownsPath == path)
        var info = stat()
        try #require(stat(path, &info) == 0)
        #expect(info.st_mode & S_IFMT == S_IFSOCK)
        #expect(info.st_mode & 0o7777 == 0o640)
        // It is this socket now: a client reaches it.
        let client = socket(AF_UNIX, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        defer { close(client) }
        #expect(SocketAddress.withUnix(path: path, abstract: false) { connect(client, $0, $1) } == 0)
    }

    @Test func aLiveSocketOrAnotherFileAtThePathIsAnError() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let live = try ListeningSocket(unixPath: directory.file("live.sock"))
        defer { close(live.fd) }
        #expect {
            try ListenerBinder.bind([ListenerSpec(name: "admin", addresses: [.unixPath(directory.file("live.sock"))])])
        } throws: { error in
            "\(error)".contains("another process listens on \(directory.file("live.sock"))")
        }
        let file = try directory.write("notes.txt", "not a socket")
        #expect {
            try ListenerBinder.bind([ListenerSpec(name: "admin", addresses: [.unixPath(file)])])
        } throws: { error in
            "\(error)".contains("\(file) exists and is not a socket")
        }
        // Neither was touched.
        #expect(live.isListening)
        var info = stat()
        #expect(stat(file, &info) == 0 && info.st_mode & S_IFMT == S_IFREG)
    }

    @Test(.enabled(if: getuid() == 0, "needs root to give a file away"))
    func ownerAndGroupAreApplied() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let path = directory.file("admin.sock")
        let bound = try ListenerBinder.bind([
            ListenerSpec(name: "admin", addresses: [.unixPath(path)], mode: 0o660, owner: "nobody", group: "nogroup")
        ])
        defer { bound.forEach { close($0.fd) } }
        var info = stat()
        try #require(stat(path, &info) == 0)
        #expect(info.st_uid == 65534)
        #expect(info.st_gid == 65534)
        #expect(info.st_mode & 0o7777 == 0o660)
    }

    @Test func anUnknownOwnerIsAnErrorNamingIt() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let path = directory.file("admin.sock")
        #expect {
            try ListenerBinder.bind([ListenerSpec(name: "admin", addresses: [.unixPath(path)], group: "no-such-group-here")])
        } throws: { error in
            "\(error)".contains("listener \"admin\": unix:\(path): ") && "\(error)".contains("group \"no-such-group-here\" not found")
        }
        var info = stat()
        #expect(lstat(path, &info) != 0, "the socket file is removed again")
    }
}
