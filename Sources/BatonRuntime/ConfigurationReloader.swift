import BatonCore

/// Resolves the master's configuration at start and at each reload, and parses the file again
/// only when its bytes changed.
///
/// Every reload still reads the file, so an edit is never missed. But parsing is the costliest
/// part of a reload (a `baton-config` child, see `ConfigurationReader`), so a deploy that changes
/// the program and not its configuration skips it. The flags are fixed for the master's life and
/// loading is a pure function of the text, so equal bytes give an equal configuration.
public final class ConfigurationReloader {
    /// The `--config` file, if any.
    public let configPath: String?
    public let overrides: ConfigurationOverrides
    private var last: (bytes: [UInt8], configuration: Configuration)?

    public init(configPath: String?, overrides: ConfigurationOverrides) {
        self.configPath = configPath
        self.overrides = overrides
    }

    /// The configuration now: the file read again (parsed again if it changed) and the flags.
    public func resolve() throws(ConfigurationFailure) -> Configuration {
        guard let configPath else { return try overrides.resolve(file: nil, configPath: nil) }
        let bytes: [UInt8]
        do {
            bytes = try ConfigurationReader.read(configPath)
        } catch {
            last = nil
            throw error
        }
        if let last, last.bytes == bytes { return last.configuration }
        last = nil
        let file = try ConfigurationReader.parse(bytes, path: configPath)
        let configuration = try overrides.resolve(file: file, configPath: configPath)
        remember(bytes: bytes, configuration: configuration)
        return configuration
    }

    /// What the last `resolve` read and made of it, to hand to another process's reloader.
    public var remembered: (bytes: [UInt8], configuration: Configuration)? { last }

    /// Takes `configuration` as what the file's `bytes` give (resolved by another process from
    /// the same flags), so the first reload does not parse an unchanged file again.
    public func remember(bytes: [UInt8], configuration: Configuration) {
        last = (bytes, configuration)
    }
}
