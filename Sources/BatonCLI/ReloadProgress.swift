import BatonCore
import BatonRuntime

/// What `baton reload --wait` shows while it waits. On a plain stream (a pipe, a file, systemd's
/// journal under `ExecReload=`) every event is one line as it comes, for scripts and logs. On a
/// terminal one status line is redrawn in place (`⠹ gen=7 starting: 2/4 workers ready (1.2s)`);
/// events worth keeping on screen (a worker exited, a failure, a message) are printed above it,
/// and the line is erased before the outcome is printed.
public struct ReloadProgress {
    public let style: TerminalStyle
    private let started: ContinuousClock.Instant
    private var generation: Int?
    private var spawned: Set<Int> = []
    private var ready: Set<Int> = []
    private var serving = false
    private var showing = false

    public init(style: TerminalStyle, started: ContinuousClock.Instant = .now) {
        self.style = style
        self.started = started
    }

    /// The text to write for `event`: a line ending in a newline, or on a terminal the status
    /// line redrawn (no newline), after any line worth keeping.
    public mutating func record(_ event: ControlEvent, at now: ContinuousClock.Instant = .now) -> String {
        guard style.live else { return Self.describe(event) + "\n" }
        switch event.kind {
        case .reloading where generation == nil:
            generation = event.generation
        case .spawned where event.generation == generation:
            if let worker = event.worker { spawned.insert(worker) }
        case .ready where event.generation == generation:
            if let worker = event.worker { ready.insert(worker) }
        case .exited where event.generation == generation:
            // A ready worker that dies is not ready any more; its restart spawns it again.
            if let worker = event.worker { ready.remove(worker) }
        case .serving where event.generation == generation:
            serving = true
        default:
            break
        }
        var text = TerminalStyle.eraseLine
        if let color = Self.keptColor(of: event.kind) {
            text += style.paint(Self.describe(event), color) + "\n"
        }
        showing = true
        return text + statusLine(at: now)
    }

    /// The status line redrawn (a clock tick while nothing happens); empty off a terminal or
    /// before the first event.
    public func redraw(at now: ContinuousClock.Instant = .now) -> String {
        guard style.live, showing else { return "" }
        return TerminalStyle.eraseLine + statusLine(at: now)
    }

    /// Erases the status line, before the outcome is printed.
    public mutating func finish() -> String {
        guard showing else { return "" }
        showing = false
        return TerminalStyle.eraseLine
    }

    /// `⠹ gen=7 starting: 2/4 workers ready (1.2s)`.
    func statusLine(at now: ContinuousClock.Instant) -> String {
        let elapsed = started.duration(to: now)
        let milliseconds = max(0, Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000))
        let spinner = Self.spinner[(milliseconds / 100) % Self.spinner.count]
        let name = generation.map { "gen=\($0)" } ?? "reload"
        let phase = serving ? style.paint("serving", .green) : style.paint("starting", .yellow)
        let seconds = "\(milliseconds / 1000).\((milliseconds % 1000) / 100)s"
        return "\(spinner) \(name) \(phase): \(ready.count)/\(spawned.count) workers ready (\(seconds))"
    }

    static let spinner = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"]

    /// Events printed above the status line on a terminal, in their colour.
    static func keptColor(of kind: ControlEvent.Kind) -> TerminalStyle.Color? {
        switch kind {
        case .failed: return .red
        case .exited: return .yellow
        case .message: return .bold
        case .reloading, .spawned, .ready, .serving, .draining: return nil
        default: return .bold
        }
    }

    /// One progress line: `gen=4 worker=0 pid=4121 ready`, `gen=4 worker=1 exited: status 1`.
    public static func describe(_ event: ControlEvent) -> String {
        var parts: [String] = []
        if let generation = event.generation { parts.append("gen=\(generation)") }
        if let worker = event.worker { parts.append("worker=\(worker)") }
        if let pid = event.pid { parts.append("pid=\(pid)") }
        if event.kind != .message { parts.append(event.kind.rawValue) }
        let line = parts.joined(separator: " ")
        guard let message = event.message, !message.isEmpty else { return line.isEmpty ? event.kind.rawValue : line }
        if line.isEmpty { return message }
        return event.kind == .message ? "\(line) \(message)" : "\(line): \(message)"
    }
}
