import BatonWorker
import Dispatch
import Glibc
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// An HTTP server on a worker's listeners with baton's drain: it adopts each listener (with its
/// backlog), says `READY=1`, serves, and on the drain request stops accepting and drains every
/// connection without failing a request the client already sent, then returns.
///
/// Each connection speaks HTTP/1.1 or cleartext HTTP/2 with prior knowledge (h2c: the client
/// opens with HTTP/2's connection preface), told apart by its first bytes. The drain is
/// `HTTPDrainHandler`'s on HTTP/1.1 (`Connection: close` on the next response, idle connections
/// closed after a grace) and `HTTP2DrainHandler`'s on HTTP/2 (GOAWAY with 2^31-1 and a PING,
/// then the final GOAWAY, open streams finish). HTTP/2 over TLS and `Upgrade: h2c` are not
/// offered.
///
/// ```swift
/// let worker = try BatonWorker.start(standalone: [("http", "tcp://127.0.0.1:8080")])
/// let server = BatonHTTPServer(worker: worker, listeners: worker.listeners(named: "http")) { channel in
///     channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Hello()) }
/// }
/// try await server.run()
/// ```
///
/// The application's handlers read `HTTPServerRequestPart` and write `HTTPServerResponsePart`,
/// on an HTTP/1.1 connection and on each HTTP/2 stream alike: one written for HTTP/1.1 serves
/// HTTP/2 unchanged (connection-specific headers such as `Connection` are dropped from its
/// HTTP/2 responses).
public struct BatonHTTPServer: Sendable {
    public struct Configuration: Sendable {
        /// How long a connection with no request in flight stays open once the drain began:
        /// longer than clients pause between requests, so that none of them races a close.
        public var idleGrace: TimeAmount = .seconds(2)
        /// How long a connection waits for the client's close after its final response.
        public var linger: TimeAmount = .seconds(2)
        /// How long an HTTP/2 client may take to answer the PING sent with the first GOAWAY
        /// before the final GOAWAY goes out anyway: its answer proves that every stream it opened
        /// before it saw the GOAWAY has arrived.
        public var http2PingTimeout: TimeAmount = .seconds(1)
        /// The drain's limit when the request names none (outside baton).
        public var defaultDrainTimeout: Duration = .seconds(30)
        /// Say `READY=1` once every listener is adopted.
        public var notifyReady = true

        public init() {}
    }

    private let worker: BatonWorker
    private let listeners: [BatonListener]
    private let group: any EventLoopGroup
    private let configuration: Configuration
    private let initializer: @Sendable (any Channel) -> EventLoopFuture<Void>
    private let trigger = DrainTrigger()
    private let tracker = ConnectionTracker()

    /// - Parameters:
    ///   - listeners: the stream listeners to serve (default: all of the worker's).
    ///   - childChannelInitializer: adds the application's handlers to an HTTP/1.1 connection's
    ///     pipeline (after NIO's HTTP/1.1 handlers and the drain handler) or to an HTTP/2 stream's
    ///     (after `HTTP2FramePayloadToHTTP1ServerCodec`). It runs once the connection's first
    ///     bytes told its protocol.
    public init(
        worker: BatonWorker, listeners: [BatonListener]? = nil,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        configuration: Configuration = .init(),
        childChannelInitializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
    ) {
        self.worker = worker
        self.listeners = (listeners ?? worker.listeners).filter(\.isStream)
        self.group = group
        self.configuration = configuration
        self.initializer = childChannelInitializer
    }

    /// Open connections right now.
    public var connectionCount: Int { tracker.count }

    /// Starts the drain from outside (e.g. a service group's graceful shutdown), as the worker's
    /// drain request would.
    public func drain(_ request: BatonDrainRequest = BatonDrainRequest(source: .program, timeout: nil)) {
        trigger.fire(request)
    }

    /// Serves until the drain request (the worker's, or `drain(_:)`), then stops accepting,
    /// drains and returns once every connection closed or the deadline passed.
    ///
    /// The listeners are not adopted as NIO server channels (see `ListenerAcceptor`): the server
    /// accepts on each itself and adopts every connection with `ClientBootstrap.withConnectedSocket`,
    /// so it never calls `listen()` again and the configured backlog stays as the master set it.
    public func run() async throws {
        let tracker = self.tracker
        let configuration = self.configuration
        let initializer = self.initializer
        let trigger = self.trigger
        let group = self.group
        worker.onDrain { trigger.fire($0) }
        let queue = DispatchQueue(label: "baton-http-accept")
        let acceptors = listeners.map { listener in
            ListenerAcceptor(
                listener: listener, queue: queue,
                onAccept: { fd in
                    tracker.reserve()
                    ClientBootstrap(group: group)
                        .channelInitializer { channel in
                            channel.eventLoop.makeCompletedFuture {
                                try Self.configureConnection(
                                    channel, configuration: configuration, initializer: initializer)
                            }
                        }
                        .withConnectedSocket(fd)
                        .whenComplete { result in
                            switch result {
                            case .success(let channel): tracker.add(channel)
                            case .failure: tracker.abandon()
                            }
                        }
                },
                onError: { message in
                    var line = "BatonHTTPServer: \(message)\n"
                    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
                })
        }
        for acceptor in acceptors { acceptor.start() }
        if configuration.notifyReady { worker.ready() }

        let request = await trigger.wait()
        worker.stopping()
        // Stop accepting: close this process's copy of each listener.
        queue.sync { for acceptor in acceptors { acceptor.stop() } }
        let timeout = request.timeout ?? configuration.defaultDrainTimeout
        let remaining = (request.receivedAt + timeout) - .now
        let deadline = NIODeadline.now() + .nanoseconds(Int64(max(remaining, .zero) / .nanoseconds(1)))
        tracker.drain(HTTPDrainEvent(deadline: deadline))
        await tracker.waitUntilDrained()
    }
}

/// A one-shot: the first drain request wakes whoever waits.
final class DrainTrigger: Sendable {
    private struct State {
        var request: BatonDrainRequest?
        var waiters: [CheckedContinuation<BatonDrainRequest, Never>] = []
    }

    private let state = Mutex(State())

    func fire(_ request: BatonDrainRequest) {
        let waiters: [CheckedContinuation<BatonDrainRequest, Never>] = state.withLock { state in
            guard state.request == nil else { return [] }
            state.request = request
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: request) }
    }

    func wait() async -> BatonDrainRequest {
        await withCheckedContinuation { continuation in
            let current: BatonDrainRequest? = state.withLock { state in
                if let request = state.request { return request }
                state.waiters.append(continuation)
                return nil
            }
            if let current { continuation.resume(returning: current) }
        }
    }
}
