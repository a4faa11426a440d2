import BatonWorkerNIO
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

/// The keep-alive-aware drain of one connection, on an embedded channel with a virtual clock.
@Suite struct HTTPDrainHandlerTests {
    func makeChannel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(handler: HTTPDrainHandler(idleGrace: .seconds(2), linger: .seconds(2)))
        try channel.connect(to: .init(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    func request(_ channel: EmbeddedChannel) throws {
        try channel.writeInbound(HTTPServerRequestPart.head(.init(version: .http1_1, method: .GET, uri: "/")))
        try channel.writeInbound(HTTPServerRequestPart.end(nil))
        _ = try channel.readInbound(as: HTTPServerRequestPart.self)
        _ = try channel.readInbound(as: HTTPServerRequestPart.self)
    }

    /// Writes a 200 response; returns its `connection` header.
    func respond(_ channel: EmbeddedChannel) throws -> String? {
        try channel.writeOutbound(HTTPServerResponsePart.head(.init(version: .http1_1, status: .ok)))
        try channel.writeOutbound(HTTPServerResponsePart.end(nil))
        guard case .head(let head) = try channel.readOutbound(as: HTTPServerResponsePart.self) else { return "no head" }
        _ = try channel.readOutbound(as: HTTPServerResponsePart.self)
        return head.headers.first(name: "connection")
    }

    func drain(_ channel: EmbeddedChannel, deadline: TimeAmount? = nil) {
        let now = channel.embeddedEventLoop.now
        channel.pipeline.fireUserInboundEventTriggered(HTTPDrainEvent(started: now, deadline: deadline.map { now + $0 }))
    }

    @Test func beforeTheDrainKeepAliveIsLeftAlone() throws {
        let channel = try makeChannel()
        try request(channel)
        #expect(try respond(channel) == nil)
        channel.embeddedEventLoop.advanceTime(by: .seconds(60))
        #expect(channel.isActive)
    }

    @Test func anIdleConnectionClosesOnlyAfterTheGrace() throws {
        let channel = try makeChannel()
        try request(channel)
        _ = try respond(channel)
        drain(channel)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1900))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(200))
        #expect(!channel.isActive)
    }

    @Test func theNextRequestIsAnsweredWithConnectionCloseAndTheConnectionThenCloses() throws {
        let channel = try makeChannel()
        drain(channel)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(100))
        try request(channel)
        // The request arrived within the grace: answered, with close, and no idle close meanwhile.
        channel.embeddedEventLoop.advanceTime(by: .seconds(5))
        #expect(channel.isActive)
        #expect(try respond(channel) == "close")
        // After the final response: half-closed, closed at the latest after the linger.
        channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(!channel.isActive)
    }

    @Test func aRequestInFlightAtTheDrainGetsConnectionClose() throws {
        let channel = try makeChannel()
        try request(channel)
        drain(channel)
        #expect(try respond(channel) == "close")
    }

    @Test func theDeadlineClosesEvenABusyConnection() throws {
        let channel = try makeChannel()
        try request(channel)
        drain(channel, deadline: .seconds(3))
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(2900))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(200))
        #expect(!channel.isActive)
    }
}
