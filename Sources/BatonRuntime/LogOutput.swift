import BatonCore
import Glibc
import Logging

/// swift-log handler for the master: one logfmt-like line per record on stderr, through the
/// non-blocking `OutputSink`. Under systemd's journal (`JOURNAL_STREAM` names our stderr) lines
/// carry sd-daemon priority prefixes (`<6>`) instead of a timestamp.
public struct MasterLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    private let sink: OutputSink
    private let journal: Bool

    public init(level: Logger.Level, sink: OutputSink = .standardError, journal: Bool) {
        self.logLevel = level
        self.sink = sink
        self.journal = journal
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var line = journal ? "<\(Self.priority(event.level))>" : Self.timestamp() + Self.levelWords[event.level]!
        line += "\(event.message)"
        if !metadata.isEmpty || !(event.metadata?.isEmpty ?? true) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }
            for key in merged.keys.sorted() {
                line += " \(key)=\(merged[key]!)"
            }
        }
        // An error is written at once: if the master were to die next, it must have been said.
        sink.writeLine(line, urgent: event.level >= .error)
    }

    /// True when stderr is the journal's stream socket, per `JOURNAL_STREAM=DEV:INODE`.
    public static func stderrIsJournal(environment: [String: String]) -> Bool {
        guard let value = environment["JOURNAL_STREAM"] else { return false }
        let parts = value.split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var info = stat()
        guard fstat(2, &info) == 0 else { return false }
        return UInt64(info.st_dev) == device && UInt64(info.st_ino) == inode
    }

    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    /// `2026-11-22T05:30:00.123Z`, from the real-time clock, without Foundation.
    /// " INFO " and the like: the level between the timestamp and the message.
    static let levelWords: [Logger.Level: String] = Dictionary(
        uniqueKeysWithValues: Logger.Level.allCases.map { ($0, " \($0.rawValue.uppercased()) ") })

    /// `2026-11-22T14:38:11.581Z`: UTC, milliseconds. Formatted into bytes, as it is written for
    /// every line the master logs.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var parts = tm()
        var seconds = now.tv_sec
        gmtime_r(&seconds, &parts)
        let fields: [(value: Int, width: Int, after: UInt8)] = [
            (Int(parts.tm_year) + 1900, 4, UInt8(ascii: "-")), (Int(parts.tm_mon) + 1, 2, UInt8(ascii: "-")),
            (Int(parts.tm_mday), 2, UInt8(ascii: "T")), (Int(parts.tm_hour), 2, UInt8(ascii: ":")),
            (Int(parts.tm_min), 2, UInt8(ascii: ":")), (Int(parts.tm_sec), 2, UInt8(ascii: ".")),
            (now.tv_nsec / 1_000_000, 3, UInt8(ascii: "Z")),
        ]
        return String(unsafeUninitializedCapacity: 24) { buffer in
            var at = 0
            for field in fields {
                var value = field.value
                for place in stride(from: field.width - 1, through: 0, by: -1) {
                    buffer[at + place] = UInt8(ascii: "0") + UInt8(value % 10)
                    value /= 10
                }
                at += field.width
                buffer[at] = field.after
                at += 1
            }
            return at
        }
    }
}

extension LogLevel {
    /// The swift-log level for a configured `log_level`.
    public var loggerLevel: Logger.Level {
        switch self {
        case .trace: return .trace
        case .debug: return .debug
        case .info: return .info
        case .notice: return .notice
        case .warning: return .warning
        case .error: return .error
        }
    }
}

extension LogRecord.Level {
    var loggerLevel: Logger.Level {
        switch self {
        case .debug: return .debug
        case .info: return .info
        case .notice: return .notice
        case .warning: return .warning
        case .error: return .error
        }
    }
}
