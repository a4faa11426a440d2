import Glibc
import Testing

@testable import BatonRuntime

/// The master's non-blocking stdout/stderr: a slow reader makes lines queue, then drop, counted.
@Suite struct OutputSinkTests {
    /// `F_SETPIPE_SZ` (Linux), not exported to Swift.
    static let setPipeSize: Int32 = 1031

    /// A pipe of one page: the sink writes to a non-blocking reopened copy of its write end.
    static func smallPipe() throws -> (read: Int32, write: Int32) {
        var ends: [Int32] = [-1, -1]
        try #require(pipe(&ends) == 0)
        try #require(fcntl(ends[1], setPipeSize, 4096) == 4096)
        _ = fcntl(ends[0], F_SETFL, fcntl(ends[0], F_GETFL) | O_NONBLOCK)
        return (ends[0], ends[1])
    }

    static func readAll(_ fd: Int32) -> String {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 8192)
        while case let count = read(fd, &buffer, buffer.count), count > 0 { bytes += buffer.prefix(count) }
        return String(decoding: bytes, as: UTF8.self)
    }

    @Test func droppedLinesAreCountedEvenWhenTheQueueFillsThePipeExactly() throws {
        let pipe = try Self.smallPipe()
        defer { close(pipe.read) }
        let sink = OutputSink(standardFD: pipe.write, limit: 8192)
        close(pipe.write)
        let line = String(repeating: "a", count: 1023)  // 1024 bytes with its newline
        // 4 lines fill the pipe, 8 fill the queue (exactly two pipes' worth), 3 more are dropped.
        for _ in 0..<15 { sink.writeLine(line) }
        #expect(sink.droppedLines == 3)
        #expect(sink.hasPending)

        var seen = Self.readAll(pipe.read)
        sink.flush()  // half the queue
        seen += Self.readAll(pipe.read)
        sink.flush()  // the rest of the queue fills the pipe to the last byte
        seen += Self.readAll(pipe.read)
        sink.flush()  // the drop count
        seen += Self.readAll(pipe.read)
        #expect(!sink.hasPending)
        let lines = seen.split(separator: "\n")
        #expect(lines.count == 13)
        #expect(lines.prefix(12).allSatisfy { $0 == line })
        #expect(lines.last == "baton: 3 line(s) of output dropped: the reader was too slow")
        #expect(sink.droppedLines == 0)
    }

    @Test func aWriterNeverBlocksOnAFullPipe() throws {
        let pipe = try Self.smallPipe()
        defer { close(pipe.read) }
        let sink = OutputSink(standardFD: pipe.write, limit: 4096)
        close(pipe.write)
        let clock = ContinuousClock()
        let took = clock.measure {
            for index in 0..<10_000 { sink.writeLine("line \(index)") }
        }
        #expect(took < .seconds(5))
        #expect(sink.droppedLines > 9000)
    }
}
