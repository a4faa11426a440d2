#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reads a configuration file's text with plain system calls (no Foundation).
enum ConfigFile {
    /// Configuration files are small; a larger one is a mistake (or `/dev/zero`).
    static let maximumSize = 4 << 20

    /// The text of the file at `path`; errors name the file `name` (the file the user gave, when
    /// `path` is another way to it, such as `/dev/fd/3`).
    static func contents(of path: String, reportingAs name: String) throws(ConfigError) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw cannotRead(name, errno) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw cannotRead(name, errno)
            }
            if count == 0 { break }
            bytes += chunk[..<count]
            if bytes.count > maximumSize {
                throw ConfigError(file: name, line: nil, message: "larger than \(maximumSize >> 20) MiB: not a configuration file")
            }
        }
        return try text(of: bytes, path: name)
    }

    /// The bytes as a String, refusing invalid UTF-8 (with its line) rather than repairing it.
    private static func text(of bytes: [UInt8], path: String) throws(ConfigError) -> String {
        var line = 1
        var iterator = bytes.makeIterator()
        var parser = Unicode.UTF8.ForwardParser()
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let scalar):
                if scalar.count == 1, scalar.first == UInt8(ascii: "\n") { line += 1 }
            case .error:
                throw ConfigError(file: path, line: line, message: "not valid UTF-8 text")
            case .emptyInput:
                return String(decoding: bytes, as: UTF8.self)
            }
        }
    }

    private static func cannotRead(_ path: String, _ code: Int32) -> ConfigError {
        ConfigError(file: path, line: nil, message: "cannot read: \(String(cString: strerror(code)))")
    }
}
