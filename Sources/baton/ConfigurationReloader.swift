import BatonCore
import Glibc

/// Resolves the master's configuration at start and at each reload, and parses the file again
/// only when its bytes changed.
///
/// Every reload still reads the file, so an edit is never missed. But parsing is the costliest
/// part of a reload (a `baton-config` child, see `ConfigurationReader`), so a deploy that changes
/// the program and not its configuration skips it. The flags are fixed for the master's life and
/// loading is a pure function of the text, so equal bytes give an equal configuration.
final class ConfigurationReloader {
    private let options: ConfigurationOptions
    private var last: (bytes: [UInt8], configuration: Configuration)?

    init(options: ConfigurationOptions) {
        self.options = options
    }

    func resolve() throws -> Configuration {
        guard let path = options.config else { return try options.resolve(file: nil) }
        let bytes: [UInt8]
        do {
            bytes = try ConfigurationReader.read(path)
        } catch {
            last = nil
            throw error
        }
        if let last, last.bytes == bytes { return last.configuration }
        last = nil
        let file = try ConfigurationReader.parse(bytes, path: path)
        let configuration = try options.resolve(file: file)
        last = (bytes, configuration)
        return configuration
    }
}
