import CBaton
import Glibc
import Synchronization

/// Writes the master's own stdout or stderr without ever blocking the master: a slow reader (a
/// full pipe, a stopped terminal) makes lines queue up to a bound, then drop, counted.
///
/// The master's fds 1 and 2 are shared with whoever started it, so O_NONBLOCK is not set on them:
/// a pipe or terminal is reopened through /proc/self/fd (a new open file description, made
/// non-blocking), and a socket (the journal's stream) is written with MSG_DONTWAIT.
public final class OutputSink: Sendable {
    private struct State {
        var pending: [UInt8] = []
        var dropped = 0
        var holding = false
    }

    private enum Method { case write, send }

    /// The fd written to, for watching writability while lines are pending.
    public let fd: CInt
    private let method: Method
    private let state = Mutex(State())
    private let limit: Int

    public static let standardOutput = OutputSink(standardFD: 1)
    public static let standardError = OutputSink(standardFD: 2)

    init(standardFD: CInt, limit: Int = 256 * 1024) {
        self.limit = limit
        var info = stat()
        guard fstat(standardFD, &info) == 0 else {
            (fd, method) = (standardFD, .write)
            return
        }
        switch info.st_mode & S_IFMT {
        case S_IFSOCK:
            (fd, method) = (standardFD, .send)
        case S_IFIFO, S_IFCHR:
            let reopened = open("/proc/self/fd/\(standardFD)", O_WRONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
            (fd, method) = (reopened >= 0 ? reopened : standardFD, .write)
        default:
            (fd, method) = (standardFD, .write)
        }
    }

    /// While true, lines are queued and written by `flush` only (unless `urgent`): the master's
    /// loop flushes once after each wake-up, so the lines of one wake-up (a reload's "ready",
    /// "serving", "draining" and "reload ok" come together) cost one system call, not one each.
    public var holdsLines: Bool {
        get { state.withLock { $0.holding } }
        set { state.withLock { $0.holding = newValue } }
    }

    /// Queues one line (a newline is added) and writes what the fd takes now, unless lines are
    /// held and the line is not `urgent`.
    public func writeLine(_ line: String, urgent: Bool = false) {
        var bytes = Array(line.utf8)
        bytes.append(UInt8(ascii: "\n"))
        queue(bytes, urgent: urgent)
    }

    /// Queues `prefix`, `body` and `suffix` as one line (a newline is added), as `writeLine`
    /// does, without making a `String` of a forwarded line's bytes.
    func writeLine(prefix: [UInt8], _ body: ArraySlice<UInt8>, suffix: [UInt8] = []) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(prefix.count + body.count + suffix.count + 1)
        bytes += prefix
        bytes += body
        bytes += suffix
        bytes.append(UInt8(ascii: "\n"))
        queue(bytes, urgent: false)
    }

    private func queue(_ bytes: [UInt8], urgent: Bool) {
        state.withLock { state in
            if state.holding {
                guard state.pending.count + bytes.count <= limit else {
                    state.dropped += 1
                    return
                }
                state.pending += bytes
                if urgent { flushLocked(&state) }
                return
            }
            if !state.pending.isEmpty {
                guard state.pending.count + bytes.count <= limit else {
                    state.dropped += 1
                    return
                }
                state.pending += bytes
                flushLocked(&state)
                return
            }
            let written = write(bytes[...])
            if written < bytes.count {
                if bytes.count - written <= limit {
                    state.pending = Array(bytes[written...])
                } else {
                    state.dropped += 1
                }
            }
        }
    }

    /// Writes what is pending, as far as the fd takes it.
    public func flush() {
        state.withLock { flushLocked(&$0) }
    }

    /// True while lines wait for the fd to become writable.
    public var hasPending: Bool { state.withLock { !$0.pending.isEmpty } }

    /// Lines dropped because the reader was too slow.
    public var droppedLines: Int { state.withLock { $0.dropped } }

    private func flushLocked(_ state: inout State) {
        guard !state.pending.isEmpty else { return }
        let written = write(state.pending[...])
        state.pending.removeFirst(written)
        if state.pending.isEmpty && state.dropped > 0 {
            // Queued like a line: written now if the fd takes it, else by a later flush. (Written
            // directly, the count was lost whenever the last queued bytes had filled the pipe.)
            state.pending = Array("baton: \(state.dropped) line(s) of output dropped: the reader was too slow\n".utf8)
            state.dropped = 0
            state.pending.removeFirst(write(state.pending[...]))
        }
    }

    /// Returns how many bytes went out; stops at EAGAIN or an error.
    private func write(_ bytes: ArraySlice<UInt8>) -> Int {
        var offset = 0
        while offset < bytes.count {
            let result = bytes.withUnsafeBytes { raw -> Int in
                let base = raw.baseAddress! + offset
                switch method {
                case .write: return Glibc.write(fd, base, raw.count - offset)
                case .send: return Glibc.send(fd, base, raw.count - offset, CInt(MSG_DONTWAIT | MSG_NOSIGNAL))
                }
            }
            if result > 0 {
                offset += result
            } else if result < 0 && errno == EINTR {
                continue
            } else if result < 0 && errno != EAGAIN {
                // A closed or broken stdout: nothing more can be said there; drop what is queued.
                return bytes.count
            } else {
                break
            }
        }
        return offset
    }
}
