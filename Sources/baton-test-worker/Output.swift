import Glibc

// The worker writes with write(2) and never through stdio: stdout is usually a pipe (baton's
// output forwarding), where stdio would buffer whole blocks and lines would arrive late or never.

/// Writes every byte of `text` to `fd`, retrying after EINTR and partial writes. A reader that
/// went away (EPIPE) only loses the text: the worker keeps serving.
func writeAll(_ fd: Int32, _ text: String) {
    let bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let written = bytes.withUnsafeBytes { raw in
            write(fd, raw.baseAddress! + offset, raw.count - offset)
        }
        if written > 0 {
            offset += written
        } else if written < 0 && errno == EINTR {
            continue
        } else if written < 0 && errno == EAGAIN {
            // A non-blocking stdout shared with someone else: wait until it drains.
            var entry = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            _ = poll(&entry, 1, 1000)
        } else {
            return
        }
    }
}

/// One line to stdout.
func say(_ line: String) {
    writeAll(1, line + "\n")
}

/// One line to stderr.
func complain(_ line: String) {
    writeAll(2, line + "\n")
}

/// The text of the last failed system call, e.g. "Connection reset by peer".
func errnoText(_ code: Int32 = errno) -> String {
    String(cString: strerror(code))
}

/// A failed system call, named, with its errno.
struct SystemError: Error, CustomStringConvertible {
    var operation: String
    var code: Int32

    init(_ operation: String, code: Int32 = errno) {
        self.operation = operation
        self.code = code
    }

    var description: String { "\(operation): \(errnoText(code))" }
}
