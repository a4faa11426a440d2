import BatonTestSupport
import BatonWorker
import BatonWorkerNIO
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import Testing

/// `BatonHTTPServer` on a real loopback listener, spoken to over h2c with NIO's HTTP/2 client
/// and over HTTP/1.1 on the same port, through the drain.
@Suite struct HTTP2DrainTests {
    struct TimedOut: Error, CustomStringConvertible {
        var what: String
        var description: String { "timed out waiting for \(what)" }
    }

    struct StreamClosedFirst: Error {}

    struct Response: Sendable, Equatable {
        var status: Int
        var body: String
    }

    static let loop = MultiThreadedEventLoopGroup.singleton.any()

    /// The server's application: answers "ok <uri> <version>", and holds the answer to
    /// `/hold` until `release` completes.
    final class App: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        let holdArrived: EventLoopPromise<Void>
        let release: EventLoopFuture<Void>

        init(holdArrived: EventLoopPromise<Void>, release: EventLoopFuture<Void>) {
            self.holdArrived = holdArrived
            self.release = release
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .head(let request) = unwrapInboundIn(data) else { return }
            let text = "ok \(request.uri) \(request.version)"
            guard request.uri == "/hold" else {
                respond(text, context: context)
                return
            }
            holdArrived.succeed()
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            release.hop(to: context.eventLoop).whenSuccess { _ in
                let (app, context) = bound.value
                app.respond(text, context: context)
            }
        }

        private func respond(_ text: String, context: ChannelHandlerContext) {
            var head = HTTPResponseHead(version: .http1_1, status: .ok)
            head.headers.add(name: "content-length", value: String(text.utf8.count))
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }

    /// A server on 127.0.0.1, port 0, running until drained.
    struct Server {
        let worker: BatonWorker
        let server: BatonHTTPServer
        let port: Int
        let holdArrived = loop.makePromise(of: Void.self)
        let release = loop.makePromise(of: Void.self)
        /// Completes when `run()` returns.
        let finished = loop.makePromise(of: Void.self)

        init() throws {
            worker = try BatonWorker.start(standalone: [("http", "tcp://127.0.0.1:0")], drainSignals: [])
            let address = try #require(worker.listeners.first?.address)
            port = try #require(Int(address.split(separator: ":").last ?? ""))
            var configuration = BatonHTTPServer.Configuration()
            configuration.notifyReady = false
            // The HTTP/1.1 request after the drain must not race the idle close.
            configuration.idleGrace = .seconds(60)
            let (holdArrived, release) = (self.holdArrived, self.release.futureResult)
            server = BatonHTTPServer(worker: worker, configuration: configuration) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(App(holdArrived: holdArrived, release: release))
                }
            }
            let (server, finished) = (server, finished)
            Task {
                do {
                    try await server.run()
                    finished.succeed()
                } catch {
                    finished.fail(error)
                }
            }
        }

        /// Ends whatever a failed test left behind: the held response, the drain.
        func cleanUp() {
            release.succeed()
            holdArrived.succeed()
            server.drain(BatonDrainRequest(source: .program, timeout: .seconds(1)))
        }
    }

    /// Reports the last-stream-id of every GOAWAY the client receives.
    final class GoAwayRecorder: ChannelInboundHandler {
        typealias InboundIn = HTTP2Frame
        typealias InboundOut = HTTP2Frame

        let goAways: AsyncStream<HTTP2StreamID>.Continuation

        init(goAways: AsyncStream<HTTP2StreamID>.Continuation) {
            self.goAways = goAways
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            if case .goAway(let lastStreamID, _, _) = unwrapInboundIn(data).payload {
                goAways.yield(lastStreamID)
            }
            context.fireChannelRead(data)
        }

        func channelInactive(context: ChannelHandlerContext) {
            goAways.finish()
            context.fireChannelInactive()
        }
    }

    /// Sits before the client's `NIOHTTP2Handler` and runs `onFirstGoAway` when the bytes of the
    /// first GOAWAY come in, before the client's HTTP/2 stack reads them: what it sends then is
    /// what a client sends while the GOAWAY is still on the wire, ahead of its PING answer.
    final class GoAwaySpotter: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias InboundOut = ByteBuffer

        var onFirstGoAway: (() -> Void)?
        private var header: [UInt8] = []
        private var payloadLeft = 0

        init(onFirstGoAway: @escaping () -> Void) {
            self.onFirstGoAway = onFirstGoAway
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            while bytes.readableBytes > 0 {
                if payloadLeft > 0 {
                    let skipped = min(payloadLeft, bytes.readableBytes)
                    bytes.moveReaderIndex(forwardBy: skipped)
                    payloadLeft -= skipped
                    continue
                }
                header.append(bytes.readInteger(as: UInt8.self)!)
                guard header.count == 9 else { continue }
                payloadLeft = Int(header[0]) << 16 | Int(header[1]) << 8 | Int(header[2])
                
                if header[3] == 0x7 {
                    onFirstGoAway?()
                    onFirstGoAway = nil
                }
                header.removeAll()
            }
            context.fireChannelRead(data)
        }
    }

    /// Collects one response on an HTTP/2 stream.
    final class ResponseCollector: ChannelInboundHandler {
        typealias InboundIn = HTTPClientResponsePart

        let promise: EventLoopPromise<Response>
        var response = Response(status: 0, body: "")

        init(promise: EventLoopPromise<Response>) {
            self.promise = promise
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): response.status = Int(head.status.code)
            case .body(let buffer): response.body += String(buffer: buffer)
            case .end: promise.succeed(response)
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            promise.fail(error)
        }

        func channelInactive(context: ChannelHandlerContext) {
            promise.fail(StreamClosedFirst())
            context.fireChannelInactive()
        }
    }

    /// An h2c connection (prior knowledge) from NIO's HTTP/2 client.
    struct Client {
        let channel: any Channel
        let multiplexer: NIOHTTP2Handler.StreamMultiplexer
        let goAways: AsyncStream<HTTP2StreamID>

        /// `lateRequest`: a GET sent the moment the first GOAWAY is read, its response into the
        /// promise.
        static func connect(port: Int, lateRequest: (path: String, response: EventLoopPromise<Response>)? = nil)
            async throws -> Client
        {
            let (goAways, continuation) = AsyncStream.makeStream(of: HTTP2StreamID.self)
            let (channel, multiplexer) = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let multiplexer = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                            mode: .client, connectionConfiguration: .init(), streamConfiguration: .init()
                        ) { $0.eventLoop.makeSucceededVoidFuture() }
                        if let late = lateRequest {
                            let opened = Client.openStream(on: multiplexer)
                            let spotter = GoAwaySpotter {
                                // Opened long before (the test makes a request first): runs now.
                                opened.whenSuccess { stream, response in
                                    Client.send(late.path, on: stream)
                                    response.cascade(to: late.response)
                                }
                            }
                            try channel.pipeline.syncOperations.addHandler(spotter, position: .first)
                        }
                        try channel.pipeline.syncOperations.addHandler(GoAwayRecorder(goAways: continuation))
                        return (channel, multiplexer)
                    }
                }
            return Client(channel: channel, multiplexer: multiplexer, goAways: goAways)
        }

        /// A stream ready for a request, and its response to come. NIO gives a stream its id
        /// and sends anything only with its first write.
        static func openStream(on multiplexer: NIOHTTP2Handler.StreamMultiplexer)
            -> EventLoopFuture<(stream: any Channel, response: EventLoopFuture<Response>)>
        {
            let promise = loop.makePromise(of: Response.self)
            return multiplexer.createStreamChannel { stream in
                stream.eventLoop.makeCompletedFuture {
                    try stream.pipeline.syncOperations.addHandlers(
                        HTTP2FramePayloadToHTTP1ClientCodec(httpProtocol: .http), ResponseCollector(promise: promise))
                }
            }.map { ($0, promise.futureResult) }
        }

        static func send(_ path: String, on stream: any Channel) {
            let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: ["host": "127.0.0.1"])
            stream.write(HTTPClientRequestPart.head(head), promise: nil)
            stream.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        }

        static func get(_ path: String, on multiplexer: NIOHTTP2Handler.StreamMultiplexer) -> EventLoopFuture<Response> {
            openStream(on: multiplexer).flatMap { stream, response in
                send(path, on: stream)
                return response
            }
        }

        func get(_ path: String) -> EventLoopFuture<Response> {
            Self.get(path, on: multiplexer)
        }
    }

    /// Awaits `future`, failing after `limit` (a deadline, not a synchronisation).
    static func await<T: Sendable>(
        _ future: EventLoopFuture<T>, _ what: String, within limit: TimeAmount = .seconds(20)
    ) async throws -> T {
        let bounded = loop.makePromise(of: T.self)
        future.cascade(to: bounded)
        let timer = loop.scheduleTask(in: limit) { bounded.fail(TimedOut(what: what)) }
        defer { timer.cancel() }
        return try await bounded.futureResult.get()
    }

    @Test func aStreamInFlightAtTheDrainFinishesBetweenTheTwoGoAwaysAndTheServerThenCloses() async throws {
        let server = try Server()
        defer { server.cleanUp() }
        let client = try await Client.connect(port: server.port)
        defer { client.channel.close(promise: nil) }
        var goAways = client.goAways.makeAsyncIterator()

        #expect(try await Self.await(client.get("/"), "GET /") == Response(status: 200, body: "ok / HTTP/2.0"))
        let held = client.get("/hold")
        try await Self.await(server.holdArrived.futureResult, "the held request at the server")
        server.worker.requestDrain(timeout: .seconds(30))

        // The announcing GOAWAY, then (after the PING's answer) the one naming the held stream.
        #expect(await goAways.next() == .maxID)
        #expect(await goAways.next() == HTTP2StreamID(3))
        // The open stream keeps the connection and the server.
        #expect(client.channel.isActive)
        #expect(server.server.connectionCount == 1)

        server.release.succeed()
        #expect(try await Self.await(held, "the held response") == Response(status: 200, body: "ok /hold HTTP/2.0"))
        // Closed by the server: the client never closes it before the cleanup.
        try await Self.await(client.channel.closeFuture, "the server to close the connection")
        try await Self.await(server.finished.futureResult, "run() to return")
        #expect(server.server.connectionCount == 0)
    }

    /// The race that the first GOAWAY (2^31-1) is for: a request the client sends before it read
    /// the GOAWAY, here while no other stream is open, is served and counted in the final one.
    @Test func aRequestSentBeforeTheClientReadTheGoAwayIsServed() async throws {
        let server = try Server()
        defer { server.cleanUp() }
        let late = Self.loop.makePromise(of: Response.self)
        defer { late.fail(StreamClosedFirst()) }
        let client = try await Client.connect(port: server.port, lateRequest: ("/late", late))
        defer { client.channel.close(promise: nil) }
        var goAways = client.goAways.makeAsyncIterator()

        #expect(try await Self.await(client.get("/"), "GET /").status == 200)
        server.worker.requestDrain(timeout: .seconds(30))

        #expect(await goAways.next() == .maxID)
        #expect(await goAways.next() == HTTP2StreamID(3))
        #expect(try await Self.await(late.futureResult, "the late response") == Response(status: 200, body: "ok /late HTTP/2.0"))
        try await Self.await(client.channel.closeFuture, "the server to close the connection")
        try await Self.await(server.finished.futureResult, "run() to return")
    }

    @Test func http1AndHTTP2ShareTheListenerAndBothDrain() async throws {
        let server = try Server()
        defer { server.cleanUp() }
        let http1 = try KeepAliveConnection(port: server.port)
        defer { http1.close() }
        let client = try await Client.connect(port: server.port)
        defer { client.channel.close(promise: nil) }
        var goAways = client.goAways.makeAsyncIterator()

        let first = try http1.get("/")
        #expect(first.status == 200 && first.body == "ok / HTTP/1.1" && !first.connectionClose)
        #expect(try await Self.await(client.get("/"), "GET / over h2") == Response(status: 200, body: "ok / HTTP/2.0"))
        #expect(server.server.connectionCount == 2)

        server.worker.requestDrain(timeout: .seconds(30))
        // HTTP/2: nothing open, so the final GOAWAY ends the connection.
        #expect(await goAways.next() == .maxID)
        #expect(await goAways.next() == HTTP2StreamID(1))
        try await Self.await(client.channel.closeFuture, "the server to close the h2 connection")
        // HTTP/1.1: the next request is answered, with close.
        let last = try http1.get("/")
        #expect(last.status == 200 && last.connectionClose)
        _ = try http1.waitForServerClose()
        http1.close()  // the server lingers for this close
        try await Self.await(server.finished.futureResult, "run() to return")
    }
}
