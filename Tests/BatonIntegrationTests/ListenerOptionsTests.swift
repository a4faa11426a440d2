import BatonTestSupport
import Foundation
import Testing

extension IntegrationTests {
    /// The listener keys of a configuration file, end to end: what `baton run` binds is what the
    /// workers hold, read back from the file system and from the worker's own fds.
    @Suite struct ListenerOptions {
        static func config(_ directory: TemporaryDirectory) throws -> String {
            try directory.write("web.toml", """
                [[listener]]
                name = "http"
                address = "tcp://127.0.0.1:0"
                reuseport = true

                [[listener]]
                name = "dual"
                address = "tcp://[::]:0"
                ipv6only = false

                [[listener]]
                name = "admin"
                address = "unix:\(directory.file("admin.sock"))"
                mode = "0640"

                [program]
                name = "web"
                command = ["\(try Binaries.testWorker())", "--ready-delay", "20"]
                workers = 1

                """)
        }

        @Test func fileKeysReachTheSocketsTheWorkersHold() throws {
            let directory = try TemporaryDirectory()
            defer { directory.cleanup() }
            let socketPath = directory.file("admin.sock")
            // A socket file nobody listens on, as a crashed master leaves it: replaced at start.
            try Self.bindAndClose(socketPath)
            let path = try Self.config(directory)
            let baton = try BatonFixture(workers: nil, batonArguments: ["--config", path], listen: [], command: [])
            defer { baton.cleanup() }
            let dualLine = try baton.process.waitForLine(containing: "listener=dual address=tcp://[::]:")
            let dualPort = try #require(BatonFixture.port(in: dualLine))
            let pid = try #require(baton.workerPIDs(generation: 1).first)

            var info = stat()
            try #require(stat(socketPath, &info) == 0)
            #expect(info.st_mode & S_IFMT == S_IFSOCK)
            #expect(info.st_mode & 0o7777 == 0o640, "mode \(String(info.st_mode & 0o7777, radix: 8))")
            #expect(try HTTPClient.get(unixPath: socketPath).generation == "1")
            // ipv6only = false: the [::] socket takes IPv4 clients too.
            #expect(try HTTPClient.get(host: "127.0.0.1", port: dualPort).generation == "1")
            #expect(try HTTPClient.get(host: "::1", port: dualPort).generation == "1")

            // The worker's fds 3, 4, 5 in file order, with the options the file asked for.
            let environment = try IntegrationTests.ConfigReload.environment(of: pid)
            #expect(environment["LISTEN_FDNAMES"] == "http:dual:admin")
            let copies = (3...5).compactMap { Self.copy(fd: $0, of: pid) }
            defer { copies.forEach { close($0) } }
            if copies.count == 3 {
                let (http, dual, admin) = (copies[0], copies[1], copies[2])
                #expect(Self.option(http, SOL_SOCKET, SO_REUSEPORT) == 1)
                #expect(Self.option(http, SOL_SOCKET, SO_ACCEPTCONN) == 1)
                #expect(Self.option(dual, SOL_SOCKET, SO_REUSEPORT) == 0)
                #expect(Self.option(dual, Int32(IPPROTO_IPV6), IPV6_V6ONLY) == 0)
                #expect(Self.option(admin, SOL_SOCKET, SO_DOMAIN) == AF_UNIX)
                #expect(Self.option(admin, SOL_SOCKET, SO_ACCEPTCONN) == 1)
            } else {
                print("pidfd_getfd unavailable here: the worker's socket options were not read")
            }

            // A second master on the same file: the live socket is refused, and left alone.
            let second = try SupervisedProcess(
                executable: try Binaries.baton(),
                arguments: ["run", "--config", path, "--control", directory.file("second/baton.sock")])
            defer { second.cleanup() }
            #expect(try second.waitForExit(timeout: .seconds(30)) == .exited(1))
            #expect(second.lines.contains { $0.contains("listener \"admin\": unix:\(socketPath): bind: another process listens on \(socketPath)") },
                    "\(second.lines.suffix(10))")
            #expect(try HTTPClient.get(unixPath: socketPath).generation == "1")

            // A reload keeps the socket and its mode; the master removes the file when it stops.
            let mark = baton.process.mark()
            #expect(try baton.client(["reload", "--wait"]).status == .exited(0))
            #expect(try HTTPClient.get(unixPath: socketPath).generation == "2")
            #expect(!baton.process.lines[mark...].contains { $0.contains(" bound") }, "nothing is bound again")
            try #require(stat(socketPath, &info) == 0)
            #expect(info.st_mode & 0o7777 == 0o640)
            baton.process.signal(SIGTERM)
            #expect(try baton.process.waitForExit() == .exited(0))
            #expect(lstat(socketPath, &info) != 0 && errno == ENOENT, "the socket file outlived the master")
        }

        /// Leaves a socket file at `path` that nobody listens on.
        static func bindAndClose(_ path: String) throws {
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw TestSupportError("socket: \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                for (index, byte) in path.utf8.enumerated() { raw[index] = byte }
            }
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard result == 0 else { throw TestSupportError("bind \(path): \(String(cString: strerror(errno)))") }
        }

        static func option(_ fd: Int32, _ level: Int32, _ name: Int32) -> Int32 {
            var value: Int32 = -1
            var length = socklen_t(MemoryLayout<Int32>.size)
            _ = getsockopt(fd, level, name, &value, &length)
            return value
        }

        /// A copy of another process's fd (pidfd_getfd(2), which needs the right to ptrace it);
        /// nil where the C library, the kernel or the permissions do not allow it. Found with
        /// dlsym: Swift's Glibc module does not export the pidfd calls.
        static func copy(fd: Int32, of pid: pid_t) -> Int32? {
            typealias PidfdOpen = @convention(c) (pid_t, UInt32) -> Int32
            typealias PidfdGetfd = @convention(c) (Int32, Int32, UInt32) -> Int32
            guard let open = dlsym(nil, "pidfd_open"), let getfd = dlsym(nil, "pidfd_getfd") else { return nil }
            let pidfd = unsafeBitCast(open, to: PidfdOpen.self)(pid, 0)
            guard pidfd >= 0 else { return nil }
            defer { close(pidfd) }
            let copy = unsafeBitCast(getfd, to: PidfdGetfd.self)(pidfd, fd, 0)
            return copy >= 0 ? copy : nil
        }
    }
}
