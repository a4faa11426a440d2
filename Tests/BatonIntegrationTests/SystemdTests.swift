import BatonTestSupport
import Foundation
import Synchronization
import Testing

extension IntegrationTests {
    /// The master as systemd sees it, without systemd as PID 1: `systemd-socket-activate` passes
    /// a listener the way a socket unit would, and a test-owned notify socket stands in for
    /// systemd's (research/systemd.md §4).
    @Suite struct Systemd {
        @Test func socketActivatedListenerIsUsedByNameAndSurvivesReloadsUnderLoad() throws {
            let directory = try TemporaryDirectory()
            defer { directory.cleanup() }
            let notify = try NotifyCollector()
            defer { notify.stop() }
            let port = try freePort()
            let worker = try Binaries.testWorker()
            // systemd-socket-activate passes on only TERM, PATH, USER, HOME and what -E names.
            let arguments = [
                "-l", "127.0.0.1:\(port)", "--fdname=http", "-E", "NOTIFY_SOCKET=\(notify.address)",
                try Binaries.baton(), "run",
                "--control", directory.file("ctl.sock"), "--workers", "2",
                "--listen", "http=tcp://127.0.0.1:\(port)",
                "--", worker, "--ready-delay", "20", "--idle-grace", "1500",
            ]
            let process = try SupervisedProcess(executable: "/usr/bin/systemd-socket-activate", arguments: arguments)
            defer { process.cleanup() }
            // It execs baton only once a first connection arrives; that connection waits in the
            // backlog and is served by the first generation.
            try process.waitForLine(containing: "Listening on 127.0.0.1:\(port)")
            let first = try KeepAliveConnection(port: port, timeout: .seconds(60))
            defer { first.close() }
            try first.send(first.request("/"))
            try process.waitForLine(timeout: .seconds(60), containing: "gen=1 serving")
            #expect(try first.readResponse().status == 200)

            // Taken from systemd by its name, never bound by the master.
            #expect(process.lines.contains { $0.contains("listener=http address=tcp://127.0.0.1:\(port) received from systemd") })
            #expect(!process.lines.contains { $0.contains("listener=http") && $0.hasSuffix(" bound") })
            let listing = try HTTPClient.get(port: port, path: "/listeners").body
            #expect(listing.split(separator: "\n") == ["http ipv4 127.0.0.1:\(port)"])

            let load = LoadGenerator.start(
                port: port, shortClients: 2, keepAliveClients: 4, keepAliveGap: .milliseconds(100),
                shortGap: .milliseconds(5), maxDuration: .seconds(300))
            for generation in 2...6 {
                let mark = process.mark()
                process.signal(SIGHUP)
                try process.waitForLine(after: mark, timeout: .seconds(60), containing: "gen=\(generation) serving")
                try process.waitForLine(after: mark, timeout: .seconds(60), containing: "gen=\(generation - 1) exited")
                _ = try load.waitForReport(timeout: .seconds(30)) { ($0.perGeneration[String(generation)] ?? 0) >= 20 }
            }
            let report = load.stop()
            #expect(report.failed == 0, "failures: \(report.failures)")
            #expect(report.served > 100, "too little load to prove anything: \(report)")

            // A socket systemd holds is not put in the fd store.
            _ = try notify.wait { $0.filter { $0.fields["READY"] == "1" }.count >= 6 }
            #expect(!notify.messages.contains { $0.fields["FDSTORE"] == "1" })
            process.signal(SIGTERM)
            #expect(try process.waitForExit(timeout: .seconds(60)) == .exited(0))
        }

        @Test func unnamedOrMisnamedSocketsAreMatchedByAddress() throws {
            // No --fdname: LISTEN_FDNAMES is absent and the socket is "unknown". More names than
            // fds: libsystemd rejects the names, and the master still takes its fds by address.
            for (fdname, warning) in [(nil, nil), ("http:extra", "LISTEN_FDNAMES does not name each")] as [(String?, String?)] {
                let directory = try TemporaryDirectory()
                defer { directory.cleanup() }
                let port = try freePort()
                var arguments = ["-l", "127.0.0.1:\(port)"]
                if let fdname { arguments.append("--fdname=\(fdname)") }
                arguments += [
                    try Binaries.baton(), "run", "--control", directory.file("ctl.sock"), "--workers", "1",
                    "--listen", "web=tcp://127.0.0.1:\(port)", "--", try Binaries.testWorker(), "--ready-delay", "20",
                ]
                let process = try SupervisedProcess(executable: "/usr/bin/systemd-socket-activate", arguments: arguments)
                defer { process.cleanup() }
                try process.waitForLine(containing: "Listening on 127.0.0.1:\(port)")
                let first = try KeepAliveConnection(port: port, timeout: .seconds(60))
                defer { first.close() }
                try first.send(first.request("/"))
                try process.waitForLine(timeout: .seconds(60), containing: "gen=1 serving")
                #expect(try first.readResponse().status == 200)
                #expect(process.lines.contains { $0.contains("listener=web address=tcp://127.0.0.1:\(port) received from systemd") })
                if let warning {
                    #expect(process.lines.contains { $0.contains(warning) })
                }
                process.signal(SIGTERM)
                #expect(try process.waitForExit(timeout: .seconds(60)) == .exited(0))
            }
        }

        @Test func notifiesReadyReloadingAndStoppingFromTheMaster() throws {
            let notify = try NotifyCollector()
            defer { notify.stop() }
            let baton = try BatonFixture(workers: 2, environment: ["NOTIFY_SOCKET": notify.address])
            defer { baton.cleanup() }
            let master = baton.process.pid

            var messages = try notify.wait { $0.contains { $0.fields["READY"] == "1" } }
            #expect(Self.states(messages) == ["READY"])
            let ready = try #require(messages.first { $0.fields["READY"] == "1" })
            #expect(ready.fields["STATUS"]?.isEmpty == false)

            let before = monotonicMicroseconds()
            try baton.reload(to: 2, waitForOldToExit: false)
            messages = try notify.wait { Self.states($0).count >= 3 }
            let after = monotonicMicroseconds()
            #expect(Self.states(messages) == ["READY", "RELOADING", "READY"])
            let reloading = try #require(messages.first { $0.fields["RELOADING"] == "1" })
            let stamp = try #require(reloading.fields["MONOTONIC_USEC"].flatMap { UInt64($0) })
            #expect(stamp >= before && stamp <= after, "MONOTONIC_USEC=\(stamp) not within \(before)...\(after)")
            #expect(reloading.fields["STATUS"] != nil)
            #expect(messages.last { $0.fields["READY"] == "1" }?.fields["STATUS"]?.isEmpty == false)

            baton.process.signal(SIGTERM)
            #expect(try baton.process.waitForExit(timeout: .seconds(60)) == .exited(0))
            messages = try notify.wait { Self.states($0).count >= 4 }
            #expect(Self.states(messages) == ["READY", "RELOADING", "READY", "STOPPING"])
            #expect(messages.allSatisfy { $0.pid == master }, "senders: \(Set(messages.map(\.pid))), master \(master)")
        }

        @Test func selfBoundListenerGoesToTheFDStore() throws {
            let notify = try NotifyCollector()
            defer { notify.stop() }
            let baton = try BatonFixture(workers: 1, environment: ["NOTIFY_SOCKET": notify.address])
            defer { baton.cleanup() }

            let messages = try notify.wait { $0.contains { $0.fields["READY"] == "1" } }
            let stored = messages.filter { $0.fields["FDSTORE"] == "1" }
            try #require(stored.count == 1, "messages: \(messages.map(\.text))")
            #expect(stored[0].fields["FDNAME"] == "http")
            #expect(stored[0].pid == baton.process.pid)
            // The fd itself: the master's listening socket, not a copy bound elsewhere.
            #expect(stored[0].sockets == ["listening 127.0.0.1:\(baton.port)"])
            // Stored before the master said it is ready, so a crash right after READY loses nothing.
            let storeIndex = try #require(messages.firstIndex { $0.fields["FDSTORE"] == "1" })
            let readyIndex = try #require(messages.firstIndex { $0.fields["READY"] == "1" })
            #expect(storeIndex < readyIndex)
        }

        @Test func watchdogPingsWhenWatchdogPIDIsTheMaster() throws {
            let notify = try NotifyCollector()
            defer { notify.stop() }
            let directory = try TemporaryDirectory()
            defer { directory.cleanup() }
            // The shell learns its pid, which is the master's after exec: what systemd would set.
            let baton = try SupervisedProcess(
                executable: "/bin/sh",
                arguments: [
                    "-c", #"WATCHDOG_PID=$$ exec "$0" "$@""#, try Binaries.baton(), "run",
                    "--control", directory.file("ctl.sock"), "--workers", "1", "--listen", "http=tcp://127.0.0.1:0",
                    "--", try Binaries.testWorker(), "--ready-delay", "20",
                ],
                environment: SupervisedProcess.cleanEnvironment().merging(
                    ["NOTIFY_SOCKET": notify.address, "WATCHDOG_USEC": "200000"]) { $1 })
            defer { baton.cleanup() }
            let messages = try notify.wait(timeout: .seconds(60)) { $0.filter { $0.fields["WATCHDOG"] == "1" }.count >= 4 }
            #expect(messages.filter { $0.fields["WATCHDOG"] == "1" }.allSatisfy { $0.pid == baton.pid })
            baton.signal(SIGTERM)
            #expect(try baton.waitForExit(timeout: .seconds(60)) == .exited(0))
        }

        @Test func noWatchdogPingsForAnotherProcess() throws {
            let notify = try NotifyCollector()
            defer { notify.stop() }
            let baton = try BatonFixture(
                workers: 1, environment: ["NOTIFY_SOCKET": notify.address, "WATCHDOG_USEC": "20000", "WATCHDOG_PID": "1"])
            defer { baton.cleanup() }
            _ = try notify.wait { $0.contains { $0.fields["READY"] == "1" } }
            baton.process.signal(SIGTERM)
            #expect(try baton.process.waitForExit(timeout: .seconds(60)) == .exited(0))
            let messages = try notify.wait { $0.contains { $0.fields["STOPPING"] == "1" } }
            #expect(!messages.contains { $0.fields["WATCHDOG"] != nil })
        }

        /// READY, RELOADING and STOPPING in the order sent (one per message; STOPPING wins).
        static func states(_ messages: [NotifyCollector.Message]) -> [String] {
            messages.compactMap { message in
                ["STOPPING", "READY", "RELOADING"].first { message.fields[$0] == "1" }
            }
        }
    }
}

// MARK: - Helpers

/// A stand-in for systemd's notify socket: an abstract datagram socket with SO_PASSCRED, read by
/// a thread of its own (the kernel queues only 10 datagrams per socket by default, and a full
/// queue would block the sender). Each message keeps its sender's pid and a description of every
/// fd it carried; the fds are closed at once.
final class NotifyCollector: Sendable {
    struct Message: Sendable {
        var text: String
        var pid: pid_t
        /// `listening 127.0.0.1:8080` (or `socket …`, `not a socket`) per received fd.
        var sockets: [String]
        var fields: [String: String] {
            var result: [String: String] = [:]
            for line in text.split(separator: "\n") {
                guard let equals = line.firstIndex(of: "=") else { continue }
                result[String(line[..<equals])] = String(line[line.index(after: equals)...])
            }
            return result
        }
    }

    let address: String
    private let fd: Int32
    private let stopPipe: (read: Int32, write: Int32)
    private let state = Mutex<(messages: [Message], finished: Bool)>(([], false))
    private let condition = NSCondition()

    init() throws {
        let name = "@baton-test-systemd-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let socket = try BatonTestSupport.NotifySocket(name)
        // The collector owns a copy; the NotifySocket object (and its fd) goes away here.
        let fd = fcntl(socket.fd, F_DUPFD_CLOEXEC, 0)
        guard fd >= 0 else { throw TestSupportError("dup: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        guard setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            close(fd)
            throw TestSupportError("SO_PASSCRED: \(String(cString: strerror(errno)))")
        }
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else {
            close(fd)
            throw TestSupportError("pipe: \(String(cString: strerror(errno)))")
        }
        for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        self.fd = fd
        stopPipe = (ends[0], ends[1])
        address = name
        Thread.detachNewThread { [self] in self.readLoop() }
    }

    var messages: [Message] { state.withLock { $0.messages } }

    /// Waits until the messages so far satisfy `predicate` and returns them; throws with every
    /// message received when `timeout` passes first.
    @discardableResult
    func wait(timeout: Duration = .seconds(60), _ predicate: ([Message]) -> Bool) throws -> [Message] {
        let deadline = Date(timeIntervalSinceNow: Double(timeout.components.seconds))
        condition.lock()
        defer { condition.unlock() }
        while true {
            let current = messages
            if predicate(current) { return current }
            if !condition.wait(until: deadline) && Date() >= deadline {
                throw TestSupportError(
                    "notify messages did not reach the condition within \(timeout): \(current.map { "\($0.pid): \($0.text.debugDescription)" })")
            }
        }
    }

    /// Ends the reader thread and closes the socket. Idempotent.
    func stop() {
        var byte: UInt8 = 1
        _ = write(stopPipe.write, &byte, 1)
        condition.lock()
        while !state.withLock({ $0.finished }) { condition.wait() }
        condition.unlock()
    }

    deinit {
        stop()
        close(fd)
        close(stopPipe.read)
        close(stopPipe.write)
    }

    private func readLoop() {
        defer {
            state.withLock { $0.finished = true }
            ring()
        }
        while true {
            var entries = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: stopPipe.read, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&entries, 2, -1)
            if ready < 0 && errno == EINTR { continue }
            if ready < 0 || entries[1].revents != 0 { return }
            guard let datagram = try? receiveDatagram(fd, dontWait: true) else { continue }
            let sockets = datagram.fds.map(describeSocket)
            datagram.fds.forEach { close($0) }
            let message = Message(text: datagram.text, pid: datagram.pid, sockets: sockets)
            state.withLock { $0.messages.append(message) }
            ring()
        }
    }

    private func ring() {
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }
}


/// `listening 127.0.0.1:8080` for a listening IPv4 socket; `socket` or `not a socket` otherwise.
private func describeSocket(_ fd: Int32) -> String {
    var address = sockaddr_in()
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    guard named == 0 else { return "not a socket" }
    guard address.sin_family == sa_family_t(AF_INET) else { return "socket" }
    var listening: Int32 = 0
    var size = socklen_t(MemoryLayout<Int32>.size)
    let isListening = getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) == 0 && listening != 0
    var host = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
    inet_ntop(AF_INET, &address.sin_addr, &host, socklen_t(host.count))
    let text = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return "\(isListening ? "listening" : "socket") \(text):\(UInt16(bigEndian: address.sin_port))"
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then closed).
private func freePort() throws -> Int {
    let socket = try ListeningSocket()
    return socket.port
}

/// CLOCK_MONOTONIC in microseconds, the clock of `MONOTONIC_USEC=`.
private func monotonicMicroseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
}
