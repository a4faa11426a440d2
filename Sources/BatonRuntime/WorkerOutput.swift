import BatonCore
import CBaton
import Glibc

/// Forwards each worker's stdout and stderr, line by line, to the master's own with a prefix
/// (`[web gen=3 pid=4121] `), and keeps each worker's last lines for failure reports. Reads are
/// non-blocking and bounded, so a flooding worker costs the master only its share of the loop.
final class WorkerOutput {
    static let tailLines = 20
    static let maximumLine = 8192

    private struct Stream {
        var pid: pid_t
        var prefix: [UInt8]
        var sink: OutputSink
        var partial: [UInt8] = []
    }

    private static let cutMark = Array(" [line cut]".utf8)

    private var streams: [CInt: Stream] = [:]
    /// Each worker's last lines as read (decoded only when a report quotes them).
    private var tails: [pid_t: [[UInt8]]] = [:]
    private var buffer = [UInt8](repeating: 0, count: 65536)

    /// Starts forwarding `fd` (a pipe's non-blocking read end, from `baton_output_pipe`, now
    /// owned here) for worker `pid`.
    func add(fd: CInt, pid: pid_t, prefix: String, sink: OutputSink) {
        streams[fd] = Stream(pid: pid, prefix: Array(prefix.utf8), sink: sink)
        if tails[pid] == nil { tails[pid] = [] }
    }

    /// Reads what `fd` has now. Returns false at end of file: the fd is then closed and forgotten
    /// (the caller forgets its epoll registration).
    func read(fd: CInt) -> Bool {
        // One read per wake-up keeps a flooding worker from starving the rest of the loop.
        let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        if count > 0 {
            consume(fd: fd, bytes: buffer[..<count])
            return true
        }
        if count < 0 && (errno == EAGAIN || errno == EINTR) { return true }
        finish(fd: fd)
        return false
    }

    /// Reads everything `fd` holds now (before its worker's exit is reported, so the report can
    /// quote its last words).
    func drain(pid: pid_t) -> [CInt] {
        var ended: [CInt] = []
        for (fd, stream) in streams where stream.pid == pid {
            var rounds = 0
            while rounds < 64 {
                rounds += 1
                let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if count > 0 {
                    consume(fd: fd, bytes: buffer[..<count])
                    continue
                }
                if count == 0 { ended.append(fd) }
                break
            }
        }
        return ended
    }

    /// Closes a stream, flushing its last partial line.
    func finish(fd: CInt) {
        guard let stream = streams.removeValue(forKey: fd) else { return }
        if !stream.partial.isEmpty { emit(stream, stream.partial[...]) }
        close(fd)
    }

    /// The last lines of a worker's output, oldest first.
    func tail(of pid: pid_t) -> [String] {
        (tails[pid] ?? []).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Forgets the kept lines of workers that are gone for good.
    func forget(pids: [pid_t]) {
        for pid in pids { tails[pid] = nil }
    }

    var openStreams: Int { streams.count }

    private func consume(fd: CInt, bytes: ArraySlice<UInt8>) {
        guard var stream = streams[fd] else { return }
        var partial = stream.partial
        stream.partial = []  // one owner of the buffer while it grows
        var start = bytes.startIndex
        while let newline = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) {
            partial += bytes[start..<newline]
            emitCut(stream, &partial, keepingRest: false)
            start = newline + 1
        }
        partial += bytes[start...]
        emitCut(stream, &partial, keepingRest: true)
        stream.partial = partial
        streams[fd] = stream
    }

    /// Emits `line` in pieces of at most `maximumLine` bytes, each but the last marked as cut, so
    /// that no forwarded line, and no line kept in a tail, is longer, however the bytes arrived (a
    /// read brings up to 64 KiB). With `keepingRest`, the line has not ended yet: its last piece
    /// stays in `line`, to be continued by the next read.
    private func emitCut(_ stream: Stream, _ line: inout [UInt8], keepingRest: Bool) {
        var start = 0
        while line.count - start > Self.maximumLine {
            emit(stream, line[start..<(start + Self.maximumLine)], cut: true)
            start += Self.maximumLine
        }
        if keepingRest {
            line.removeFirst(start)
        } else {
            emit(stream, line[start...])
            line.removeAll(keepingCapacity: true)
        }
    }

    private func emit(_ stream: Stream, _ line: ArraySlice<UInt8>, cut: Bool = false) {
        stream.sink.writeLine(prefix: stream.prefix, line, suffix: cut ? Self.cutMark : [])
        var tail = tails.removeValue(forKey: stream.pid) ?? []
        if tail.count >= Self.tailLines { tail.removeFirst(tail.count - Self.tailLines + 1) }
        tail.append(cut ? Array(line) + Self.cutMark : Array(line))
        tails[stream.pid] = tail
    }
}
