/// One accepted connection and its buffers. Owned by the server's event loop.
final class Connection {
    let fd: Int32
    /// Bytes read and not yet parsed.
    var input: [UInt8] = []
    /// Bytes to send; `outputOffset` of them are already sent.
    var output: [UInt8] = []
    var outputOffset = 0
    /// Bytes of a request body still to read and throw away.
    var bodyToDiscard = 0
    /// A response held back until its deadline (`/slow`). Requests behind it wait, so pipelined
    /// requests are answered in order.
    var pending: (deadline: UInt64, head: RequestHead, response: Response)?
    /// The last response queued said `Connection: close`: parse nothing more, close after sending.
    var closeAfterFlush = false
    /// The peer shut down its side (read returned 0).
    var readClosed = false
    /// Set once the final response is out and writing is shut down: the server reads and discards
    /// until the peer closes or this deadline passes. Closing with unread input would make the
    /// kernel send a reset, which can destroy the response before the client has read it.
    var lingerUntil: UInt64?
    /// The last time bytes came in or the last response went out (monotonic ns).
    var lastActivity: UInt64

    init(fd: Int32, now: UInt64) {
        self.fd = fd
        self.lastActivity = now
    }

    /// Bytes queued and not yet sent.
    var unsent: Int { output.count - outputOffset }

    /// No request in progress and nothing to send: a keep-alive connection waiting for a request.
    var isIdle: Bool {
        input.isEmpty && pending == nil && unsent == 0 && bodyToDiscard == 0 && !closeAfterFlush
            && lingerUntil == nil
    }
}
