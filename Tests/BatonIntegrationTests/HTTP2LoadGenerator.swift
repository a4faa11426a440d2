import Foundation
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import Synchronization

/// One failed request of an HTTP/2 load run.
struct HTTP2LoadFailure: Sendable, CustomStringConvertible {
    /// connect, no stream, reset, closed before response, timeout, bad status, other.
    var kind: String
    /// The error, or the unexpected status and body.
    var detail: String
    /// When it happened, counted from the start of the run.
    var at: Duration
    /// Which client, e.g. "h2 client 3".
    var client: String

    var description: String {
        "\(kind) at +\(Int(at / .milliseconds(1)))ms (\(client)): \(detail)"
    }
}

/// What one client of an HTTP/2 load run did.
struct HTTP2ClientRecord: Sendable {
    /// Requests answered with status 200.
    var served = 0
    /// Connections opened.
    var connections = 0
    /// GOAWAY frames received, on all its connections.
    var goAways = 0
    /// Connections opened because the previous one had received a GOAWAY.
    var movesAfterGoAway = 0
    /// Answers that came in after their connection had received a GOAWAY: requests that were
    /// on the wire, or in flight, when the drain began.
    var answeredAfterGoAway = 0
    /// Connections found closed when the next request was due, without a GOAWAY before.
    var closedWithoutGoAway = 0
    /// The generation (`gen=` of the body) of its last answer.
    var lastGeneration: String?
    /// How many answers in a row, up to the last, came from `lastGeneration`.
    var servedByLastGeneration = 0
}

/// What an HTTP/2 load run saw.
struct HTTP2LoadReport: Sendable, CustomStringConvertible {
    var served = 0
    var failed = 0
    /// The first 20 failures.
    var failures: [HTTP2LoadFailure] = []
    /// Answers per `gen=` of the body.
    var perGeneration: [String: Int] = [:]
    var clients: [HTTP2ClientRecord] = []
    var duration: Duration = .zero

    var connections: Int { clients.reduce(0) { $0 + $1.connections } }
    var goAways: Int { clients.reduce(0) { $0 + $1.goAways } }
    var movesAfterGoAway: Int { clients.reduce(0) { $0 + $1.movesAfterGoAway } }
    var closedWithoutGoAway: Int { clients.reduce(0) { $0 + $1.closedWithoutGoAway } }
    var answeredAfterGoAway: Int { clients.reduce(0) { $0 + $1.answeredAfterGoAway } }

    var description: String {
        let generations = perGeneration.sorted { $0.key < $1.key }.map { "gen \($0.key): \($0.value)" }
            .joined(separator: ", ")
        var text = "served \(served), failed \(failed) in \(Int(duration / .milliseconds(1)))ms [\(generations)]; "
            + "\(connections) connections, \(goAways) GOAWAYs, \(movesAfterGoAway) moves after GOAWAY, "
            + "\(answeredAfterGoAway) answered after GOAWAY, \(closedWithoutGoAway) closed without GOAWAY"
        for failure in failures { text += "\n  " + failure.description }
        return text
    }
}

/// h2c clients (prior knowledge, NIO's HTTP/2 client) that keep requests flowing from dedicated
/// threads until `stop()`, or until `maxDuration` passes (so a failed test never leaves them
/// running).
///
/// Each client holds one connection and sends a GET on a new stream about every `gap` (between
/// half and one and a half of it, at random, and the clients start spread over one `gap`, so that
/// they do not go in step and a reload finds some of them in the middle of a request), one stream
/// at a time. Like any correct HTTP/2 client, once its connection has received a GOAWAY it opens no
/// more streams there (checked on the connection's event loop right before the request's first
/// frame goes out) and sends its next request on a new connection; the old one is left for the
/// server to close. Every error on a request is a failure, and no request is ever retried.
final class HTTP2LoadGenerator: Sendable {
    private struct State {
        var report = HTTP2LoadReport()
        var stopping = false
        var running = 0
        var shutDown = false
    }

    private let state = Mutex(State())
    /// Rung on every change of `state`.
    private let condition = NSCondition()
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    private let host: String
    private let port: Int
    private let path: String
    private let started = ContinuousClock.now
    private let deadline: ContinuousClock.Instant
    private let requestTimeout: TimeAmount

    private init(host: String, port: Int, path: String, maxDuration: Duration, requestTimeout: TimeAmount) {
        self.host = host
        self.port = port
        self.path = path
        self.requestTimeout = requestTimeout
        deadline = started + maxDuration
    }

    /// Starts `clients` clients against `host:port`.
    static func start(
        host: String = "127.0.0.1", port: Int, path: String = "/", clients: Int, gap: Duration = .milliseconds(50),
        requestTimeout: TimeAmount = .seconds(10), maxDuration: Duration = .seconds(120)
    ) -> HTTP2LoadGenerator {
        let generator = HTTP2LoadGenerator(
            host: host, port: port, path: path, maxDuration: maxDuration, requestTimeout: requestTimeout)
        generator.state.withLock { state in
            state.running = clients
            state.report.clients = Array(repeating: HTTP2ClientRecord(), count: clients)
        }
        for index in 0..<clients {
            let offset = gap * (Double(index) / Double(clients))
            Thread.detachNewThread { generator.runClient(index, gap: gap, offset: offset) }
        }
        return generator
    }

    /// Stops every client after its current request, closes their connections and returns the
    /// report. Safe to call more than once.
    @discardableResult
    func stop() -> HTTP2LoadReport {
        change { $0.stopping = true }
        // A request in flight is bounded by `requestTimeout`.
        _ = wait(until: .now + .seconds(30)) { $0.running == 0 }
        let shutDown = state.withLock { state in
            defer { state.shutDown = true }
            return state.shutDown
        }
        if !shutDown { try? group.syncShutdownGracefully() }
        return snapshot()
    }

    /// The report so far, while the clients keep running.
    func snapshot() -> HTTP2LoadReport {
        state.withLock { state in
            var report = state.report
            report.duration = ContinuousClock.now - started
            return report
        }
    }

    /// Waits until the report so far satisfies `predicate` and returns it; throws with the report
    /// when `timeout` passes first.
    @discardableResult
    func waitForReport(timeout: Duration = .seconds(30), where predicate: (HTTP2LoadReport) -> Bool) throws
        -> HTTP2LoadReport
    {
        let done = wait(until: .now + timeout) { predicate($0.report) }
        let report = snapshot()
        guard done else { throw HTTP2LoadError("the h2 load did not reach the condition within \(timeout): \(report)") }
        return report
    }

    deinit {
        // The clients hold the generator while they run: here they have all ended. (This may
        // run on one of the group's threads, so no synchronous shutdown.)
        if !state.withLock({ $0.shutDown }) { group.shutdownGracefully { _ in } }
    }

    // MARK: - State

    private func change(_ body: (inout State) -> Void) {
        state.withLock { body(&$0) }
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }

    private func wait(until deadline: ContinuousClock.Instant, for isDone: (State) -> Bool) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while !isDone(state.withLock { $0 }) {
            let remaining = ContinuousClock.now.duration(to: deadline)
            if remaining <= .zero { return false }
            _ = condition.wait(until: Date(timeIntervalSinceNow: Double(remaining / .microseconds(1)) / 1e6))
        }
        return true
    }

    private var shouldStop: Bool {
        state.withLock { $0.stopping } || ContinuousClock.now >= deadline
    }

    /// Sleeps `gap`, give or take half (the pacing of the requests), unless stopped first; false
    /// when the client should end.
    private func pause(_ gap: Duration, exactly: Bool = false) -> Bool {
        let sleep = exactly ? gap : gap * Double.random(in: 0.5...1.5)
        _ = wait(until: min(ContinuousClock.now + sleep, deadline)) { $0.stopping }
        return !shouldStop
    }

    private func record(_ body: (inout HTTP2ClientRecord) -> Void, client index: Int) {
        change { body(&$0.report.clients[index]) }
    }

    private func recordFailure(_ kind: String, _ detail: String, client index: Int) {
        let failure = HTTP2LoadFailure(
            kind: kind, detail: detail, at: ContinuousClock.now - started, client: "h2 client \(index)")
        change { state in
            state.report.failed += 1
            if state.report.failures.count < 20 { state.report.failures.append(failure) }
        }
    }

    private func recordFailure(_ error: any Error, client index: Int) {
        let kind: String
        switch error {
        case let closed as NIOHTTP2Errors.StreamClosed: kind = "reset \(closed.errorCode)"
        case is HTTP2LoadConnection.ClosedBeforeResponse: kind = "closed before response"
        case is HTTP2LoadConnection.TimedOut: kind = "timeout"
        case is HTTP2LoadConnection.NoStream: kind = "no stream"
        default: kind = "other"
        }
        recordFailure(kind, "\(error)", client: index)
    }

    // MARK: - Client

    private func runClient(_ index: Int, gap: Duration, offset: Duration) {
        let loop = group.next()
        var connection: HTTP2LoadConnection?
        var opened: [HTTP2LoadConnection] = []
        var leftAfterGoAway = false
        defer {
            for connection in opened { connection.close() }
            change { $0.running -= 1 }
        }
        guard pause(offset, exactly: true) else { return }
        while !shouldStop {
            let current: HTTP2LoadConnection
            if let connection {
                current = connection
            } else {
                do {
                    current = try HTTP2LoadConnection.connect(host: host, port: port, on: loop) { [self] in
                        record({ $0.goAways += 1 }, client: index)
                    }.wait()
                } catch {
                    recordFailure("connect", "\(error)", client: index)
                    if !pause(gap) { break }
                    continue
                }
                connection = current
                opened.append(current)
                let moved = leftAfterGoAway
                leftAfterGoAway = false
                record({ $0.connections += 1; $0.movesAfterGoAway += moved ? 1 : 0 }, client: index)
            }
            let outcome: HTTP2LoadConnection.Outcome
            do {
                outcome = try current.get(path, timeout: requestTimeout).wait()
            } catch {
                recordFailure(error, client: index)
                current.close()
                connection = nil
                if !pause(gap) { break }
                continue
            }
            switch outcome {
            case .goAway:
                // Not sent: the same request goes out on a new connection, at once.
                leftAfterGoAway = true
                connection = nil
                continue
            case .closed:
                record({ $0.closedWithoutGoAway += 1 }, client: index)
                connection = nil
                continue
            case .response(let status, let body):
                guard status == 200 else {
                    recordFailure("bad status", "status \(status): \(body.prefix(100))", client: index)
                    break
                }
                let generation = body.split(whereSeparator: { $0 == " " || $0 == "\n" })
                    .first { $0.hasPrefix("gen=") }.map { String($0.dropFirst(4)) } ?? "?"
                let late = current.hasReceivedGoAway
                change { state in
                    state.report.served += 1
                    state.report.clients[index].answeredAfterGoAway += late ? 1 : 0
                    state.report.perGeneration[generation, default: 0] += 1
                    state.report.clients[index].served += 1
                    if state.report.clients[index].lastGeneration != generation {
                        state.report.clients[index].lastGeneration = generation
                        state.report.clients[index].servedByLastGeneration = 0
                    }
                    state.report.clients[index].servedByLastGeneration += 1
                }
            }
            if !pause(gap) { break }
        }
    }
}

struct HTTP2LoadError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// One h2c connection of an `HTTP2LoadGenerator` client.
final class HTTP2LoadConnection: Sendable {
    struct TimedOut: Error, CustomStringConvertible {
        var description: String { "no response within the request timeout" }
    }

    struct ClosedBeforeResponse: Error, CustomStringConvertible {
        var description: String { "the stream closed before the end of the response" }
    }

    struct NoStream: Error, CustomStringConvertible {
        var underlying: any Error
        var description: String { "no stream: \(underlying)" }
    }

    /// What became of a request.
    enum Outcome: Sendable {
        /// Not sent: the connection had received a GOAWAY.
        case goAway
        /// Not sent: the connection was closed, without a GOAWAY before.
        case closed
        case response(status: Int, body: String)
    }

    let channel: any Channel
    private let multiplexer: NIOHTTP2Handler.StreamMultiplexer
    private let goAwayReceived: GoAwayFlag

    private init(channel: any Channel, multiplexer: NIOHTTP2Handler.StreamMultiplexer, goAwayReceived: GoAwayFlag) {
        self.channel = channel
        self.multiplexer = multiplexer
        self.goAwayReceived = goAwayReceived
    }

    /// Connects with prior knowledge; `onGoAway` runs on every GOAWAY frame received.
    static func connect(
        host: String, port: Int, on loop: any EventLoop, onGoAway: @escaping @Sendable () -> Void
    ) -> EventLoopFuture<HTTP2LoadConnection> {
        let flag = GoAwayFlag()
        return ClientBootstrap(group: loop)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                        mode: .client, connectionConfiguration: .init(), streamConfiguration: .init()
                    ) { $0.eventLoop.makeSucceededVoidFuture() }
                    try channel.pipeline.syncOperations.addHandler(GoAwayRecorder(flag: flag, onGoAway: onGoAway))
                }
            }
            .connect(host: host, port: port)
            .flatMapThrowing { channel in
                let multiplexer = try channel.pipeline.syncOperations.handler(type: NIOHTTP2Handler.self)
                    .syncMultiplexer()
                return HTTP2LoadConnection(channel: channel, multiplexer: multiplexer, goAwayReceived: flag)
            }
    }

    var hasReceivedGoAway: Bool { goAwayReceived.isSet }

    func close() {
        channel.close(promise: nil)
    }

    /// GET `path` on a new stream, unless the connection has received a GOAWAY or is closed.
    func get(_ path: String, timeout: TimeAmount) -> EventLoopFuture<Outcome> {
        let loop = channel.eventLoop
        let (channel, multiplexer, goAwayReceived) = (self.channel, self.multiplexer, self.goAwayReceived)
        return loop.flatSubmit {
            if goAwayReceived.isSet { return loop.makeSucceededFuture(.goAway) }
            guard channel.isActive else { return loop.makeSucceededFuture(.closed) }
            let response = loop.makePromise(of: Outcome.self)
            let timer = loop.scheduleTask(in: timeout) { response.fail(TimedOut()) }
            response.futureResult.whenComplete { _ in timer.cancel() }
            multiplexer.createStreamChannel { stream in
                stream.eventLoop.makeCompletedFuture {
                    try stream.pipeline.syncOperations.addHandlers(
                        HTTP2FramePayloadToHTTP1ClientCodec(httpProtocol: .http), ResponseCollector(promise: response))
                }
            }.whenComplete { result in
                switch result {
                case .failure(let error):
                    response.fail(NoStream(underlying: error))
                case .success(let stream):
                    // The stream gets its id, and the server hears of it, with this first write:
                    // a GOAWAY read since the check above ends the request here, unsent.
                    if goAwayReceived.isSet {
                        response.succeed(.goAway)
                        stream.close(promise: nil)
                        return
                    }
                    let head = HTTPRequestHead(
                        version: .http1_1, method: .GET, uri: path, headers: ["host": "127.0.0.1"])
                    stream.write(HTTPClientRequestPart.head(head), promise: nil)
                    stream.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
                }
            }
            return response.futureResult
        }
    }

    final class GoAwayFlag: Sendable {
        private let value = Atomic(false)
        var isSet: Bool { value.load(ordering: .acquiring) }
        func set() { value.store(true, ordering: .releasing) }
    }

    /// After `NIOHTTP2Handler` on the connection: notes every GOAWAY.
    final class GoAwayRecorder: ChannelInboundHandler {
        typealias InboundIn = HTTP2Frame
        typealias InboundOut = HTTP2Frame

        let flag: GoAwayFlag
        let onGoAway: @Sendable () -> Void

        init(flag: GoAwayFlag, onGoAway: @escaping @Sendable () -> Void) {
            self.flag = flag
            self.onGoAway = onGoAway
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            if case .goAway = unwrapInboundIn(data).payload {
                flag.set()
                onGoAway()
            }
            context.fireChannelRead(data)
        }
    }

    /// Collects one response on a stream.
    final class ResponseCollector: ChannelInboundHandler {
        typealias InboundIn = HTTPClientResponsePart

        let promise: EventLoopPromise<Outcome>
        var status = 0
        var body = ""

        init(promise: EventLoopPromise<Outcome>) {
            self.promise = promise
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): status = Int(head.status.code)
            case .body(let buffer): body += String(buffer: buffer)
            case .end: promise.succeed(.response(status: status, body: body))
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            promise.fail(error)
        }

        func channelInactive(context: ChannelHandlerContext) {
            promise.fail(ClosedBeforeResponse())
            context.fireChannelInactive()
        }
    }
}
