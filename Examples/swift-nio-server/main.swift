// A SwiftNIO HTTP server (HTTP/1.1, and h2c with prior knowledge) with zero-downtime reloads under
// baton, through the BatonWorker library: the same binary runs under `swift run` (it binds
// 127.0.0.1:8080 itself, or the address given as its first argument) and under baton (it adopts
// the listener it is handed):
//
//   swift run swift-nio-server
//   baton run --listen http=tcp://127.0.0.1:8080 -- .build/debug/swift-nio-server
//   curl --http2-prior-knowledge http://127.0.0.1:8080/
//
// On reload baton's drain request becomes the graceful shutdown of a swift-service-lifecycle
// ServiceGroup; the server stops accepting and closes keep-alive connections (GOAWAY on HTTP/2)
// without racing their clients (see BatonHTTPServer). The handler below is written for HTTP/1.1
// and answers HTTP/2 streams unchanged.
import BatonWorker
import BatonWorkerLifecycle
import BatonWorkerNIO
import Glibc
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle

/// Answers every request with one line naming the worker.
final class Hello: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let text: String

    init(generation: Int?) {
        text = "hello from swift-nio worker gen=\(generation.map(String.init) ?? "-") pid=\(getpid())\n"
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let request) = unwrapInboundIn(data) else { return }
        var head = HTTPResponseHead(version: request.version, status: .ok)
        head.headers.add(name: "content-type", value: "text/plain")
        head.headers.add(name: "content-length", value: String(text.utf8.count))
        if !request.isKeepAlive { head.headers.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}

/// The HTTP server as a service: the group's graceful shutdown drains it.
struct HTTPService: Service {
    let server: BatonHTTPServer

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await server.run()
        } onGracefulShutdown: {
            server.drain()
        }
    }
}

/// One line to stdout at once (stdout is a pipe under baton: print would buffer it).
func say(_ line: String) {
    var text = line + "\n"
    text.withUTF8 { _ = write(1, $0.baseAddress, $0.count) }
}

let address = CommandLine.arguments.dropFirst().first ?? "tcp://127.0.0.1:8080"
let worker = try BatonWorker.start(standalone: [("http", address)])
let logger = Logger(label: "swift-nio-server")
let generation = worker.generation
let server = BatonHTTPServer(worker: worker, listeners: worker.listeners(named: "http")) { channel in
    channel.eventLoop.makeCompletedFuture {
        try channel.pipeline.syncOperations.addHandler(Hello(generation: generation))
    }
}
worker.onDrain { request in say("\(request): stopped accepting, \(server.connectionCount) connections open") }
for listener in worker.listeners {
    say("listening \(listener) (\(worker.handoff))")
}
let group = ServiceGroup(
    configuration: ServiceGroupConfiguration(
        services: [.init(service: HTTPService(server: server)), .batonDrain(worker)],
        // BatonWorker traps SIGTERM and SIGINT; a signal is trapped in one place only.
        gracefulShutdownSignals: [],
        logger: logger))
try await group.run()
say("drained")
