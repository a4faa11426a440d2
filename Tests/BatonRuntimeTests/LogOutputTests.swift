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

    @Test func timestampIsUTCWithMillisecondsAndMatchesTheClock() throws {
        var before = timespec()
        clock_gettime(CLOCK_REALTIME, &before)
        let stamp = MasterLogHandler.timestamp()
        // 2026-11-22T14:38:11.581Z
        let bytes = Array(stamp.utf8)
        #expect(bytes.count == 24)
        for (index, separator) in [(4, "-"), (7, "-"), (10, "T"), (13, ":"), (16, ":"), (19, "."), (23, "Z")] {
            #expect(bytes[index] == UInt8(ascii: Unicode.Scalar(separator)!), "\(stamp) at \(index)")
        }
        var parts = tm()
        var seconds = before.tv_sec
        gmtime_r(&seconds, &parts)
        let year = try #require(Int(stamp.prefix(4)))
        let month = try #require(Int(stamp.dropFirst(5).prefix(2)))
        let day = try #require(Int(stamp.dropFirst(8).prefix(2)))
        // The same minute, unless the clock turned between the two readings.
        #expect(year == Int(parts.tm_year) + 1900 || parts.tm_mon == 11)
        #expect(month == Int(parts.tm_mon) + 1 || parts.tm_mday >= 28)
        #expect(day == Int(parts.tm_mday) || parts.tm_hour == 23)
        let millis = try #require(Int(stamp.dropFirst(20).prefix(3)))
        #expect((0..<1000).contains(millis))
    }

    @Test func everyLevelHasItsWord() {
        #expect(MasterLogHandler.levelWords[.info] == " INFO ")
        #expect(MasterLogHandler.levelWords[.critical] == " CRITICAL ")
        #expect(MasterLogHandler.levelWords.count == Logger.Level.allCases.count)
    }
}
