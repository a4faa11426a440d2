import NIOCore
import NIOEmbedded
import Testing

@testable import BatonWorkerNIO

/// Telling HTTP/1.1 from h2c by the first bytes, on an embedded channel with a virtual clock.
@Suite struct HTTPProtocolDetectorTests {
    final class Detected {
        var protocols: [HTTPConnectionProtocol] = []
    }

    func makeChannel(_ detected: Detected) throws -> EmbeddedChannel {
        let detector = HTTPProtocolDetector(idleGrace: .seconds(2)) { found, channel in
            detected.protocols.append(found)
            return channel.eventLoop.makeSucceededVoidFuture()
        }
        let channel = EmbeddedChannel(handler: detector)
        try channel.connect(to: .init(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    /// Everything the detector handed on, as text.
    func handedOn(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while let buffer = try channel.readInbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
        return text
    }

    @Test func aMethodThatStartsLikeThePrefaceIsHTTP1() throws {
        let detected = Detected()
        let channel = try makeChannel(detected)
        try channel.writeInbound(ByteBuffer(string: "P"))
        #expect(detected.protocols.isEmpty)
        try channel.writeInbound(ByteBuffer(string: "UT /x HTTP/1.1\r\n\r\n"))
        #expect(detected.protocols == [.http1])
        #expect(try handedOn(channel) == "PUT /x HTTP/1.1\r\n\r\n")
    }

    @Test func thePrefaceInPiecesIsHTTP2AndNothingIsLost() throws {
        let detected = Detected()
        let channel = try makeChannel(detected)
        try channel.writeInbound(ByteBuffer(string: "PRI * HTTP/2.0\r\n"))
        #expect(detected.protocols.isEmpty)
        try channel.writeInbound(ByteBuffer(string: "\r\nSM\r\n\r\nrest"))
        #expect(detected.protocols == [.http2])
        #expect(try handedOn(channel) == "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nrest")
        // Later bytes pass straight on: the detector has left.
        try channel.writeInbound(ByteBuffer(string: "more"))
        #expect(try handedOn(channel) == "more")
        #expect(detected.protocols == [.http2])
    }

    @Test func aSilentConnectionClosesAfterTheGraceOnceTheDrainBegan() throws {
        let detected = Detected()
        let channel = try makeChannel(detected)
        let now = channel.embeddedEventLoop.now
        channel.pipeline.fireUserInboundEventTriggered(HTTPDrainEvent(started: now, deadline: now + .seconds(30)))
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1900))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(200))
        #expect(!channel.isActive)
        #expect(detected.protocols.isEmpty)
    }
}
