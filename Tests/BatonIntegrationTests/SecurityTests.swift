import BatonTestSupport
import CBaton
import Foundation
import Testing

extension IntegrationTests {
    /// The checks docs/SECURITY.md promises at the master's doors, on a real master: who may
    /// speak on the notify and control sockets, and the bounds on what they may say.
    @Suite struct Security {
        /// The master's notify socket, as a worker of generation 1 sees it.
        static func notifyAddress(_ baton: BatonFixture) throws -> String {
            let environment = try baton.get("/env").body.split(separator: "\n")
            let entry = try #require(environment.first { $0.hasPrefix("NOTIFY_SOCKET=") })
            return String(entry.dropFirst("NOTIFY_SOCKET=".count))
        }

        /// Sends one datagram to an `@abstract` address, with `fds` in SCM_RIGHTS.
        static func send(_ text: String, to address: String, fds: [Int32] = []) throws {
            let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            try #require(fd >= 0)
            defer { close(fd) }
            var name = sockaddr_un()
            name.sun_family = sa_family_t(AF_UNIX)
            let path = Array(address.utf8.dropFirst())  // "@" becomes the leading NUL
            withUnsafeMutableBytes(of: &name.sun_path) { raw in
                for (index, byte) in path.enumerated() { raw[index + 1] = byte }
            }
            let length = socklen_t(MemoryLayout<sa_family_t>.size + 1 + path.count)
            let connected = withUnsafePointer(to: &name) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) }
            }
            try #require(connected == 0, "connect \(address): \(String(cString: strerror(errno)))")
            let bytes = Array(text.utf8)
            let sent = fds.withUnsafeBufferPointer { list in
                bytes.withUnsafeBytes { baton_send_with_fds(fd, $0.baseAddress, $0.count, list.baseAddress, Int32(list.count)) }
            }
            try #require(sent == bytes.count, "send: \(String(cString: strerror(errno)))")
        }

        /// A process outside every worker's session cannot make a generation ready, and the fd it
        /// attached is closed by the master at once.
        @Test func notifyDatagramsFromOutsideTheWorkersSessionsAreIgnoredAndTheirFdsClosed() throws {
            let baton = try BatonFixture(workers: 1, batonArguments: ["--ready-timeout", "2s"])
            defer { baton.cleanup() }
            let address = try Self.notifyAddress(baton)
            try baton.setNextGenerationSwitches("--never-ready")
            let mark = baton.process.mark()
            baton.process.signal(SIGHUP)
            try baton.process.waitForLine(after: mark, containing: "gen=2 worker=0 pid=")

            var ends: [Int32] = [-1, -1]
            try #require(pipe(&ends) == 0)
            defer { close(ends[0]) }
            try Self.send("READY=1", to: address, fds: [ends[1]])
            close(ends[1])
            let ignored = try baton.process.waitForLine(after: mark, containing: "notify: ignored a datagram")
            #expect(IntegrationTests.FaultMatrix.message(ignored)
                == "notify: ignored a datagram from pid=\(getpid()): not in a live worker's session")
            // Every copy of the write end is closed: the read end sees EOF, at once.
            var entry = pollfd(fd: ends[0], events: Int16(POLLIN), revents: 0)
            #expect(poll(&entry, 1, 10_000) == 1)
            var byte: UInt8 = 0
            #expect(read(ends[0], &byte, 1) == 0, "the master still holds the fd it was sent")

            let failed = try baton.process.waitForLine(after: mark, containing: "reload failed: gen=2")
            #expect(failed.contains("not ready within 2s: 0/1 workers ready"), "\(failed)")
            #expect(try baton.get().generation == "1")
        }

        /// A worker's own datagrams are bounded (4096 bytes) and must be KEY=VALUE lines; others
        /// are rejected with the reason, and the worker is otherwise unaffected.
        @Test func oversizedAndMalformedNotifyDatagramsAreRejected() throws {
            let baton = try BatonFixture(workers: 1)
            defer { baton.cleanup() }
            try baton.setNextGenerationSwitches("--notify-junk")
            let mark = baton.process.mark()
            let result = try baton.client(["reload", "--wait"])
            #expect(result.status == .exited(0), "\(result.output)")
            let pid = try #require(baton.workerPIDs(generation: 2).first)
            let oversized = try baton.process.waitForLine(after: mark, containing: "datagram over")
            #expect(IntegrationTests.FaultMatrix.message(oversized)
                == "notify: gen=2 worker=0 pid=\(pid): rejected message: datagram over 4096 bytes")
            let malformed = try baton.process.waitForLine(after: mark) { $0.contains("rejected message: line 1") }
            #expect(IntegrationTests.FaultMatrix.level(malformed) == "WARNING")
        }

        /// The control socket is the master's user's alone: mode 0600 in a 0700 directory, and
        /// another user cannot even connect.
        @Test(.enabled(if: getuid() == 0, "needs root to run a client as nobody"))
        func controlSocketIsTheMastersUsersAlone() throws {
            let baton = try BatonFixture(workers: 1)
            defer { baton.cleanup() }
            var info = stat()
            try #require(stat(baton.controlPath, &info) == 0)
            #expect(info.st_mode & 0o7777 == 0o600)
            #expect(info.st_mode & S_IFMT == S_IFSOCK)
            let directory = (baton.controlPath as NSString).deletingLastPathComponent
            try #require(stat(directory, &info) == 0)
            #expect(info.st_mode & 0o7777 == 0o700)

            let words = IntegrationTests.FaultMatrix.asNobody + [try Binaries.baton(), "status", "--control", baton.controlPath]
            let intruder = try SupervisedProcess(executable: words[0], arguments: Array(words.dropFirst()))
            defer { intruder.cleanup(reportedGroups: false) }
            #expect(try intruder.waitForExit() == .exited(3))
            let said = try intruder.waitForLine(timeout: .seconds(5), containing: "baton:")
            #expect(said.contains("no master reachable: \(baton.controlPath): Permission denied"), "\(said)")

            // With the modes opened, nobody can connect: the master's SO_PEERCRED check refuses
            // it with an error reply, logs it, and keeps serving its own user.
            let testDirectory = (directory as NSString).deletingLastPathComponent
            try #require(chmod(testDirectory, 0o755) == 0 && chmod(directory, 0o755) == 0 && chmod(baton.controlPath, 0o666) == 0)
            let mark = baton.process.mark()
            let refused = try SupervisedProcess(executable: words[0], arguments: Array(words.dropFirst()))
            defer { refused.cleanup(reportedGroups: false) }
            #expect(try refused.waitForExit() == .exited(1))
            let answer = try refused.waitForLine(timeout: .seconds(5), containing: "baton:")
            #expect(answer.contains("permission denied: uid 65534"), "\(answer)")
            try baton.process.waitForLine(after: mark, containing: "control: refused a connection from uid 65534")

            // The same with the client's request held back 300 ms (strace fault injection): the
            // master has answered and closed before the request goes out, and the client still
            // reports the master's reason rather than the broken pipe.
            let delayed = try SupervisedProcess(
                executable: "/usr/bin/strace",
                arguments: ["-f", "-o", "/dev/null", "-e", "inject=sendto:delay_enter=300000"] + words)
            defer { delayed.cleanup(reportedGroups: false) }
            #expect(try delayed.waitForExit() == .exited(1))
            let reason = try delayed.waitForLine(timeout: .seconds(5), containing: "baton:")
            #expect(reason.contains("permission denied: uid 65534"), "\(reason)")
            #expect(try baton.client(["status"]).status == .exited(0))
        }

        /// A worker started while the master is busy (a control client connected and idle, the
        /// `reload --wait` that started it waiting, the old generation's pipes open) holds only its
        /// stdio and its listener: none of the master's fds leaks into it.
        @Test func noMasterFdReachesAWorkerStartedMidFlight() throws {
            let worker = try Binaries.testWorker()
            let script = "echo fds-begin; ls /proc/$$/fd; echo fds-end; exec \(worker) --ready-delay 20"
            let baton = try BatonFixture(workers: 1, command: ["/bin/sh", "-c", script])
            defer { baton.cleanup() }
            let idle = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            defer { close(idle) }
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                for (index, byte) in baton.controlPath.utf8.enumerated() { raw[index] = byte }
            }
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(idle, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            try #require(connected == 0)
            let masterFDs = ProcFacts.openFDs(of: baton.process.pid).count
            #expect(masterFDs > 10, "the master holds \(masterFDs) fds")

            let result = try baton.client(["reload", "--wait"])
            #expect(result.status == .exited(0), "\(result.output)")
            let pid = try #require(baton.workerPIDs(generation: 2).first)
            let prefix = "[sh gen=2 pid=\(pid)] "
            let lines = baton.process.lines.filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }
            let begin = try #require(lines.firstIndex(of: "fds-begin"))
            let end = try #require(lines.firstIndex(of: "fds-end"))
            #expect(lines[(begin + 1)..<end].compactMap { Int($0) }.sorted() == [0, 1, 2, 3])
        }

        /// A configuration "file" that never ends is refused after 4 MiB, not read forever.
        @Test func configurationFileIsBounded() throws {
            let check = try FaultClient.run(["check", "--config", "/dev/zero"])
            #expect(check.status == .exited(2), "\(check.output)")
            #expect(check.output.contains("/dev/zero: larger than 4 MiB: not a configuration file"), "\(check.output)")
        }

        /// A worker's output line longer than 8 KiB is forwarded cut, not buffered without end.
        @Test func workerOutputLinesAreBounded() throws {
            let worker = try Binaries.testWorker()
            let script = "head -c 20000 /dev/zero | tr '\\000' x; echo; echo after; exec \"$0\" \"$@\""
            let baton = try BatonFixture(workers: 1, command: ["/bin/sh", "-c", script, worker, "--ready-delay", "20"])
            defer { baton.cleanup() }
            // 20,000 bytes: two pieces of 8,192 marked as cut, then the rest as the line's end.
            try baton.process.waitForLine { $0.hasSuffix("] after") }
            let pieces = baton.process.lines.filter { $0.hasPrefix("[sh gen=1 pid=") && $0.contains("] xxx") }
                .map { $0[$0.range(of: "] ")!.upperBound...] }
            #expect(pieces.map(\.count) == [8192 + 11, 8192 + 11, 20000 - 2 * 8192], "\(pieces.map(\.count))")
            #expect(pieces.dropLast().allSatisfy { $0.hasSuffix(String(repeating: "x", count: 100) + " [line cut]") })
        }
    }
}
