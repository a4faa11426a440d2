import BatonRuntime

#if canImport(Glibc)
    import Glibc
#endif

/// How `baton` writes for people on one output stream: colour and a progress line rewritten in
/// place only when the stream is a terminal, so that pipes, files and systemd's journal
/// (`ExecReload=baton reload --wait`) get plain lines. `NO_COLOR` (no-color.org) turns colour
/// off, and `TERM=dumb` both colour and in-place rewriting.
public struct TerminalStyle: Sendable, Equatable {
    /// ANSI SGR codes for the few colours the CLI uses.
    public enum Color: String, Sendable {
        case bold = "1"
        case red = "31"
        case green = "32"
        case yellow = "33"
    }

    /// Whether text is coloured.
    public let colors: Bool
    /// Whether a progress line may be rewritten in place (carriage return, erase line).
    public let live: Bool

    public init(isTerminal: Bool, environment: [String: String]) {
        let dumb = environment["TERM"] == "dumb"
        colors = isTerminal && !dumb && (environment["NO_COLOR"] ?? "").isEmpty
        live = isTerminal && !dumb
    }

    /// No colour, no rewriting: what a pipe gets.
    public static let plain = TerminalStyle(isTerminal: false, environment: [:])

    /// The style for the process's stream `fd` (1 or 2), from `isatty` and `environment`.
    public static func of(fd: CInt, environment: [String: String]) -> TerminalStyle {
        TerminalStyle(isTerminal: isatty(fd) == 1, environment: environment)
    }

    /// `text` in `color`, or `text` itself without colours.
    public func paint(_ text: String, _ color: Color) -> String {
        guard colors, !text.isEmpty else { return text }
        return "\u{1B}[\(color.rawValue)m\(text)\u{1B}[0m"
    }

    /// The colour a generation's or a worker's state is shown in: serving and ready are well,
    /// failed and killed are not, everything on the way is in between.
    public static func color(ofState state: String) -> Color? {
        switch state {
        case "serving", "ready", "running": return .green
        case "failed", "killed", "waiting-restart", "stopping-now": return .red
        case "starting", "spawning", "preparing", "draining", "lingering", "stopping": return .yellow
        default: return nil
        }
    }

    /// Erases the terminal's current line and returns to its start.
    public static let eraseLine = "\r\u{1B}[2K"

    /// How many columns `text` takes: its characters without SGR escape sequences.
    public static func visibleWidth(_ text: String) -> Int {
        var width = 0
        var inEscape = false
        for scalar in text.unicodeScalars {
            if inEscape {
                if scalar == "m" { inEscape = false }
            } else if scalar == "\u{1B}" {
                inEscape = true
            } else {
                width += 1
            }
        }
        return width
    }
}

/// The process's environment as a dictionary, read once.
public enum CLIEnvironment {
    public static let current: [String: String] = Dictionary(ProcessEnvironment.read().map { ($0.key, $0.value) }) { $1 }
}
