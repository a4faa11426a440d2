import BatonCore
import Foundation
import Glibc
import Testing

@testable import BatonRuntime

/// The control protocol's lines, the status report and the socket path rules.
@Suite struct ControlProtocolTests {
    private func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    private func request(_ line: String) -> Result<ControlRequest, ControlRequestError> {
        ControlCodec.decodeRequest(Array(line.utf8))
    }

    // MARK: Requests

    @Test func requestsEncodeToOneLineOfTheDocumentedShape() {
        #expect(text(ControlCodec.encode(ControlRequest(id: 7, command: .reload(wait: true))))
            == #"{"cmd":"reload","id":7,"v":1,"wait":true}"# + "\n")
        #expect(text(ControlCodec.encode(ControlRequest(id: 1, command: .status))) == #"{"cmd":"status","id":1,"v":1}"# + "\n")
        #expect(text(ControlCodec.encode(ControlRequest(id: 2, command: .stop(now: true))))
            == #"{"cmd":"stop","id":2,"now":true,"v":1}"# + "\n")
        #expect(text(ControlCodec.encode(ControlRequest(id: 3, command: .scale(workers: 8))))
            == #"{"cmd":"scale","id":3,"v":1,"workers":8}"# + "\n")
    }

    @Test(arguments: [
        ControlCommand.reload(wait: true), .reload(wait: false), .status, .stop(now: false), .stop(now: true),
        .scale(workers: 4096),
    ])
    func everyRequestRoundTrips(_ command: ControlCommand) throws {
        let original = ControlRequest(id: 42, command: command)
        var line = ControlCodec.encode(original)
        #expect(line.removeLast() == UInt8(ascii: "\n"))
        #expect(!line.contains(UInt8(ascii: "\n")))
        #expect(try ControlCodec.decodeRequest(line).get() == original)
    }

    @Test func theDesignsExampleDecodesAndDefaultsApply() throws {
        #expect(try request(#"{"v":1,"id":7,"cmd":"reload","wait":true}"#).get() == ControlRequest(id: 7, command: .reload(wait: true)))
        #expect(try request(#"{"v":1,"id":8,"cmd":"reload"}"#).get().command == .reload(wait: false))
        #expect(try request(#"{"v":1,"id":9,"cmd":"stop"}"#).get().command == .stop(now: false))
        #expect(try request(#" {"id":10, "cmd":"status", "v":1, "future":"ignored"} "#).get().command == .status)
    }

    @Test(arguments: [
        ("not json", nil, "invalid JSON request"),
        ("", nil, "invalid JSON request"),
        ("[1,2]", nil, "expected a JSON object"),
        (#"{"v":1,"id":"seven","cmd":"status"}"#, nil, #""id" must be a number"#),
        (#"{"v":1,"id":7,"cmd":"status","wait":"yes"}"#, nil, #""wait" must be true or false"#),
        (#"{"id":7,"cmd":"status"}"#, 7, #"missing "v""#),
        (#"{"v":2,"id":7,"cmd":"status"}"#, 7, "unsupported protocol version v=2 (this master speaks v=1)"),
        (#"{"v":1,"cmd":"status"}"#, nil, #"missing "id""#),
        (#"{"v":1,"id":7}"#, 7, #"missing "cmd""#),
        (#"{"v":1,"id":7,"cmd":"restart"}"#, 7, #"unknown command "restart" (expected one of reload, status, stop, scale)"#),
        (#"{"v":1,"id":7,"cmd":"scale"}"#, 7, #"scale: missing "workers""#),
        (#"{"v":1,"id":7,"cmd":"scale","workers":0}"#, 7, #"scale: "workers" must be 1 to 4096, not 0"#),
    ] as [(String, UInt64?, String)])
    func badRequestsAreNamed(_ line: String, id: UInt64?, message: String) {
        switch request(line) {
        case .success(let decoded):
            Issue.record("\(line) decoded as \(decoded)")
        case .failure(let error):
            #expect(error.id == id)
            #expect(error.message.contains(message), "got: \(error.message)")
        }
    }

    // MARK: Events and replies

    @Test func eventsAndRepliesHaveTheDocumentedShape() {
        #expect(text(ControlCodec.encode(ControlEvent(.spawned, generation: 3, worker: 0, pid: 123, id: 7)))
            == #"{"event":"spawned","generation":3,"id":7,"pid":123,"v":1,"worker":0}"# + "\n")
        var failure = ControlReply.failure("gen=3 failed: worker 0 exited with status 1", output: ["boom", "a \"quoted\"\nline"])
        failure.id = 7
        #expect(text(ControlCodec.encode(failure))
            == #"{"error":"gen=3 failed: worker 0 exited with status 1","id":7,"ok":false,"output":["boom","a \"quoted\"\nline"],"v":1}"# + "\n")
        // A refusal before any request carries no id.
        #expect(text(ControlCodec.encode(ControlReply.failure("permission denied: uid 1000")))
            == #"{"error":"permission denied: uid 1000","ok":false,"v":1}"# + "\n")
    }

    /// Event and reply lines are built by hand for speed: they must equal what the `Codable`
    /// conformance (which clients decode with) writes, field for field.
    @Test func handBuiltLinesEqualTheCodableEncoding() throws {
        var full = ControlReply(
            ok: false, error: "e\n\"x\"", output: ["a", "b/c"], message: "m", generation: 4, durationMilliseconds: 182,
            workers: 2, status: Self.sampleReport)
        full.id = 9
        let messages = [
            WireMessage(reply: full), WireMessage(reply: ControlReply.success()),
            WireMessage(event: ControlEvent(.exited, generation: 3, worker: 1, pid: 77, message: "status 0", id: 1)),
            WireMessage(event: ControlEvent(.serving)),
        ]
        for message in messages {
            #expect(text(message.line()) == text(try JSONCoding.encode(message)) + "\n")
        }
    }

    @Test func messagesRoundTripAndUnknownEventKindsSurvive() throws {
        var line = ControlCodec.encode(ControlEvent(.draining, generation: 2, message: "replaced by gen=3", id: 9))
        line.removeLast()
        #expect(try ControlCodec.decodeMessage(line) == .event(ControlEvent(.draining, generation: 2, message: "replaced by gen=3", id: 9)))

        let future = try ControlCodec.decodeMessage(Array(#"{"v":1,"id":9,"event":"teleported","generation":4}"#.utf8))
        #expect(future == .event(ControlEvent(ControlEvent.Kind(rawValue: "teleported"), generation: 4, id: 9)))

        var reply = ControlReply(ok: true, message: "gen=4 serving", generation: 4, durationMilliseconds: 182, workers: 2, status: Self.sampleReport)
        reply.id = 9
        line = ControlCodec.encode(reply)
        line.removeLast()
        #expect(try ControlCodec.decodeMessage(line) == .reply(reply))

        #expect(throws: ControlCodecError.self) { try ControlCodec.decodeMessage(Array(#"{"v":1,"id":1}"#.utf8)) }
        #expect(throws: ControlCodecError.self) { try ControlCodec.decodeMessage(Array("garbage".utf8)) }
    }

    @Test func reloadOutcomesBecomeReplies() {
        let ok = ControlReply.reload(.succeeded(generation: 4, duration: .milliseconds(182)))
        #expect(ok.ok)
        #expect(ok.generation == 4)
        #expect(ok.durationMilliseconds == 182)

        let failed = ControlReply.reload(
            .failed(generation: 5, reason: "worker 1 exited with status 3", outputOf: 4242), output: ["listen: address in use"])
        #expect(!failed.ok)
        #expect(failed.generation == 5)
        #expect(failed.error == "gen=5 failed: worker 1 exited with status 3")
        #expect(failed.output == ["listen: address in use"])

        let refused = ControlReply.reload(.failed(generation: nil, reason: "the master is stopping", outputOf: nil))
        #expect(refused.error == "the master is stopping")
        #expect(refused.output == nil)
    }

    // MARK: Status report

    static let sampleReport = StatusReport(
        masterPID: 100, uptimeSeconds: 12.5, configPath: "/etc/baton/web.toml", program: "web", phase: "running",
        listeners: [.init(name: "http", address: "tcp://127.0.0.1:8080", fd: 3)],
        generations: [
            .init(
                number: 1, state: "serving", ageSeconds: 12,
                workers: [.init(index: 0, pid: 101, state: "ready", uptimeSeconds: 11.5, restarts: 0)])
        ],
        lastReload: .init(ok: false, generation: 2, durationMilliseconds: nil, error: "ready timeout", secondsAgo: 3))

    @Test func theStatusReportUsesSnakeCaseKeys() throws {
        let json = ControlCodec.encodePretty(Self.sampleReport)
        for key in ["master_pid", "uptime_seconds", "config_path", "last_reload", "age_seconds", "seconds_ago", "restarts", "\"fd\""] {
            #expect(json.contains(key), "\(key) missing from \(json)")
        }
        let decoded = try JSONDecoder().decode(StatusReport.self, from: Data(json.utf8))
        #expect(decoded == Self.sampleReport)
    }

    @Test func theStatusReportReflectsTheStateMachine() throws {
        var machine = Supervisor()
        let start = MonotonicInstant(nanoseconds: 1_000_000_000)
        _ = machine.handle(.start, at: start)
        _ = machine.handle(.generationPrepared(generation: 1, GenerationSettings(workers: 2)), at: start)
        _ = machine.handle(.workerSpawned(WorkerID(generation: 1, index: 0), pid: 501), at: start)
        _ = machine.handle(.workerSpawned(WorkerID(generation: 1, index: 1), pid: 502), at: start)
        _ = machine.handle(.workerReady(pid: 501), at: start + .milliseconds(100))
        _ = machine.handle(.workerReady(pid: 502), at: start + .milliseconds(200))
        let socket = BoundSocket(name: "http", configured: .tcp(host: "127.0.0.1", port: 0), fd: 3, local: "tcp://127.0.0.1:41234")

        let report = StatusReport(
            machine: machine, now: start + .seconds(10), masterPID: 500, startedAt: MonotonicInstant(nanoseconds: 0),
            configPath: nil, program: "web", sockets: [socket])
        #expect(report.masterPID == 500)
        #expect(report.uptimeSeconds == 11)
        #expect(report.phase == "running")
        #expect(report.listeners == [.init(name: "http", address: "tcp://127.0.0.1:41234", fd: 3)])
        let generation = try #require(report.generations.first)
        #expect(report.generations.count == 1)
        #expect(generation.number == 1)
        #expect(generation.state == "serving")
        #expect(generation.ageSeconds == 10)
        #expect(generation.workers.map(\.pid) == [501, 502])
        #expect(generation.workers.map(\.state) == ["ready", "ready"])
        #expect(generation.workers.map(\.restarts) == [0, 0])
        #expect(report.lastReload == nil, "the first start is not a reload")
    }

    // MARK: Progress events

    /// Feeds `event` to `machine` and returns the progress events a waiting client would get.
    private func step(_ machine: inout Supervisor, _ event: SupervisorEvent, at seconds: Int) -> [String] {
        let before = machine.generations
        _ = machine.handle(event, at: MonotonicInstant(nanoseconds: UInt64(seconds) * 1_000_000_000))
        return ControlProgress.events(from: before, to: machine.generations).map(Reload.line)
    }

    @Test func progressEventsFollowAReloadThatSucceedsAndOneThatFails() {
        var machine = Supervisor()
        _ = step(&machine, .start, at: 1)
        _ = step(&machine, .generationPrepared(generation: 1, GenerationSettings(workers: 1)), at: 1)
        _ = step(&machine, .workerSpawned(WorkerID(generation: 1, index: 0), pid: 10), at: 1)
        _ = step(&machine, .workerReady(pid: 10), at: 1)
        #expect(machine.servingGeneration?.number == 1)

        #expect(step(&machine, .reloadRequested(ReloadRequester(id: 1)), at: 2) == ["reloading gen=2"])
        #expect(step(&machine, .generationPrepared(generation: 2, GenerationSettings(workers: 2)), at: 2) == [])
        #expect(step(&machine, .workerSpawned(WorkerID(generation: 2, index: 0), pid: 20), at: 2) == ["spawned gen=2 worker=0 pid=20"])
        #expect(step(&machine, .workerSpawned(WorkerID(generation: 2, index: 1), pid: 21), at: 2) == ["spawned gen=2 worker=1 pid=21"])
        #expect(step(&machine, .workerReady(pid: 20), at: 3) == ["ready gen=2 worker=0 pid=20"])
        #expect(
            step(&machine, .workerReady(pid: 21), at: 3)
                == ["ready gen=2 worker=1 pid=21", "serving gen=2", "draining gen=1"])

        #expect(step(&machine, .reloadRequested(ReloadRequester(id: 2)), at: 4) == ["reloading gen=3"])
        _ = step(&machine, .generationPrepared(generation: 3, GenerationSettings(workers: 1)), at: 4)
        _ = step(&machine, .workerSpawned(WorkerID(generation: 3, index: 0), pid: 30), at: 4)
        #expect(step(&machine, .processExited(pid: 30, .exited(1)), at: 5) == ["exited gen=3 worker=0 pid=30", "failed gen=3"])
    }

    // MARK: Socket paths

    @Test func theDefaultDirectoryFollowsTheDesign() {
        #expect(ControlPath.defaultDirectory(environment: ["RUNTIME_DIRECTORY": "/run/baton"], uid: 1000) == "/run/baton")
        #expect(ControlPath.defaultDirectory(environment: ["RUNTIME_DIRECTORY": "/run/baton/:/run/other"], uid: 0) == "/run/baton")
        #expect(ControlPath.defaultDirectory(environment: ["XDG_RUNTIME_DIR": "/run/user/1000"], uid: 0) == "/run/baton")
        #expect(ControlPath.defaultDirectory(environment: ["XDG_RUNTIME_DIR": "/run/user/1000/"], uid: 1000) == "/run/user/1000/baton")
        #expect(ControlPath.defaultDirectory(environment: [:], uid: 1000) == "/tmp/baton-1000")
        #expect(ControlPath.defaultPath(program: "web", environment: [:], uid: 0) == "/run/baton/web.sock")
        #expect(ControlPath.masterPath(configured: "/srv/web.sock", program: "web", environment: [:], uid: 0) == "/srv/web.sock")
        #expect(ControlPath.fileName(program: "../x") == ".._x.sock")
    }

    @Test func aClientFindsTheSocketByFlagConfigEnvironmentOrTheOnlyOne() {
        let environment = ["XDG_RUNTIME_DIR": "/run/user/1000", "BATON_CONTROL": "/env.sock"]
        func resolve(
            explicit: String? = nil, configured: String? = nil, program: String? = nil, environment: [String: String],
            sockets: [String]?
        ) -> Result<String, ControlPathError> {
            ControlPath.resolveForClient(
                explicit: explicit, configured: configured, program: program, environment: environment, uid: 1000,
                listSockets: { directory in
                    #expect(directory == "/run/user/1000/baton")
                    return sockets
                })
        }
        #expect(resolve(explicit: "/flag.sock", configured: "/c.sock", environment: environment, sockets: []) == .success("/flag.sock"))
        #expect(resolve(configured: "/c.sock", program: "web", environment: environment, sockets: []) == .success("/c.sock"))
        #expect(resolve(program: "web", environment: environment, sockets: []) == .success("/run/user/1000/baton/web.sock"))
        #expect(resolve(environment: environment, sockets: []) == .success("/env.sock"))

        var plain = environment
        plain["BATON_CONTROL"] = nil
        #expect(resolve(environment: plain, sockets: ["web.sock", "notes.txt"]) == .success("/run/user/1000/baton/web.sock"))
        #expect(
            resolve(environment: plain, sockets: ["web.sock", "api.sock"])
                == .failure(.ambiguous(directory: "/run/user/1000/baton", names: ["api.sock", "web.sock"])))
        #expect(resolve(environment: plain, sockets: []) == .failure(.noneFound(directory: "/run/user/1000/baton")))
        #expect(resolve(environment: plain, sockets: nil) == .failure(.noneFound(directory: "/run/user/1000/baton")))
        #expect(ControlPathError.ambiguous(directory: "/d", names: ["a.sock", "b.sock"]).description.contains("a.sock, b.sock"))
    }

    @Test func socketFilesListsOnlySockets() throws {
        var template = Array("/tmp/baton-paths.XXXXXX".utf8CString)
        try #require(template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) } != nil)
        let directory = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let fd = socket(AF_UNIX, CInt(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        try #require(SocketAddress.withUnix(path: directory + "/web.sock", abstract: false) { bind(fd, $0, $1) } == 0)
        try #require(FileManager.default.createFile(atPath: directory + "/fake.sock", contents: Data()))

        #expect(ControlPath.socketFiles(in: directory) == ["web.sock"])
        #expect(ControlPath.socketFiles(in: directory + "/missing") == nil)
    }
}

private enum Reload {
    /// An event in a compact form for comparisons: `spawned gen=2 worker=0 pid=20`.
    static func line(_ event: ControlEvent) -> String {
        var parts = [event.kind.rawValue]
        if let generation = event.generation { parts.append("gen=\(generation)") }
        if let worker = event.worker { parts.append("worker=\(worker)") }
        if let pid = event.pid { parts.append("pid=\(pid)") }
        return parts.joined(separator: " ")
    }
}
