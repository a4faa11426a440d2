import NIOCore

/// The protocol a connection speaks, as its first bytes tell.
enum HTTPConnectionProtocol: Sendable {
    case http1
    /// Cleartext HTTP/2 with prior knowledge: the client opened with the connection preface.
    case http2
}

/// The first handler of a connection that may speak HTTP/1.1 or h2c: it holds the first bytes
/// until they either start with HTTP/2's connection preface or cannot, has `configure` build the
/// pipeline for that protocol behind it, hands the bytes on and leaves.
///
/// A drain that arrives before the protocol is known is kept and passed on to the new pipeline,
/// so that its handlers drain with the same start and deadline. A connection that sends nothing
/// meanwhile is treated as an idle one: closed after `idleGrace`, or at the deadline.
final class HTTPProtocolDetector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// RFC 9113 §3.4. No HTTP/1.1 request line starts with "PRI * HTTP/2.0".
    private static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    private enum Phase {
        case detecting
        /// The protocol's handlers are being added; bytes that arrive meanwhile are held too.
        case configuring
        case done
    }

    private let idleGrace: TimeAmount
    private let configure: (HTTPConnectionProtocol, any Channel) -> EventLoopFuture<Void>
    private var phase = Phase.detecting
    private var held: ByteBuffer?
    private var drain: HTTPDrainEvent?
    private var connectedAt = NIODeadline.now()
    private var idleTimer: Scheduled<Void>?
    private var deadlineTimer: Scheduled<Void>?

    init(
        idleGrace: TimeAmount,
        configure: @escaping (HTTPConnectionProtocol, any Channel) -> EventLoopFuture<Void>
    ) {
        self.idleGrace = idleGrace
        self.configure = configure
    }

    func handlerAdded(context: ChannelHandlerContext) {
        connectedAt = context.eventLoop.now
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if held == nil {
            held = bytes
        } else {
            held!.writeBuffer(&bytes)
        }
        guard case .detecting = phase, let held, let detected = Self.detect(held) else { return }
        phase = .configuring
        cancelTimers()
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        configure(detected, context.channel).whenComplete { result in
            let (detector, context) = bound.value
            switch result {
            case .success: detector.handOver(detected, context: context)
            case .failure(let error):
                context.fireErrorCaught(error)
                context.close(promise: nil)
            }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let event = event as? HTTPDrainEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        guard drain == nil else { return }
        drain = event
        guard case .detecting = phase else { return }
        let loop = context.eventLoop.assumeIsolated()
        idleTimer = loop.scheduleTask(deadline: max(connectedAt, event.started) + idleGrace) { [context] in
            context.close(promise: nil)
        }
        if let deadline = event.deadline {
            deadlineTimer = loop.scheduleTask(deadline: deadline) { [context] in context.close(promise: nil) }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelTimers()
        context.fireChannelInactive()
    }

    /// `nil` while the bytes so far are a proper prefix of the preface.
    private static func detect(_ bytes: ByteBuffer) -> HTTPConnectionProtocol? {
        let count = min(bytes.readableBytes, preface.count)
        let start = bytes.getBytes(at: bytes.readerIndex, length: count) ?? []
        guard start.elementsEqual(preface.prefix(count)) else { return .http1 }
        return count == preface.count ? .http2 : nil
    }

    private func handOver(_ detected: HTTPConnectionProtocol, context: ChannelHandlerContext) {
        phase = .done
        let bytes = held
        held = nil
        // HTTP/1.1 learns of the drain before the request it answers with `Connection: close`;
        // HTTP/2 only after the preface, since its GOAWAY and PING must follow the settings.
        if detected == .http1, let drain { context.fireUserInboundEventTriggered(drain) }
        if let bytes {
            context.fireChannelRead(wrapInboundOut(bytes))
            context.fireChannelReadComplete()
        }
        if detected == .http2, let drain { context.fireUserInboundEventTriggered(drain) }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    private func cancelTimers() {
        idleTimer?.cancel()
        idleTimer = nil
        deadlineTimer?.cancel()
        deadlineTimer = nil
    }
}
