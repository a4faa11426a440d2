import Glibc
import Logging
import Testing

@testable import BatonRuntime

/// The master's log lines: journal priority prefixes when stderr is the journal, else timestamps.
@Suite struct LogOutputTests {
    @Test func journalIsRecognisedOnlyWhenJournalStreamNamesOurStderr() {
        var info = stat()
        #expect(fstat(2, &info) == 0)
        let ours = "\(info.st_dev):\(info.st_ino)"
        #expect(MasterLogHandler.stderrIsJournal(environment: ["JOURNAL_STREAM": ours]))
        #expect(!MasterLogHandler.stderrIsJournal(environment: ["JOURNAL_STREAM": "\(info.st_dev):\(info.st_ino + 1)"]))
        #expect(!MasterLogHandler.stderrIsJournal(environment: ["JOURNAL_STREAM": "garbage"]))
        #expect(!MasterLogHandler.stderrIsJournal(environment: [:]))
    }

    @Test func priorityPrefixesFollowSdDaemon() {
        #expect(MasterLogHandler.priority(.error) == 3)
        #expect(MasterLogHandler.priority(.warning) == 4)
        #expect(MasterLogHandler.priority(.notice) == 5)
        #expect(MasterLogHandler.priority(.info) == 6)
        #expect(MasterLogHandler.priority(.debug) == 7)
    }

    @Test func linesGoThroughTheSinkWithPrefixOrTimestamp() throws {
        var ends: [Int32] = [-1, -1]
        #expect(pipe(&ends) == 0)
        defer { close(ends[0]) }
        let sink = OutputSink(standardFD: ends[1])
        close(ends[1])
        MasterLogHandler(level: .info, sink: sink, journal: true)
            .log(event: LogEvent(level: .info, message: "gen=3 pid=4121 ready in 182ms", metadata: nil, source: "baton", file: #fileID, function: #function, line: #line))
        MasterLogHandler(level: .info, sink: sink, journal: false)
            .log(event: LogEvent(level: .warning, message: "plain", metadata: nil, source: "baton", file: #fileID, function: #function, line: #line))
        var buffer = [UInt8](repeating: 0, count: 512)
        let count = read(ends[0], &buffer, buffer.count)
        let lines = String(decoding: buffer.prefix(max(count, 0)), as: UTF8.self).split(separator: "\n").map(String.init)
        #expect(lines.first == "<6>gen=3 pid=4121 ready in 182ms")
        let second = try #require(lines.dropFirst().first)
        #expect(second.hasSuffix(" WARNING plain"))
        #expect(second.hasPrefix("20") && second.contains("T") && second.contains("Z "))
    }
}
