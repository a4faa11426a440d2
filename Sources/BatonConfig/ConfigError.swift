/// Why a configuration file could not be loaded: where, and what is wrong there.
///
/// `description` reads like a compiler's message, e.g.
/// `web.toml:12: listener "http": address: "tcp:/x": expected tcp://, unix: or udp://`, or
/// `web.toml: cannot read: No such file or directory` when there is no line to point at.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file name as given to the loader.
    public var file: String
    /// 1-based line of the offending key or value; `nil` when the error is about the whole file.
    public var line: Int?
    /// What is wrong, naming the table and key (`program: workers: expected an integer, got a string`).
    public var message: String

    public init(file: String, line: Int?, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String {
        if let line { return "\(file):\(line): \(message)" }
        return "\(file): \(message)"
    }
}
