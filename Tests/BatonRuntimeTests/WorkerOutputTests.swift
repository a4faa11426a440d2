import CBaton
import Glibc
import Testing

@testable import BatonRuntime

/// Forwarding of a worker's output: long lines are cut at `WorkerOutput.maximumLine` whether they
/// arrive in one read or across several.
@Suite struct WorkerOutputTests {
    /// A worker's pipe, and a sink on a second pipe standing in for the master's stderr.
    struct Plumbing {
        let worker: (read: Int32, write: Int32)
        let master: (read: Int32, write: Int32)
        let sink: OutputSink

        init() throws {
            var ends: [Int32] = [-1, -1]
            try #require(baton_output_pipe(&ends) == 0)
            worker = (ends[0], ends[1])
            try #require(pipe(&ends) == 0)
            master = (ends[0], ends[1])
            _ = fcntl(master.read, F_SETFL, fcntl(master.read, F_GETFL) | O_NONBLOCK)
            sink = OutputSink(standardFD: master.write)
        }

        func write(_ text: String) {
            let bytes = Array(text.utf8)
            #expect(Glibc.write(worker.write, bytes, bytes.count) == bytes.count)
        }

        /// The lines the sink wrote, prefix removed.
        func forwarded(prefix: String) -> [String] {
            var bytes: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while case let count = read(master.read, &buffer, buffer.count), count > 0 { bytes += buffer.prefix(count) }
            return String(decoding: bytes, as: UTF8.self).split(separator: "\n").map { String($0.dropFirst(prefix.count)) }
        }

        func close() {
            for fd in [worker.write, master.read, master.write] { Glibc.close(fd) }
        }
    }

    static let cut = " [line cut]"

    /// The master reads without blocking; the worker writes as programs expect, blocking when the
    /// pipe is full; neither end leaks into another child.
    @Test func anOutputPipeReadsWithoutBlockingAndWritesBlocking() throws {
        var ends: [Int32] = [-1, -1]
        try #require(baton_output_pipe(&ends) == 0)
        defer { for fd in ends { Glibc.close(fd) } }
        #expect(fcntl(ends[0], F_GETFL) & O_NONBLOCK != 0)
        #expect(fcntl(ends[1], F_GETFL) & O_NONBLOCK == 0)
        #expect(fcntl(ends[0], F_GETFD) & FD_CLOEXEC != 0)
        #expect(fcntl(ends[1], F_GETFD) & FD_CLOEXEC != 0)
        var byte: UInt8 = 0
        #expect(read(ends[0], &byte, 1) == -1 && errno == EAGAIN)
    }

    /// Runs `body` with a worker pipe being forwarded, and closes everything after.
    static func forwarding(_ body: (Plumbing, WorkerOutput) throws -> Void) throws {
        let plumbing = try Plumbing()
        defer { plumbing.close() }
        let output = WorkerOutput()
        output.add(fd: plumbing.worker.read, pid: 42, prefix: "[w] ", sink: plumbing.sink)
        defer { output.finish(fd: plumbing.worker.read) }  // closes it
        try body(plumbing, output)
    }

    @Test func aLongLineInOneReadIsCut() throws {
        try Self.forwarding { plumbing, output in
            plumbing.write(String(repeating: "x", count: 20_000) + "\nafter\n")
            #expect(output.read(fd: plumbing.worker.read))

            let lines = plumbing.forwarded(prefix: "[w] ")
            #expect(lines.map(\.count) == [8192 + Self.cut.count, 8192 + Self.cut.count, 20_000 - 2 * 8192, 5])
            #expect(lines.prefix(2).allSatisfy { $0.hasSuffix("x" + Self.cut) })
            #expect(lines.last == "after")
            #expect(output.tail(of: 42).map(\.count) == lines.map(\.count))
        }
    }

    @Test func aLongLineAcrossReadsIsCutAndItsEndKept() throws {
        try Self.forwarding { plumbing, output in
            plumbing.write(String(repeating: "y", count: 9000))
            #expect(output.read(fd: plumbing.worker.read))
            #expect(plumbing.forwarded(prefix: "[w] ").map(\.count) == [8192 + Self.cut.count])

            plumbing.write(String(repeating: "y", count: 100) + "\n")
            #expect(output.read(fd: plumbing.worker.read))
            #expect(plumbing.forwarded(prefix: "[w] ") == [String(repeating: "y", count: 9100 - 8192)])
        }
    }

    @Test func aLineOfExactlyTheMaximumIsNotCut() throws {
        try Self.forwarding { plumbing, output in
            plumbing.write(String(repeating: "z", count: 8192) + "\n")
            #expect(output.read(fd: plumbing.worker.read))
            #expect(plumbing.forwarded(prefix: "[w] ") == [String(repeating: "z", count: 8192)])
        }
    }
}
