import BatonCore
import CBaton
import Foundation
import Glibc
import Synchronization
import Testing

@testable import BatonRuntime

/// A `ControlServer` on a real `Reactor`, driven by real Unix-socket clients. The reactor runs on
/// a thread of its own (`ControlHarness`); the server and its callbacks live only there.
@Suite struct ControlServerTests {
    @Test func aRequestGetsItsReplyAndEventsCarryItsID() throws {
        let directory = try ControlTestDirectory()
        let harness = try ControlHarness(path: directory.path + "/web.sock")
        defer { harness.stop() }

        let client = try LineClient(path: harness.path)
        try client.write(#"{"v":1,"id":7,"cmd":"status"}"# + "\n")
        let status = try client.reply()
        #expect(status.ok)
        #expect(status.id == 7)
        #expect(status.message == "status ok")

        // The same connection serves the next request: a reload with wait streams its events first.
        try client.write(#"{"v":1,"id":8,"cmd":"reload","wait":true}"# + "\n")
        var kinds: [String] = []
        var reply: ControlReply?
        while reply == nil {
            switch try client.message() {
            case .event(let event):
                #expect(event.id == 8)
                kinds.append(event.kind.rawValue)
            case .reply(let answer):
                reply = answer
            }
        }
        #expect(kinds == ["reloading", "spawned", "ready", "serving"])
        #expect(reply?.id == 8)
        #expect(reply?.ok == true)
        #expect(reply?.generation == 2)

        // Two requests in one write are answered in order, one at a time.
        try client.write(#"{"v":1,"id":9,"cmd":"scale","workers":1}"# + "\n" + #"{"v":1,"id":10,"cmd":"status"}"# + "\n")
        var ids: [UInt64?] = []
        while ids.count < 2 {
            if case .reply(let answer) = try client.message() { ids.append(answer.id) }
        }
        #expect(ids == [9, 10])
        #expect(harness.snapshot.requests.map(\.id) == [7, 8, 9, 10])
    }

    @Test func badRequestsGetErrorRepliesAndTheConnectionKeepsWorking() throws {
        let directory = try ControlTestDirectory()
        let harness = try ControlHarness(path: directory.path + "/web.sock")
        defer { harness.stop() }
        let client = try LineClient(path: harness.path)

        try client.write("this is not json\n")
        let notJSON = try client.reply()
        #expect(!notJSON.ok)
        #expect(notJSON.id == nil)
        #expect(notJSON.error?.contains("invalid JSON") == true)

        try client.write(#"{"v":2,"id":3,"cmd":"status"}"# + "\n")
        let version = try client.reply()
        #expect(version.id == 3)
        #expect(version.error?.contains("unsupported protocol version v=2") == true)

        try client.write(#"{"v":1,"id":4,"cmd":"explode"}"# + "\n")
        let command = try client.reply()
        #expect(command.id == 4)
        #expect(command.error?.contains(#"unknown command "explode""#) == true)

        try client.write(#"{"v":1,"id":5,"cmd":"status"}"# + "\n")
        let good = try client.reply()
        #expect(good.ok)
        #expect(good.id == 5)
        #expect(harness.snapshot.requests.map(\.id) == [5], "only the valid request reached the master")
    }

    @Test func anOversizedLineIsRefusedAndTheServerKeepsServing() throws {
        let directory = try ControlTestDirectory()
        let harness = try ControlHarness(path: directory.path + "/web.sock")
        defer { harness.stop() }

        let flooder = try LineClient(path: harness.path)
        // No newline in 70 000 bytes: more than the 64 KiB a request line may have.
        _ = flooder.writeIgnoringErrors(Array(repeating: UInt8(ascii: "x"), count: 70_000))
        let refusal = try flooder.reply()
        #expect(!refusal.ok)
        #expect(refusal.error == "request line over \(ControlProtocol.maximumRequestSize) bytes")
        #expect(try flooder.readLine() == nil, "the connection is closed after the error")

        let other = try LineClient(path: harness.path)
        try other.write(#"{"v":1,"id":1,"cmd":"status"}"# + "\n")
        #expect(try other.reply().ok)

        // A line just under the limit is still read (and rejected as JSON, not as too long).
        let padded = #"{"v":1,"id":2,"cmd":"status","pad":""# + String(repeating: "p", count: 60_000) + "\"}\n"
        try other.write(padded)
        let big = try other.reply()
        #expect(big.ok, "unknown keys are ignored: \(big.error ?? "")")
        #expect(big.id == 2)
    }

    @Test func halfALineIsDroppedAtTheDeadline() throws {
        let directory = try ControlTestDirectory()
        var limits = ControlServer.Limits()
        limits.requestTimeout = .milliseconds(500)
        let harness = try ControlHarness(path: directory.path + "/web.sock", limits: limits)
        defer { harness.stop() }

        // Taken before connecting: the server's deadline starts when it accepts, later.
        let started = ContinuousClock.now
        let slow = try LineClient(path: harness.path)
        let silent = try LineClient(path: harness.path)
        try slow.write(#"{"v":1,"id":1,"#)
        let timedOut = try slow.reply()
        let waited = ContinuousClock.now - started
        #expect(!timedOut.ok)
        #expect(timedOut.error?.contains("no whole request line within 500ms") == true)
        #expect(try slow.readLine() == nil)
        #expect(waited >= .milliseconds(490), "dropped after \(waited), before the deadline")
        #expect(waited < .seconds(15))

        // A connection that never sends anything is closed as well.
        #expect(try silent.reply().error?.contains("no request within 500ms") == true)
        #expect(try silent.readLine() == nil)

        let good = try LineClient(path: harness.path)
        try good.write(#"{"v":1,"id":2,"cmd":"status"}"# + "\n")
        #expect(try good.reply().ok)
        #expect(harness.snapshot.requests.map(\.id) == [2])
    }

    @Test func a150ClientsConnectedAtOnceAllGetAnswers() throws {
        let directory = try ControlTestDirectory()
        var limits = ControlServer.Limits()
        limits.requestTimeout = .seconds(120)
        let harness = try ControlHarness(path: directory.path + "/web.sock", limits: limits)
        defer { harness.stop() }

        let clients = try (0..<150).map { _ in try LineClient(path: harness.path) }
        for (index, client) in clients.enumerated() {
            try client.write(#"{"v":1,"id":\#(index + 1),"cmd":"status"}"# + "\n")
        }
        for (index, client) in clients.enumerated() {
            let reply = try client.reply()
            #expect(reply.ok)
            #expect(reply.id == UInt64(index + 1))
        }
        let record = harness.snapshot
        #expect(record.requests.count == 150)
        #expect(record.mostClients == 150, "every client was connected when the last request came")
        #expect(record.disconnects == 0)
    }

    @Test func clientsBeyondTheCapAreRefusedAndASlotFreesWhenOneLeaves() throws {
        let directory = try ControlTestDirectory()
        var limits = ControlServer.Limits()
        limits.maximumClients = 8
        limits.requestTimeout = .seconds(120)
        let harness = try ControlHarness(path: directory.path + "/web.sock", limits: limits)
        defer { harness.stop() }

        var clients = try (0..<8).map { _ in try LineClient(path: harness.path) }
        for client in clients {
            try client.write(#"{"v":1,"id":1,"cmd":"status"}"# + "\n")
            #expect(try client.reply().ok)
        }
        let extra = try LineClient(path: harness.path)
        let refusal = try extra.reply()
        #expect(refusal.error?.contains("too many control clients (8 connected)") == true)
        #expect(try extra.readLine() == nil)

        clients.removeLast().close()
        #expect(harness.wait("the server notices the client left") { $0.disconnects == 1 })
        let next = try LineClient(path: harness.path)
        try next.write(#"{"v":1,"id":2,"cmd":"status"}"# + "\n")
        #expect(try next.reply().ok)
    }

    @Test func aClientThatDoesNotReadIsDroppedWithoutStallingOthers() throws {
        let directory = try ControlTestDirectory()
        var limits = ControlServer.Limits()
        limits.maximumPendingOutput = 64 * 1024
        let harness = try ControlHarness(path: directory.path + "/web.sock", limits: limits)
        defer { harness.stop() }

        let sluggard = try LineClient(path: harness.path, receiveBuffer: 4096)
        // "scale N" makes the test master send N events of 1 KiB: 4 MiB the client never reads.
        try sluggard.write(#"{"v":1,"id":1,"cmd":"scale","workers":4096}"# + "\n")
        #expect(harness.wait("the server drops the client") { $0.disconnects == 1 })

        let other = try LineClient(path: harness.path)
        try other.write(#"{"v":1,"id":2,"cmd":"status"}"# + "\n")
        #expect(try other.reply().ok)

        var events = 0
        while let line = try sluggard.readLine() {
            #expect(line.contains(#""event":"message""#))
            events += 1
        }
        #expect(events < 4096, "the connection ended before every event was sent")
    }

    @Test func aWaitingClientThatLeavesIsNoticed() throws {
        let directory = try ControlTestDirectory()
        let harness = try ControlHarness(path: directory.path + "/web.sock")
        defer { harness.stop() }

        let client = try LineClient(path: harness.path)
        // The test master never answers "stop": the request stays in flight.
        try client.write(#"{"v":1,"id":1,"cmd":"stop"}"# + "\n" + #"{"v":1,"id":2,"cmd":"status"}"# + "\n")
        #expect(harness.wait("the stop request arrives") { $0.requests.count == 1 })
        client.close()
        #expect(harness.wait("the server notices the client left") { $0.disconnects == 1 })
        #expect(harness.snapshot.requests.map(\.id) == [1], "no second request while the first is in flight")
    }

    @Test func theDirectoryIsCreated0700AndTheSocket0600AndRemovedAtClose() throws {
        let directory = try ControlTestDirectory()
        let runDirectory = directory.path + "/run"
        let path = runDirectory + "/web.sock"
        let harness = try ControlHarness(path: path)

        var info = stat()
        try #require(stat(runDirectory, &info) == 0)
        #expect(info.st_mode & S_IFMT == S_IFDIR)
        #expect(info.st_mode & 0o7777 == 0o700)
        try #require(lstat(path, &info) == 0)
        #expect(info.st_mode & S_IFMT == S_IFSOCK)
        #expect(info.st_mode & 0o7777 == 0o600)

        harness.stop()
        #expect(lstat(path, &info) != 0 && errno == ENOENT, "close() removes the socket file")
    }

    @Test func aDirectoryOthersCanWriteIsRefused() throws {
        let directory = try ControlTestDirectory()
        let open = directory.path + "/open"
        try #require(mkdir(open, 0o700) == 0 && chmod(open, 0o777) == 0)
        let reactor = try Reactor()
        let error = #expect(throws: SystemError.self) {
            _ = try ControlServer(path: open + "/web.sock", reactor: reactor) { _, _ in }
        }
        #expect(error?.description.contains("has mode 0777") == true, "\(String(describing: error))")
        var info = stat()
        #expect(lstat(open + "/web.sock", &info) != 0, "no socket was created")
    }

    @Test func aStaleSocketFileIsReplacedButALiveOneIsNot() throws {
        let directory = try ControlTestDirectory()
        let path = directory.path + "/web.sock"
        // A socket file nobody listens on, as a master killed with SIGKILL leaves it.
        let stale = socket(AF_UNIX, CInt(SOCK_STREAM.rawValue), 0)
        try #require(stale >= 0)
        try #require(SocketAddress.withUnix(path: path, abstract: false) { Glibc.bind(stale, $0, $1) } == 0)
        close(stale)

        let harness = try ControlHarness(path: path)
        defer { harness.stop() }
        let client = try LineClient(path: path)
        try client.write(#"{"v":1,"id":1,"cmd":"status"}"# + "\n")
        #expect(try client.reply().ok)

        let reactor = try Reactor()
        let error = #expect(throws: SystemError.self) {
            _ = try ControlServer(path: path, reactor: reactor) { _, _ in }
        }
        #expect(error?.description.contains("another master listens there") == true, "\(String(describing: error))")
        let again = try LineClient(path: path)
        try again.write(#"{"v":1,"id":2,"cmd":"status"}"# + "\n")
        #expect(try again.reply().ok, "the live master's socket was left alone")
    }

    @Test(.enabled(if: geteuid() == 0, "needs root to run a client as another uid"))
    func aPeerOfAnotherUIDIsRefusedUnlessItIsTheMastersOwn() throws {
        let directory = try ControlTestDirectory()
        // Open the modes, so that SO_PEERCRED is what refuses the client, not the file modes.
        try #require(chmod(directory.path, 0o755) == 0)
        let refusing = try ControlHarness(path: directory.path + "/root.sock")
        defer { refusing.stop() }
        try #require(chmod(refusing.path, 0o666) == 0)

        let refused = try runClient(asUID: 65534, path: refusing.path)
        let reply = try #require(try? ControlCodec.decodeMessage(Array(refused.utf8)), "client printed: \(refused)")
        guard case .reply(let refusal) = reply else {
            Issue.record("expected a reply, got \(reply)")
            return
        }
        #expect(!refusal.ok)
        #expect(refusal.error == "permission denied: uid 65534")
        #expect(refusing.snapshot.requests.isEmpty)

        // Root is let in.
        let root = try LineClient(path: refusing.path)
        try root.write(#"{"v":1,"id":1,"cmd":"status"}"# + "\n")
        #expect(try root.reply().ok)

        // A master running as uid 65534 lets that uid in.
        let accepting = try ControlHarness(path: directory.path + "/nobody.sock", masterUID: 65534)
        defer { accepting.stop() }
        try #require(chmod(accepting.path, 0o666) == 0)
        let accepted = try runClient(asUID: 65534, path: accepting.path)
        #expect(accepted.contains(#""ok":true"#), "client printed: \(accepted)")
        #expect(accepting.snapshot.requests.map(\.id) == [5])
    }

    @Test func theCommandLineClientTalksToTheServer() throws {
        let baton = try #require(batonExecutable(), "the baton executable is built beside the tests")
        let directory = try ControlTestDirectory()
        let harness = try ControlHarness(path: directory.path + "/web.sock")
        defer { harness.stop() }

        let reload = try runBaton(baton, ["reload", "--wait", "--control", harness.path])
        #expect(reload.status == 0, "stderr: \(reload.standardError)")
        #expect(
            reload.standardOutput == """
                gen=2 reloading
                gen=2 worker=0 pid=100 spawned
                gen=2 worker=0 pid=100 ready
                gen=2 serving
                reload ok: gen=2 serving in 12ms

                """)

        let status = try runBaton(baton, ["status", "--control", harness.path])
        #expect(status.status == 0, "stderr: \(status.standardError)")
        #expect(status.standardOutput.contains("master pid 4120, running, up 2h3m; program web"))
        #expect(status.standardOutput.contains("2    serving  2m5s  0       4121  ready            2m5s    0"), "\(status.standardOutput)")

        let json = try runBaton(baton, ["status", "--json"], environment: ["BATON_CONTROL": harness.path])
        #expect(json.status == 0, "stderr: \(json.standardError)")
        #expect(try JSONDecoder().decode(StatusReport.self, from: Data(json.standardOutput.utf8)) == sampleReport)

        let scale = try runBaton(baton, ["scale", "3", "--control", harness.path])
        #expect(scale.status == 0)
        #expect(scale.standardOutput == "workers: 3\n")

        let missing = try runBaton(baton, ["stop", "--control", directory.path + "/none.sock"])
        #expect(missing.status == 3)
        #expect(missing.standardError.contains("no master reachable"))
    }

    @Test func theCommandLineClientReportsAFailedReloadAndTimesOut() throws {
        let baton = try #require(batonExecutable(), "the baton executable is built beside the tests")
        let directory = try ControlTestDirectory()
        let failing = try ControlHarness(path: directory.path + "/failing.sock") { _ in
            (
                [ControlEvent(.exited, generation: 3, worker: 0, pid: 300, message: "exited with status 1")],
                .reload(
                    .failed(generation: 3, reason: "worker=0 pid=300 exited with status 1 before ready", outputOf: 300),
                    output: ["listen tcp :8080: address already in use"])
            )
        }
        defer { failing.stop() }
        let failed = try runBaton(baton, ["reload", "--wait", "--control", failing.path])
        #expect(failed.status == 1)
        #expect(failed.standardOutput == "gen=3 worker=0 pid=300 exited: exited with status 1\n")
        #expect(
            failed.standardError == """
                baton: reload failed: gen=3 failed: worker=0 pid=300 exited with status 1 before ready
                last output of the failing worker:
                  | listen tcp :8080: address already in use

                """)

        let silent = try ControlHarness(path: directory.path + "/silent.sock") { _ in ([], nil) }
        defer { silent.stop() }
        let started = ContinuousClock.now
        let waited = try runBaton(baton, ["reload", "--wait", "--timeout", "300ms", "--control", silent.path])
        #expect(waited.status == 4)
        #expect(waited.standardError.contains("timed out"))
        #expect(ContinuousClock.now - started >= .milliseconds(300))
        #expect(silent.wait("the reload request was read") { $0.requests.map(\.command) == [.reload(wait: true)] })
    }
}

private let sampleReport = StatusReport(
    masterPID: 4120, uptimeSeconds: 7384, configPath: nil, program: "web", phase: "running",
    listeners: [.init(name: "http", address: "tcp://127.0.0.1:8080", fd: 3)],
    generations: [
        .init(
            number: 2, state: "serving", ageSeconds: 125,
            workers: [
                .init(index: 0, pid: 4121, state: "ready", uptimeSeconds: 125, restarts: 0),
                .init(index: 1, pid: nil, state: "waiting-restart", uptimeSeconds: nil, restarts: 3),
            ])
    ],
    lastReload: .init(ok: true, generation: 2, durationMilliseconds: 182, error: nil, secondsAgo: 125))

// MARK: - The server on its own reactor thread

/// Runs a `ControlServer` on a `Reactor` on a dedicated thread until `stop()`. Requests are
/// answered by `respond` (on that thread) and recorded for the test, which waits on a condition.
private final class ControlHarness: Sendable {
    struct Record {
        var requests: [ControlRequest] = []
        var mostClients = 0
        var disconnects = 0
        var startFailure: String?
        var started = false
        var finished = false
    }

    let path: String
    private let record = Mutex(Record())
    private let changed = NSCondition()
    private let wakeRead: CInt
    private let wakeWrite: CInt

    typealias Responder = @Sendable (ControlRequest) -> (events: [ControlEvent], reply: ControlReply?)

    private let responder: Responder

    init(
        path: String, limits: ControlServer.Limits = .standard, masterUID: uid_t = geteuid(),
        responder: @escaping Responder = ControlHarness.respond
    ) throws {
        self.path = path
        self.responder = responder
        var fds: [CInt] = [0, 0]
        guard pipe(&fds) == 0 else { throw ControlTestError("pipe: \(String(cString: strerror(errno)))") }
        _ = baton_set_cloexec(fds[0], 1)
        _ = baton_set_cloexec(fds[1], 1)
        (wakeRead, wakeWrite) = (fds[0], fds[1])
        let thread = Thread { [self] in self.serve(limits: limits, masterUID: masterUID) }
        thread.start()
        guard wait("the server starts", { $0.started || $0.finished }) else {
            throw ControlTestError("the server did not start within 30 s")
        }
        if let failure = snapshot.startFailure {
            close(wakeRead)
            close(wakeWrite)
            throw ControlTestError(failure)
        }
    }

    var snapshot: Record { record.withLock { $0 } }

    /// Waits (on a condition, no polling) until `predicate` holds for the record.
    @discardableResult
    func wait(_ what: String, timeout: Duration = .seconds(30), _ predicate: (Record) -> Bool) -> Bool {
        let deadline = Date(timeIntervalSinceNow: Double(timeout.components.seconds))
        changed.lock()
        defer { changed.unlock() }
        func holds() -> Bool { record.withLock { current in predicate(current) } }
        while !holds() {
            if !changed.wait(until: deadline) { return holds() }
        }
        return true
    }

    /// Closes the server (removing its socket file) and ends the thread. Idempotent.
    func stop() {
        guard !snapshot.finished else { return }
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
        guard wait("the server thread ends", { $0.finished }) else {
            Issue.record("the control server thread did not end")
            return
        }
        close(wakeRead)
        close(wakeWrite)
    }

    private func update(_ change: (inout Record) -> Void) {
        changed.lock()
        record.withLock { current in change(&current) }
        changed.broadcast()
        changed.unlock()
    }

    /// The reactor thread.
    private func serve(limits: ControlServer.Limits, masterUID: uid_t) {
        final class Box { var server: ControlServer? }
        let box = Box()
        do {
            let reactor = try Reactor()
            box.server = try ControlServer(path: path, reactor: reactor, masterUID: masterUID, limits: limits) {
                [self] client, request in
                guard let server = box.server else { return }
                update {
                    $0.requests.append(request)
                    $0.mostClients = max($0.mostClients, server.clientCount)
                }
                let (events, reply) = responder(request)
                for event in events { server.send(event, to: client) }
                if let reply { server.reply(reply, to: client) }
            }
            box.server?.onDisconnect = { [self] _ in update { $0.disconnects += 1 } }
            try reactor.register(wakeRead) { [unowned reactor] _ in
                box.server?.close()
                box.server = nil
                reactor.stop()
            }
            update { $0.started = true }
            reactor.run {}
            reactor.unregister(wakeRead)
        } catch {
            update { $0.startFailure = "\(error)" }
        }
        box.server = nil
        update { $0.finished = true }
    }

    /// The test master: status, reload and scale are answered at once (scale N first sends N
    /// events of 1 KiB); stop is never answered.
    @Sendable static func respond(to request: ControlRequest) -> (events: [ControlEvent], reply: ControlReply?) {
        switch request.command {
        case .status:
            return ([], ControlReply(ok: true, message: "status ok", status: sampleReport))
        case .reload(wait: true):
            let events = [
                ControlEvent(.reloading, generation: 2),
                ControlEvent(.spawned, generation: 2, worker: 0, pid: 100),
                ControlEvent(.ready, generation: 2, worker: 0, pid: 100),
                ControlEvent(.serving, generation: 2),
            ]
            return (events, .reload(.succeeded(generation: 2, duration: .milliseconds(12))))
        case .reload(wait: false):
            return ([], .success(message: "reload started"))
        case .scale(let workers):
            let filler = String(repeating: "e", count: 1024)
            return (Array(repeating: ControlEvent(.message, message: filler), count: workers), ControlReply(ok: true, workers: workers))
        case .stop:
            return ([], nil)
        }
    }
}

// MARK: - Clients

/// A blocking control client with receive and send timeouts, reading line by line.
private final class LineClient {
    let fd: CInt
    private var buffer: [UInt8] = []
    private var closed = false

    init(path: String, timeout: Duration = .seconds(30), receiveBuffer: CInt? = nil) throws {
        fd = socket(AF_UNIX, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ControlTestError("socket: \(String(cString: strerror(errno)))") }
        var time = timeval(tv_sec: Int(timeout.components.seconds), tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        if var size = receiveBuffer {
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<CInt>.size))
        }
        let result = SocketAddress.withUnix(path: path, abstract: false) { connect(fd, $0, $1) }
        guard result == 0 else {
            let error = ControlTestError("connect \(path): \(String(cString: strerror(errno)))")
            Glibc.close(fd)
            throw error
        }
    }

    deinit { close() }

    func close() {
        guard !closed else { return }
        closed = true
        Glibc.close(fd)
    }

    func write(_ text: String) throws {
        guard writeIgnoringErrors(Array(text.utf8)) else {
            throw ControlTestError("send: \(String(cString: strerror(errno)))")
        }
    }

    /// Writes everything, or stops at the first error (returns false).
    func writeIgnoringErrors(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, CInt(MSG_NOSIGNAL)) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { return false }
            offset += count
        }
        return true
    }

    /// The next line without its newline; `nil` at the end of the connection (EOF or reset).
    func readLine() throws -> String? {
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeSubrange(...newline)
                return line
            }
            var chunk = [UInt8](repeating: 0, count: 16 * 1024)
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                buffer += chunk[..<count]
            } else if count == 0 || errno == ECONNRESET {
                return nil
            } else if errno != EINTR {
                throw ControlTestError("recv: \(String(cString: strerror(errno)))")
            }
        }
    }

    func message() throws -> ControlCodec.Message {
        guard let line = try readLine() else { throw ControlTestError("the server closed the connection") }
        return try ControlCodec.decodeMessage(Array(line.utf8))
    }

    /// The next message, which must be a reply.
    func reply() throws -> ControlReply {
        let next = try message()
        guard case .reply(let reply) = next else { throw ControlTestError("expected a reply, got \(next)") }
        return reply
    }
}

/// Runs a one-request Python client as `uid` (setpriv) and returns what it printed: the line the
/// server answered.
private func runClient(asUID uid: uid_t, path: String) throws -> String {
    let script = """
        import socket, sys
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        s.connect(sys.argv[1])
        try:
            s.sendall(b'{"v":1,"id":5,"cmd":"status"}\\n')
        except OSError:
            pass  # a refused client may be closed before it sends
        data = b''
        while not data.endswith(b'\\n'):
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        sys.stdout.write(data.decode())
        """
    let python = "/usr/bin/python3"
    let setpriv = "/usr/bin/setpriv"
    guard access(python, X_OK) == 0, access(setpriv, X_OK) == 0 else {
        throw ControlTestError("\(python) and \(setpriv) are needed to run a client as another uid")
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: setpriv)
    process.arguments = ["--reuid=\(uid)", "--regid=\(uid)", "--clear-groups", python, "-I", "-c", script, path]
    let output = Pipe()
    let errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    try process.run()
    defer {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
    let printed = output.fileHandleForReading.readDataToEndOfFile()
    let complaints = errors.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw ControlTestError("client exited \(process.terminationStatus): \(String(decoding: complaints, as: UTF8.self))")
    }
    return String(decoding: printed, as: UTF8.self).trimmingCharacters(in: .newlines)
}

// MARK: - Helpers

/// `baton` beside the test bundle (SwiftPM builds every product into the same directory).
private func batonExecutable() -> String? {
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    if let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        directory = URL(fileURLWithPath: executable).deletingLastPathComponent()
    }
    // The test binary may sit inside batonPackageTests.xctest/ or beside it.
    for candidate in [directory, directory.deletingLastPathComponent()] {
        let path = candidate.appendingPathComponent("baton").path
        if access(path, X_OK) == 0 { return path }
    }
    return nil
}

private struct BatonRun {
    var status: Int32
    var standardOutput: String
    var standardError: String
}

/// Runs `baton` with `arguments` to completion (every client command bounds its own wait).
private func runBaton(_ baton: String, _ arguments: [String], environment: [String: String] = [:]) throws -> BatonRun {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: baton)
    process.arguments = arguments
    var variables = ProcessInfo.processInfo.environment
    variables["BATON_CONTROL"] = nil
    variables.merge(environment) { $1 }
    process.environment = variables
    let output = Pipe()
    let errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    try process.run()
    defer {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
    // Both pipes hold far less than a pipe buffer, so reading one after the other cannot block.
    let printed = output.fileHandleForReading.readDataToEndOfFile()
    let complaints = errors.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return BatonRun(
        status: process.terminationStatus, standardOutput: String(decoding: printed, as: UTF8.self),
        standardError: String(decoding: complaints, as: UTF8.self))
}

/// A fresh directory (mode 0700) under /tmp, short enough for socket paths; removed on deinit.
private final class ControlTestDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/baton-control.XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw ControlTestError("mkdtemp: \(String(cString: strerror(errno)))")
        }
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

private struct ControlTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
