import BatonCore

// The control socket's wire format: newline-delimited JSON, one object per line.
//
//   request  {"v":1,"id":7,"cmd":"reload","wait":true}
//   events   {"v":1,"id":7,"event":"spawned","generation":3,"worker":0,"pid":123}
//   reply    {"v":1,"id":7,"ok":true,"generation":3,"duration_ms":182}
//            {"v":1,"id":7,"ok":false,"error":"…","output":["last lines of the failing worker"]}
//
// A connection carries one request at a time: the master answers it with zero or more events and
// exactly one reply, then reads the next request line. Keys are snake_case.

/// Constants of the control protocol.
public enum ControlProtocol {
    /// The protocol version this build speaks (`"v"`).
    public static let version = 1
    /// The longest request line accepted, newline included.
    public static let maximumRequestSize = 64 * 1024
    /// The worker counts `scale` accepts (as the configuration's `workers`).
    public static let workerRange = 1...4096
}

/// What a client asks the master to do.
public enum ControlCommand: Sendable, Equatable {
    /// Start a new generation. With `wait`, the reply comes once the reload has ended (events
    /// report its progress); without, as soon as the master has taken the request.
    case reload(wait: Bool)
    /// The master's state as a `StatusReport` (the reply's `status`).
    case status
    /// Stop the master: gracefully (drain every generation), or at once (`now`).
    case stop(now: Bool)
    /// Run this many workers per generation.
    case scale(workers: Int)

    /// The command's wire name (`"cmd"`).
    public var name: String {
        switch self {
        case .reload: return "reload"
        case .status: return "status"
        case .stop: return "stop"
        case .scale: return "scale"
        }
    }

    /// Every wire name, for error messages.
    public static let names = ["reload", "status", "stop", "scale"]
}

/// One request line. `id` is chosen by the client and echoed in every event and the reply.
public struct ControlRequest: Sendable, Equatable {
    public var id: UInt64
    public var command: ControlCommand

    public init(id: UInt64, command: ControlCommand) {
        self.id = id
        self.command = command
    }
}

/// A request line the master cannot take; `id` is set when the line carried a usable one, so the
/// error reply can be matched by the client.
public struct ControlRequestError: Error, Sendable, Equatable, CustomStringConvertible {
    public var id: UInt64?
    public var message: String

    public init(id: UInt64?, _ message: String) {
        self.id = id
        self.message = message
    }

    public var description: String { message }
}

/// Progress of a request, sent before its reply (for now only by `reload` with `wait`).
public struct ControlEvent: Sendable, Equatable {
    /// An event kind; unknown kinds from a newer master decode as themselves, so a client can
    /// show or skip them.
    public struct Kind: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// A new generation is being prepared (`generation`).
        public static let reloading = Kind(rawValue: "reloading")
        /// A worker process was started (`generation`, `worker`, `pid`).
        public static let spawned = Kind(rawValue: "spawned")
        /// A worker said it is ready (`generation`, `worker`, `pid`).
        public static let ready = Kind(rawValue: "ready")
        /// A generation serves traffic now (`generation`).
        public static let serving = Kind(rawValue: "serving")
        /// A generation was told to drain (`generation`).
        public static let draining = Kind(rawValue: "draining")
        /// A worker exited (`generation`, `worker`, `pid`, `message` says how).
        public static let exited = Kind(rawValue: "exited")
        /// Something went wrong (`message`); the reply tells whether the request failed.
        public static let failed = Kind(rawValue: "failed")
        /// Free text (`message`).
        public static let message = Kind(rawValue: "message")
    }

    /// The request this event belongs to; the server fills it in when sending.
    public var id: UInt64?
    public var kind: Kind
    public var generation: Int?
    public var worker: Int?
    public var pid: Int32?
    public var message: String?

    public init(
        _ kind: Kind, generation: Int? = nil, worker: Int? = nil, pid: Int32? = nil, message: String? = nil,
        id: UInt64? = nil
    ) {
        self.id = id
        self.kind = kind
        self.generation = generation
        self.worker = worker
        self.pid = pid
        self.message = message
    }
}

/// The answer to a request: `ok`, or `error` with the failing worker's last lines of `output`.
public struct ControlReply: Sendable, Equatable {
    /// The request answered; the server fills it in when sending. `nil` when the request line was
    /// unreadable or the connection was refused before any request.
    public var id: UInt64?
    public var ok: Bool
    public var error: String?
    /// The last lines the failing worker wrote, oldest first.
    public var output: [String]?
    /// Free text for people, e.g. "reload started".
    public var message: String?
    /// `reload`: the generation started (and, with `wait`, serving or failed).
    public var generation: Int?
    /// `reload` with `wait`: how long the reload took.
    public var durationMilliseconds: Int64?
    /// `scale`: the worker count now asked for.
    public var workers: Int?
    /// `status`: the report.
    public var status: StatusReport?

    public init(
        ok: Bool, error: String? = nil, output: [String]? = nil, message: String? = nil, generation: Int? = nil,
        durationMilliseconds: Int64? = nil, workers: Int? = nil, status: StatusReport? = nil, id: UInt64? = nil
    ) {
        self.id = id
        self.ok = ok
        self.error = error
        self.output = output
        self.message = message
        self.generation = generation
        self.durationMilliseconds = durationMilliseconds
        self.workers = workers
        self.status = status
    }

    /// A successful reply.
    public static func success(message: String? = nil) -> ControlReply {
        ControlReply(ok: true, message: message)
    }

    /// A failed reply saying why, with the failing worker's last output lines if any.
    public static func failure(_ error: String, output: [String] = []) -> ControlReply {
        ControlReply(ok: false, error: error, output: output.isEmpty ? nil : output)
    }

    /// The reply to a `reload` with `wait` once the supervisor reports its outcome
    /// (`SupervisorAction.reloadFinished`). `output` is the tail of the worker the outcome's
    /// `outputOf` names.
    public static func reload(_ outcome: ReloadOutcome, output: [String] = []) -> ControlReply {
        switch outcome {
        case .succeeded(let generation, let duration):
            return ControlReply(
                ok: true, message: "gen=\(generation) serving", generation: generation,
                durationMilliseconds: duration.milliseconds)
        case .failed(let generation, let reason, _):
            var reply = ControlReply.failure(generation.map { "gen=\($0) failed: \(reason)" } ?? reason, output: output)
            reply.generation = generation
            return reply
        }
    }
}

// MARK: - Wire coding

/// Encoding and decoding of protocol lines. Each encoded line ends with `\n`.
public enum ControlCodec {
    /// One line for a request.
    public static func encode(_ request: ControlRequest) -> [UInt8] {
        var wire = WireRequest(v: ControlProtocol.version, id: request.id, cmd: request.command.name)
        switch request.command {
        case .reload(let wait): wire.wait = wait
        case .status: break
        case .stop(let now): wire.now = now
        case .scale(let workers): wire.workers = workers
        }
        return line(wire)
    }

    /// One line for an event.
    public static func encode(_ event: ControlEvent) -> [UInt8] {
        WireMessage(event: event).line()
    }

    /// One line for a reply.
    public static func encode(_ reply: ControlReply) -> [UInt8] {
        WireMessage(reply: reply).line()
    }

    /// Reads a request line (without its newline). Errors name the problem in words a person
    /// typing JSON into `socat` understands.
    public static func decodeRequest(_ bytes: some Collection<UInt8>) -> Result<ControlRequest, ControlRequestError> {
        let wire: WireRequest
        do {
            wire = try JSONCoding.decode(WireRequest.self, from: bytes)
        } catch {
            return .failure(ControlRequestError(id: nil, describe(error, reading: "request")))
        }
        guard let version = wire.v else {
            return .failure(ControlRequestError(id: wire.id, "missing \"v\" (this master speaks v=\(ControlProtocol.version))"))
        }
        guard version == ControlProtocol.version else {
            return .failure(
                ControlRequestError(
                    id: wire.id, "unsupported protocol version v=\(version) (this master speaks v=\(ControlProtocol.version))"))
        }
        guard let id = wire.id else {
            return .failure(ControlRequestError(id: nil, "missing \"id\" (a number chosen by the client)"))
        }
        let expected = ControlCommand.names.joined(separator: ", ")
        guard let name = wire.cmd else {
            return .failure(ControlRequestError(id: id, "missing \"cmd\" (one of \(expected))"))
        }
        switch name {
        case "reload":
            return .success(ControlRequest(id: id, command: .reload(wait: wire.wait ?? false)))
        case "status":
            return .success(ControlRequest(id: id, command: .status))
        case "stop":
            return .success(ControlRequest(id: id, command: .stop(now: wire.now ?? false)))
        case "scale":
            guard let workers = wire.workers else {
                return .failure(ControlRequestError(id: id, "scale: missing \"workers\""))
            }
            guard ControlProtocol.workerRange.contains(workers) else {
                let range = ControlProtocol.workerRange
                return .failure(
                    ControlRequestError(
                        id: id, "scale: \"workers\" must be \(range.lowerBound) to \(range.upperBound), not \(workers)"))
            }
            return .success(ControlRequest(id: id, command: .scale(workers: workers)))
        default:
            return .failure(ControlRequestError(id: id, "unknown command \"\(name)\" (expected one of \(expected))"))
        }
    }

    /// What a client reads from the master: an event or the reply.
    public enum Message: Sendable, Equatable {
        case event(ControlEvent)
        case reply(ControlReply)
    }

    /// Reads one line from the master (without its newline).
    public static func decodeMessage(_ bytes: some Collection<UInt8>) throws(ControlCodecError) -> Message {
        let wire: WireMessage
        do {
            wire = try JSONCoding.decode(WireMessage.self, from: bytes)
        } catch {
            throw ControlCodecError(describe(error, reading: "message"))
        }
        if let kind = wire.event {
            return .event(
                ControlEvent(
                    ControlEvent.Kind(rawValue: kind), generation: wire.generation, worker: wire.worker, pid: wire.pid,
                    message: wire.message, id: wire.id))
        }
        guard let ok = wire.ok else {
            throw ControlCodecError("message with neither \"event\" nor \"ok\"")
        }
        return .reply(
            ControlReply(
                ok: ok, error: wire.error, output: wire.output, message: wire.message, generation: wire.generation,
                durationMilliseconds: wire.durationMilliseconds, workers: wire.workers, status: wire.status,
                id: wire.id))
    }

    /// A status report as indented JSON for people and scripts (`baton status --json`).
    public static func encodePretty(_ report: StatusReport) -> String {
        // Encoding plain structs of strings and finite numbers cannot fail.
        guard let bytes = try? JSONCoding.encode(report, pretty: true) else { return "{}" }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func line(_ value: some Encodable) -> [UInt8] {
        // Keys are sorted, so lines are reproducible; JSON strings escape newlines, so a value
        // never breaks the framing.
        guard var bytes = try? JSONCoding.encode(value) else {
            return Array("{\"v\":1,\"ok\":false,\"error\":\"internal error: cannot encode the message\"}\n".utf8)
        }
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }

    private static func describe(_ error: any Error, reading what: String) -> String {
        guard let error = error as? DecodingError else { return "invalid JSON \(what): \(error)" }
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .dataCorrupted(let context) where context.codingPath.isEmpty:
            return "invalid JSON \(what): expected one JSON object per line"
        case .typeMismatch(_, let context) where context.codingPath.isEmpty:
            return "invalid \(what): expected a JSON object"
        case .typeMismatch(let type, let context):
            return "invalid \(what): \"\(path(context))\" must be \(typeName(type))"
        case .dataCorrupted(let context):
            return "invalid \(what): \"\(path(context))\": \(context.debugDescription)"
        case .keyNotFound(let key, _):
            return "invalid \(what): missing \"\(key.stringValue)\""
        case .valueNotFound(let type, let context):
            return "invalid \(what): \"\(path(context))\" must be \(typeName(type)), not null"
        @unknown default:
            return "invalid \(what): \(error)"
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Bool.Type: return "true or false"
        case is Int.Type, is Int32.Type, is Int64.Type, is UInt64.Type, is Double.Type: return "a number"
        case is [String].Type: return "a list of strings"
        default: return "a JSON object"
        }
    }
}

/// A line from the master that is not a valid protocol message.
public struct ControlCodecError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The request as it travels: every field optional, so missing ones get a precise message.
struct WireRequest: Codable {
    var v: Int?
    var id: UInt64?
    var cmd: String?
    var wait: Bool?
    var now: Bool?
    var workers: Int?
}

/// An event or a reply as it travels.
struct WireMessage: Codable {
    var v: Int = ControlProtocol.version
    var id: UInt64?
    var event: String?
    var ok: Bool?
    var error: String?
    var output: [String]?
    var message: String?
    var generation: Int?
    var worker: Int?
    var pid: Int32?
    var durationMilliseconds: Int64?
    var workers: Int?
    var status: StatusReport?

    enum CodingKeys: String, CodingKey {
        case v, id, event, ok, error, output, message, generation, worker, pid, workers, status
        case durationMilliseconds = "duration_ms"
    }

    init(event: ControlEvent) {
        id = event.id
        self.event = event.kind.rawValue
        generation = event.generation
        worker = event.worker
        pid = event.pid
        message = event.message
    }

    init(reply: ControlReply) {
        id = reply.id
        ok = reply.ok
        error = reply.error
        output = reply.output
        message = reply.message
        generation = reply.generation
        durationMilliseconds = reply.durationMilliseconds
        workers = reply.workers
        status = reply.status
    }

    /// The message as one line, its JSON built directly rather than through `Encodable`: a
    /// `reload --wait` gets several of these per reload. The keys and forms are those of the
    /// `Codable` conformance (`ControlProtocolTests` checks the two agree).
    func line() -> [UInt8] {
        var members: [String: JSONValue] = ["v": .number(String(v))]
        func put(_ key: String, _ value: JSONValue?) {
            if let value { members[key] = value }
        }
        put("id", id.map { .number(String($0)) })
        put("event", event.map { .string($0) })
        put("ok", ok.map { .bool($0) })
        put("error", error.map { .string($0) })
        put("output", output.map { .array($0.map { .string($0) }) })
        put("message", message.map { .string($0) })
        put("generation", generation.map { .number(String($0)) })
        put("worker", worker.map { .number(String($0)) })
        put("pid", pid.map { .number(String($0)) })
        put("duration_ms", durationMilliseconds.map { .number(String($0)) })
        put("workers", workers.map { .number(String($0)) })
        if let status {
            // Plain structs of strings and finite numbers: encoding cannot fail.
            put("status", try? JSONValueEncoder().encode(status))
        }
        var bytes = JSONValue.object(members).serialized()
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }
}
