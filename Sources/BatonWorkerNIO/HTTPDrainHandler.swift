import NIOCore
import NIOHTTP1

/// Sent down a connection's pipeline when the server drains: from `started`, answer the next
/// request with `Connection: close`, close once idle past the grace, close at `deadline` anyway.
public struct HTTPDrainEvent: Sendable {
    public var started: NIODeadline
    public var deadline: NIODeadline?

    public init(started: NIODeadline = .now(), deadline: NIODeadline?) {
        self.started = started
        self.deadline = deadline
    }
}

/// The keep-alive-aware drain of one HTTP/1.1 connection, placed after NIO's HTTP server
/// pipeline handlers (`configureHTTPServerPipeline`) and before the application's.
///
/// Closing idle keep-alive connections at once, as `ServerQuiescingHelper` and most servers do,
/// races with a request already on the wire: the client sees a reset. So once `HTTPDrainEvent`
/// arrives:
/// - a request in flight is answered normally, but its response says `Connection: close`, and
///   so does the response to the next request on an idle connection;
/// - after such a response the connection half-closes (`shutdown(SHUT_WR)` of this connection's
///   own socket) and waits up to `linger` for the client's close, so that nothing it sent
///   meanwhile turns the response into a reset;
/// - a connection with no request in flight is closed only once it has been idle for
///   `idleGrace` (counted from the drain's start or its last activity, whichever is later):
///   choose it longer than your clients' pause between requests;
/// - at the deadline everything is closed.
///
/// A response that the application marks `Connection: close` itself closes the same way, drain
/// or not.
public final class HTTPDrainHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = HTTPServerRequestPart
    public typealias InboundOut = HTTPServerRequestPart
    public typealias OutboundIn = HTTPServerResponsePart
    public typealias OutboundOut = HTTPServerResponsePart

    private let idleGrace: TimeAmount
    private let linger: TimeAmount
    /// Requests whose head arrived and whose response has not ended.
    private var requestsOpen = 0
    private var lastActivity = NIODeadline.now()
    private var drain: HTTPDrainEvent?
    /// The response being written said `Connection: close`.
    private var closeAfterResponse = false
    /// The final response went out: the output is closed, reads are discarded.
    private var closing = false
    private var idleTimer: Scheduled<Void>?
    private var deadlineTimer: Scheduled<Void>?

    public init(idleGrace: TimeAmount = .seconds(2), linger: TimeAmount = .seconds(2)) {
        self.idleGrace = idleGrace
        self.linger = linger
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        lastActivity = context.eventLoop.now
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if closing { return }  // after the final response: nothing more is answered
        if case .head = unwrapInboundIn(data) {
            requestsOpen += 1
            idleTimer?.cancel()
            idleTimer = nil
        }
        lastActivity = context.eventLoop.now
        context.fireChannelRead(data)
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let event = event as? HTTPDrainEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        guard drain == nil else { return }
        drain = event
        if let deadline = event.deadline {
            deadlineTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [context] in
                context.close(promise: nil)
            }
        }
        armIdleTimer(context: context)
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var head):
            if drain != nil || closing {
                head.headers.replaceOrAdd(name: "connection", value: "close")
            }
            closeAfterResponse = !head.isKeepAlive || drain != nil
            context.write(wrapOutboundOut(.head(head)), promise: promise)
        case .body:
            context.write(data, promise: promise)
        case .end:
            requestsOpen = max(0, requestsOpen - 1)
            lastActivity = context.eventLoop.now
            guard closeAfterResponse, !closing else {
                context.write(data, promise: promise)
                armIdleTimer(context: context)
                return
            }
            closing = true
            idleTimer?.cancel()
            let written = promise ?? context.eventLoop.makePromise()
            context.write(data, promise: written)
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            written.futureResult.whenComplete { _ in
                let (handler, context) = bound.value
                handler.halfClose(context: context)
            }
        }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        deadlineTimer?.cancel()
        context.fireChannelInactive()
    }

    /// Sends FIN and waits up to `linger` for the client's close (NIO closes the channel on its
    /// EOF), then closes.
    private func halfClose(context: ChannelHandlerContext) {
        context.close(mode: .output, promise: nil)
        idleTimer = context.eventLoop.assumeIsolated().scheduleTask(in: linger) { [context] in
            context.close(promise: nil)
        }
    }

    /// While draining with no request in flight: close once idle for `idleGrace`.
    private func armIdleTimer(context: ChannelHandlerContext) {
        guard let drain, requestsOpen == 0, !closing else { return }
        idleTimer?.cancel()
        let since = max(lastActivity, drain.started)
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        idleTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: since + idleGrace) { [context] in
            if handler.value.requestsOpen == 0 { context.close(promise: nil) }
        }
    }
}
