import NIOCore
import NIOHTTP1
import NIOHTTP2

extension BatonHTTPServer {
    /// Sets up an accepted connection: its protocol is known only from its first bytes.
    static func configureConnection(
        _ channel: any Channel, configuration: Configuration,
        initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
    ) throws {
        let detector = HTTPProtocolDetector(idleGrace: configuration.idleGrace) { detected, channel in
            channel.eventLoop.makeCompletedFuture {
                switch detected {
                case .http1:
                    try configureHTTP1(channel, configuration: configuration)
                    return initializer(channel)
                case .http2:
                    try configureHTTP2(channel, configuration: configuration, initializer: initializer)
                    return channel.eventLoop.makeSucceededVoidFuture()
                }
            }.flatMap { $0 }
        }
        try channel.pipeline.syncOperations.addHandler(detector)
    }

    private static func configureHTTP1(_ channel: any Channel, configuration: Configuration) throws {
        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
        try channel.pipeline.syncOperations.addHandler(
            HTTPDrainHandler(idleGrace: configuration.idleGrace, linger: configuration.linger))
    }

    /// Each stream gets the application's handlers behind a codec that turns it into one
    /// HTTP/1.1-shaped exchange, so that they need not know which protocol the client spoke.
    private static func configureHTTP2(
        _ channel: any Channel, configuration: Configuration,
        initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
    ) throws {
        let drain = HTTP2DrainHandler(
            eventLoop: channel.eventLoop, pingTimeout: configuration.http2PingTimeout, linger: configuration.linger)
        _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
            mode: .server, connectionConfiguration: .init(), streamConfiguration: .init(),
            streamDelegate: drain.streamDelegate
        ) { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
            }.flatMap {
                initializer(stream)
            }
        }
        try channel.pipeline.syncOperations.addHandler(drain)
    }
}
