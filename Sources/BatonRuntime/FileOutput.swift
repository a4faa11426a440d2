import Glibc

/// Plain writes to the process's own stdout/stderr, for command output (not logs).
public enum FileOutput {
    public static func standardOutput(_ text: String) { write(1, text) }
    public static func standardError(_ text: String) { write(2, text) }

    /// Writes `text` to stdout as it is, without ending the line (a progress line redrawn in place).
    public static func standardOutputAsIs(_ text: String) {
        guard !text.isEmpty else { return }
        write(1, Array(text.utf8))
    }

    private static func write(_ fd: CInt, _ text: String) {
        var bytes = Array(text.utf8)
        if bytes.last != UInt8(ascii: "\n") { bytes.append(UInt8(ascii: "\n")) }
        write(fd, bytes)
    }

    private static func write(_ fd: CInt, _ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if written <= 0 {
                if written < 0 && errno == EINTR { continue }
                return
            }
            offset += written
        }
    }
}
