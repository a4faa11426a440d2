import NIOCore
import NIOHTTP2

/// The graceful drain of one HTTP/2 connection, placed right after `NIOHTTP2Handler` on the
/// connection's channel (not on a stream's), with `streamDelegate` given to that handler (it
/// tells of streams opening and closing).
///
/// A single GOAWAY races with requests already on the wire: streams the client opened after the
/// server chose the last stream id are refused. So once `HTTPDrainEvent` arrives:
/// 1. GOAWAY with last-stream-id 2^31-1 (NO_ERROR), then a PING: the client stops opening
///    streams once it reads the GOAWAY, and everything it sent before that precedes its answer
///    to the PING;
/// 2. on the PING's answer, or after `pingTimeout` for a client that does not answer, the final
///    GOAWAY with the highest stream id the client opened: every stream up to it is served;
/// 3. once no stream is open after that, the connection half-closes and waits up to `linger` for
///    the client's close (closing at once could turn the last response into a reset);
/// 4. at the deadline everything is closed.
///
/// The first GOAWAY goes straight to the socket, past `NIOHTTP2Handler`: its state machine takes
/// any GOAWAY for the final one and, with no stream open at that moment, would refuse every
/// stream that follows, the very requests that the 2^31-1 is there to let in.
public final class HTTP2DrainHandler: ChannelInboundHandler {
    public typealias InboundIn = HTTP2Frame
    public typealias InboundOut = HTTP2Frame
    public typealias OutboundOut = HTTP2Frame

    private enum Phase {
        case serving
        /// The first GOAWAY and the PING are out; new streams are still welcome.
        case announced
        /// The final GOAWAY is out: the connection ends with its last stream.
        case final
        /// The output is closed; waiting for the client's close.
        case closing
    }

    private let eventLoop: any EventLoop
    private let pingTimeout: TimeAmount
    private let linger: TimeAmount
    private let pingData = HTTP2PingData(withInteger: .random(in: .min ... .max))
    private var phase = Phase.serving
    private var openStreams: Set<HTTP2StreamID> = []
    private var lastStreamID = HTTP2StreamID.rootStream
    private var pingTimer: Scheduled<Void>?
    private var deadlineTimer: Scheduled<Void>?
    private var lingerTimer: Scheduled<Void>?
    private var context: ChannelHandlerContext?

    /// - Parameters:
    ///   - eventLoop: the connection's.
    ///   - pingTimeout: how long to wait for the answer to the first GOAWAY's PING before sending
    ///     the final GOAWAY anyway.
    ///   - linger: how long the half-closed connection waits for the client's close.
    public init(eventLoop: any EventLoop, pingTimeout: TimeAmount = .seconds(1), linger: TimeAmount = .seconds(2)) {
        self.eventLoop = eventLoop
        self.pingTimeout = pingTimeout
        self.linger = linger
    }

    /// For `NIOHTTP2Handler`'s `streamDelegate`: the inline multiplexer reports streams to it
    /// rather than down the pipeline.
    public var streamDelegate: StreamDelegate { StreamDelegate(handler: self) }

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .ping(let data, ack: true) = unwrapInboundIn(data).payload, data == pingData, phase == .announced {
            sendFinalGoAway(context: context)
        }
        context.fireChannelRead(data)
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let drain = event as? HTTPDrainEvent { startDrain(drain, context: context) }
        context.fireUserInboundEventTriggered(event)
    }

    private func streamCreated(_ id: HTTP2StreamID) {
        openStreams.insert(id)
        // Only the client opens streams here (no server push).
        lastStreamID = max(lastStreamID, id)
    }

    private func streamClosed(_ id: HTTP2StreamID) {
        openStreams.remove(id)
        if phase == .final && openStreams.isEmpty, let context { closeAfterThisTick(context: context) }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        pingTimer?.cancel()
        deadlineTimer?.cancel()
        lingerTimer?.cancel()
        context.fireChannelInactive()
    }

    private func startDrain(_ drain: HTTPDrainEvent, context: ChannelHandlerContext) {
        guard phase == .serving else { return }
        phase = .announced
        let loop = context.eventLoop.assumeIsolated()
        if let deadline = drain.deadline {
            deadlineTimer = loop.scheduleTask(deadline: deadline) { [context] in context.close(promise: nil) }
        }
        writeAnnouncingGoAway(context: context)
        context.write(wrapOutboundOut(HTTP2Frame(streamID: .rootStream, payload: .ping(pingData, ack: false))), promise: nil)
        context.flush()
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        pingTimer = loop.scheduleTask(in: pingTimeout) { [context] in
            if handler.value.phase == .announced { handler.value.sendFinalGoAway(context: context) }
        }
    }

    /// Writes GOAWAY(2^31-1, NO_ERROR) from `NIOHTTP2Handler`'s place in the pipeline, so that
    /// it reaches the socket without passing through the handler (see the type's comment). A
    /// frame on stream 0 carries no state of the connection's encoder, so it may go between any
    /// two frames.
    private func writeAnnouncingGoAway(context: ChannelHandlerContext) {
        guard let http2 = try? context.pipeline.syncOperations.context(handlerType: NIOHTTP2Handler.self) else {
            return
        }
        var frame = context.channel.allocator.buffer(capacity: 17)
        frame.writeInteger(UInt8(0))  // payload length, 24 bits: 8
        frame.writeInteger(UInt16(8))
        frame.writeInteger(UInt8(0x7))  // type: GOAWAY
        frame.writeInteger(UInt8(0))  // flags
        frame.writeInteger(UInt32(0))  // stream 0
        frame.writeInteger(UInt32(Int32.max))  // last stream id
        frame.writeInteger(UInt32(0))  // NO_ERROR
        http2.write(NIOAny(frame), promise: nil)
    }

    private func sendFinalGoAway(context: ChannelHandlerContext) {
        pingTimer?.cancel()
        pingTimer = nil
        phase = .final
        let goAway = HTTP2Frame(
            streamID: .rootStream, payload: .goAway(lastStreamID: lastStreamID, errorCode: .noError, opaqueData: nil))
        context.writeAndFlush(wrapOutboundOut(goAway), promise: nil)
        if openStreams.isEmpty { closeAfterThisTick(context: context) }
    }

    /// The last stream closes when its final frame is written, before that frame is flushed: the
    /// close waits a tick so that the flush goes first.
    private func closeAfterThisTick(context: ChannelHandlerContext) {
        guard phase == .final else { return }
        phase = .closing
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.assumeIsolated().execute { [context] in
            context.flush()
            context.close(mode: .output, promise: nil)
            handler.value.lingerTimer = context.eventLoop.assumeIsolated().scheduleTask(in: handler.value.linger) {
                context.close(promise: nil)
            }
        }
    }
}

extension HTTP2DrainHandler {
    /// Passes `NIOHTTP2Handler`'s stream reports to the drain handler of the same connection.
    public struct StreamDelegate: NIOHTTP2StreamDelegate {
        private let handler: NIOLoopBound<HTTP2DrainHandler>
        private let eventLoop: any EventLoop

        init(handler: HTTP2DrainHandler) {
            self.handler = NIOLoopBound(handler, eventLoop: handler.eventLoop)
            self.eventLoop = handler.eventLoop
        }

        // At once, not a tick later: a stream created in the same read as the PING's answer must
        // count in the final GOAWAY.
        public func streamCreated(_ id: HTTP2StreamID, channel: any Channel) {
            onLoop { $0.streamCreated(id) }
        }

        public func streamClosed(_ id: HTTP2StreamID, channel: any Channel) {
            onLoop { $0.streamClosed(id) }
        }

        private func onLoop(_ body: @escaping @Sendable (HTTP2DrainHandler) -> Void) {
            let handler = self.handler
            if eventLoop.inEventLoop {
                body(handler.value)
            } else {
                eventLoop.execute { body(handler.value) }
            }
        }
    }
}
