import Glibc

/// The worker's switches. Every one can also come from `--switches-file`, so a test can change how
/// the next generation behaves without touching baton's command line.
struct Options {
    /// Addresses to bind when no sockets were handed over (`--listen [NAME=]ADDR`, repeatable).
    var listen: [(name: String, address: SocketAddress)] = []
    /// Milliseconds between start-up and `READY=1`.
    var readyDelayMs = 0
    /// Never send `READY=1` (and never accept).
    var neverReady = false
    /// When the ready delay has passed, exit with this code instead of becoming ready.
    var exitBeforeReady: Int32?
    /// abort() once this many requests were answered.
    var crashAfter: Int?
    /// Drain signals and `DRAIN=1` are ignored entirely.
    var ignoreDrain = false
    /// After a drain began, exit no sooner than this many milliseconds, even when idle.
    var drainDelayMs = 0
    /// While draining, an idle keep-alive connection is closed after this many milliseconds.
    var idleGraceMs = 1000
    /// `LISTEN_PID` names the parent (for running under `sh -c '…; exit $?'`).
    var listenPidParent = false
    /// Print the environment at start, one variable per line.
    var printEnv = false
    /// Print this many lines "output line i" at start.
    var outputLines = 0
    /// Accept connections before readiness was sent (by default a worker accepts only once ready,
    /// so a generation that never becomes ready never takes a connection).
    var serveBeforeReady = false
    /// The file whose words were appended to the arguments, if any.
    var switchesFile: String?

    // Faults, for the fault-matrix tests.

    /// abort() first thing, before taking the sockets.
    var crashAtStart = false
    /// Exit with this code right after `READY=1` was sent.
    var exitAfterReady: Int32?
    /// Fork a grandchild (same process group, waits for SIGKILL), then exit 0 at once.
    var forkGrandchild = false
    /// Close this process's copies of the listeners with these names right after the handover.
    var closeListeners: [String] = []
    /// A thread writes output lines to stdout as fast as the pipe takes them, forever.
    var floodOutput = false
    /// Send `NOTIFY_SOCKET` an oversized datagram and a malformed one at start.
    var notifyJunk = false
    /// The faults above apply only in the first process that creates this file; every later one
    /// (a restarted worker, the other workers of its generation) runs normally.
    var faultOnce: String?
}

/// A command line the worker cannot run with; it exits 2.
struct UsageError: Error {
    var message: String
}

extension Options {
    static let usage = """
        usage: baton-test-worker [--listen [NAME=]ADDR]... [--ready-delay MS] [--never-ready]
               [--exit-before-ready CODE] [--crash-after N] [--ignore-drain] [--drain-delay MS]
               [--idle-grace MS] [--listen-pid-parent] [--print-env] [--output-lines N]
               [--serve-before-ready] [--switches-file PATH]
               faults: [--crash-at-start] [--exit-after-ready CODE] [--fork-grandchild]
               [--close-listener NAME]... [--flood-output] [--notify-junk] [--fault-once PATH]
        ADDR: 127.0.0.1:8080, [::1]:0, unix:/path, unix:@abstract
        Sockets come from LISTEN_FDS (systemd convention), BATON_CHANNEL_FD, or --listen.
        """

    /// Parses `arguments` (without the program name). When `--switches-file PATH` names an
    /// existing file, its whitespace-separated words are appended first, so they win over the
    /// command line where a switch takes a value.
    static func parse(_ arguments: [String]) throws(UsageError) -> Options {
        var words = arguments
        let file = switchesFilePath(in: arguments)
        if let file, let content = readWholeFile(file) {
            words += content.split(whereSeparator: { $0.isWhitespace })
                .map(String.init)
        }
        var options = Options()
        options.switchesFile = file
        var index = 0
        while index < words.count {
            var word = words[index]
            index += 1
            var inlineValue: String?
            if word.hasPrefix("--"), let equals = word.firstIndex(of: "=") {
                inlineValue = String(word[word.index(after: equals)...])
                word = String(word[..<equals])
            }
            func value() throws(UsageError) -> String {
                if let inlineValue { return inlineValue }
                guard index < words.count else { throw UsageError(message: "\(word) needs a value") }
                index += 1
                return words[index - 1]
            }
            func number() throws(UsageError) -> Int {
                let text = try value()
                guard let number = Int(text), number >= 0 else {
                    throw UsageError(message: "\(word) needs a non-negative number, not '\(text)'")
                }
                return number
            }
            switch word {
            case "--listen":
                let text = try value()
                do {
                    options.listen.append(try parseListen(text))
                } catch {
                    throw UsageError(message: "--listen \(text): \(error.message)")
                }
            case "--ready-delay": options.readyDelayMs = try number()
            case "--never-ready": options.neverReady = true
            case "--exit-before-ready":
                let text = try value()
                guard let code = Int32(text) else { throw UsageError(message: "--exit-before-ready needs an exit code") }
                options.exitBeforeReady = code
            case "--crash-after": options.crashAfter = try number()
            case "--ignore-drain": options.ignoreDrain = true
            case "--drain-delay": options.drainDelayMs = try number()
            case "--idle-grace": options.idleGraceMs = try number()
            case "--listen-pid-parent": options.listenPidParent = true
            case "--print-env": options.printEnv = true
            case "--output-lines": options.outputLines = try number()
            case "--serve-before-ready": options.serveBeforeReady = true
            case "--switches-file": _ = try value()
            case "--crash-at-start": options.crashAtStart = true
            case "--exit-after-ready":
                let text = try value()
                guard let code = Int32(text) else { throw UsageError(message: "--exit-after-ready needs an exit code") }
                options.exitAfterReady = code
            case "--fork-grandchild": options.forkGrandchild = true
            case "--close-listener": options.closeListeners.append(try value())
            case "--flood-output": options.floodOutput = true
            case "--notify-junk": options.notifyJunk = true
            case "--fault-once": options.faultOnce = try value()
            default: throw UsageError(message: "unknown argument '\(words[index - 1])'")
            }
        }
        return options
    }

    /// With `--fault-once PATH`, the faults apply only when this process creates PATH; otherwise
    /// they are switched off here.
    mutating func claimFaults() {
        guard let path = faultOnce else { return }
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if fd >= 0 {
            close(fd)
            return
        }
        crashAtStart = false
        exitAfterReady = nil
        forkGrandchild = false
        closeListeners = []
        floodOutput = false
        notifyJunk = false
    }

    /// `NAME=ADDR` or `ADDR`; the name defaults to "http".
    private static func parseListen(_ text: String) throws(UsageError) -> (name: String, address: SocketAddress) {
        var name = "http"
        var rest = Substring(text)
        if let equals = text.firstIndex(of: "="), !text.hasPrefix("unix:") {
            name = String(text[..<equals])
            rest = text[text.index(after: equals)...]
        }
        guard let address = SocketAddress(parsing: String(rest)) else {
            throw UsageError(message: "not an address (want 127.0.0.1:8080, [::1]:0 or unix:/path)")
        }
        return (name, address)
    }

    private static func switchesFilePath(in arguments: [String]) -> String? {
        var path: String?
        for (index, word) in arguments.enumerated() {
            if word == "--switches-file", index + 1 < arguments.count {
                path = arguments[index + 1]
            } else if word.hasPrefix("--switches-file=") {
                path = String(word.dropFirst("--switches-file=".count))
            }
        }
        return path
    }
}

/// The whole content of a file as text, or nil when it cannot be opened.
func readWholeFile(_ path: String) -> String? {
    readFileBytes(path).map { String(decoding: $0, as: UTF8.self) }
}

/// The whole content of a file, or nil when it cannot be opened.
func readFileBytes(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
        if count > 0 {
            bytes += chunk[0..<count]
        } else if count < 0 && errno == EINTR {
            continue
        } else {
            break
        }
    }
    return bytes
}
