import BatonCore
import Glibc

/// Resolves the master's configuration at start and at each reload, and parses the file again
/// only when its bytes changed.
///
/// Every reload still reads the file, so an edit is never missed. But parsing is the costliest
/// part of a reload for the master, and the TOML parser keeps a few kB per parse that it never
/// frees (measured: 2.3 kB per reload, linear, with TOMLKit 0.6); a deploy that changes the
/// program and not its configuration now costs neither. The flags are fixed for the master's
/// life and loading is a pure function of the text, so equal bytes give an equal configuration.
final class ConfigurationReloader {
    private let options: ConfigurationOptions
    private var last: (bytes: [UInt8], configuration: Configuration)?

    /// Larger files are left to the loader, which refuses them with a message.
    private static let maximumSize = 4 << 20

    init(options: ConfigurationOptions) {
        self.options = options
    }

    func resolve() throws -> Configuration {
        guard let path = options.config, let bytes = Self.read(path),
            let text = String(validating: bytes, as: UTF8.self)
        else {
            // No file, or one that cannot be read or is not UTF-8: the loader says what is wrong.
            last = nil
            return try options.resolve()
        }
        if let last, last.bytes == bytes { return last.configuration }
        // A text that crashes the TOML parser must not crash the master: try it in a child first.
        let options = self.options
        if let failure = ParserCrashGuard.failure(running: { _ = try? options.resolve(fileText: text) }) {
            last = nil
            throw UsageFailure("\(path): cannot parse: \(failure) on this file; it is not valid TOML")
        }
        let configuration = try options.resolve(fileText: text)
        last = (bytes, configuration)
        return configuration
    }

    /// The whole file, or nil when it cannot be read (or is too large to be a configuration).
    private static func read(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while bytes.count <= maximumSize {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count > 0 {
                bytes += chunk[..<count]
            } else if count == 0 {
                return bytes
            } else if errno != EINTR {
                return nil
            }
        }
        return nil
    }
}
