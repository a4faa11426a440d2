import BatonCore
import Testing

/// The channel's messages: the handover split in batches of at most 252 fds, `DRAIN=1`, and the
/// strict reading of what a worker sends.
@Suite struct ChannelProtocolTests {
    @Test func fewSocketsGoInOneMessageWithoutMore() {
        let messages = ChannelProtocol.handoff(names: ["http", "http", "admin"], generation: 3)
        #expect(messages == [
            .init(text: "LISTEN_FDS=3\nLISTEN_FDNAMES=http:http:admin\nBATON_GENERATION=3", sockets: 0..<3)
        ])
    }

    @Test func noSocketsStillMakeOneMessage() {
        #expect(ChannelProtocol.handoff(names: [], generation: 1) == [
            .init(text: "LISTEN_FDS=0\nLISTEN_FDNAMES=\nBATON_GENERATION=1", sockets: 0..<0)
        ])
    }

    @Test func thousandSocketsGoInBatchesOf252EachNamingItsOwnFds() throws {
        let names = (0..<1000).map { "listener-\($0)" }
        let messages = ChannelProtocol.handoff(names: names, generation: 9)
        #expect(messages.map(\.sockets) == [0..<252, 252..<504, 504..<756, 756..<1000])
        for (index, message) in messages.enumerated() {
            let parsed = try NotifyMessage.parse(Array(message.text.utf8)).get()
            #expect(parsed["LISTEN_FDS"] == String(message.sockets.count))
            #expect(parsed["LISTEN_FDNAMES"] == names[message.sockets].joined(separator: ":"))
            #expect(parsed["BATON_GENERATION"] == "9")
            #expect(parsed["MORE"] == (index < messages.count - 1 ? "1" : nil))
            #expect(message.text.utf8.count <= ChannelProtocol.maximumMessageSize)
        }
    }

    @Test func drainSaysHowLongInMicroseconds() {
        #expect(ChannelProtocol.drain(timeout: .milliseconds(1500)) == "DRAIN=1\nTIMEOUT_USEC=1500000")
    }

    @Test func workerNoticesAreRead() throws {
        let notices = try ChannelProtocol.notices(parsing: Array("READY=1\nSTATUS=serving 4 clients\nSTOPPING=1\nERRNO=98\n".utf8)).get()
        #expect(notices == [.ready, .status("serving 4 clients"), .stopping, .errno(98)])
    }

    @Test(arguments: [
        ("READY=1\nHELLO", "expected KEY=VALUE"),
        ("ready=1", "is not [A-Z0-9_]+"),
        ("READY=1\nWATCHDOG=1", "unknown key WATCHDOG"),
        ("READY=2", "only READY=1 is defined"),
        ("STOPPING=yes", "only STOPPING=1 is defined"),
        ("ERRNO=EADDRINUSE", "expected a non-negative errno number"),
        ("ERRNO=-1", "expected a non-negative errno number"),
    ])
    func malformedWorkerMessagesAreRejectedWhole(text: String, reason: String) {
        switch ChannelProtocol.notices(parsing: Array(text.utf8)) {
        case .success(let notices): Issue.record("accepted \(notices)")
        case .failure(let error): #expect(error.description.contains(reason), "\(error)")
        }
    }

    @Test func oversizedWorkerMessageIsRejected() {
        let text = "STATUS=" + String(repeating: "x", count: NotifyMessage.maximumSize)
        #expect(throws: NotifyMessageError.self) { try ChannelProtocol.notices(parsing: Array(text.utf8)).get() }
    }
}
