import BatonCore
import CBaton
import Glibc

/// One control connection, for the life of the master; never reused, so a late reply to a
/// client that has gone (and whose fd number was reused) goes nowhere.
public struct ControlClientID: Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public var description: String { "control client \(rawValue)" }
}

/// The state of one accepted control connection. Owned by `ControlServer`, on the reactor thread.
///
/// A connection carries one request at a time: while a request is in flight the connection is not
/// read at all (what the client sends meanwhile waits in the kernel), so the buffers stay bounded
/// by the request size limit and the outgoing limit.
final class ControlConnection {
    let id: ControlClientID
    let fd: CInt
    let uid: uid_t

    /// Bytes received and not yet consumed as request lines.
    var input: [UInt8] = []
    /// How far `input` is known to hold no newline, so a slowly arriving line is scanned once.
    var scanned = 0
    /// Encoded lines waiting for the socket to take them.
    var output: [UInt8] = []
    /// Queued for `ControlServer.flushHeld()` (lines held until the end of the wake-up).
    var awaitsFlush = false
    /// The id of the request being served; `nil` while the connection waits for a request.
    var inFlight: UInt64?
    /// The client shut its sending side (or closed): no more requests will come.
    var readClosed = false
    /// Closed once `output` is written (after an error, a timeout or the client's EOF).
    var closing = false
    /// Set while the connection is removed, so callers holding it stop touching the fd.
    var isClosed = false
    /// Guards `ControlServer.processLines` against re-entry from a reply sent inside `onRequest`.
    var dispatching = false
    /// While no request is in flight: when the connection is dropped unless a whole request line
    /// has arrived (or, when closing, the pending output has been written).
    var deadline: MonotonicInstant?

    init(id: ControlClientID, fd: CInt, uid: uid_t) {
        self.id = id
        self.fd = fd
        self.uid = uid
    }

    /// Removes and returns the next complete request line (without its newline). At end of input a
    /// final line without a newline counts too, so `printf '{…}' | socat` works.
    func nextLine() -> ArraySlice<UInt8>? {
        if let newline = input[scanned...].firstIndex(of: UInt8(ascii: "\n")) {
            var line = input[..<newline]
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            let result = ArraySlice(Array(line))
            input.removeSubrange(...newline)
            scanned = 0
            return result
        }
        scanned = input.count
        if readClosed && !input.isEmpty {
            let result = ArraySlice(input)
            input = []
            scanned = 0
            return result
        }
        return nil
    }

    /// The epoll interest the connection needs now: readable only while it waits for a request,
    /// writable only while output is pending. Hang-ups are reported regardless.
    var interest: UInt32 {
        var events: UInt32 = 0
        if inFlight == nil && !readClosed && !closing { events |= UInt32(BATON_EV_IN) }
        if !output.isEmpty { events |= UInt32(BATON_EV_OUT) }
        return events
    }
}
