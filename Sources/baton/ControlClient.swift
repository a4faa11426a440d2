import ArgumentParser
import BatonCLI
import BatonCore
import BatonRuntime
import Glibc

/// `--control PATH` and `--config FILE`, taken by every client subcommand to find the master.
struct ControlOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "The master's control socket (default: from --config, else $BATON_CONTROL, else the only socket in the runtime directory).",
            valueName: "path"))
    var control: String?

    @Option(name: .long, help: ArgumentHelp("The master's configuration file, to find its control socket.", valueName: "file"))
    var config: String?

    /// The socket to talk to, by `ControlPath`'s client rule.
    func socketPath() throws(ControlClientFailure) -> String {
        var configured: String?
        var program: String?
        if let config {
            let configuration: Configuration
            do {
                configuration = try ConfigurationReader.parse(try ConfigurationReader.read(config), path: config)
            } catch {
                throw ControlClientFailure(ExitStatus.usage, error.description)
            }
            configured = configuration.master.control
            program = configuration.program.name
            if program?.isEmpty ?? true, let first = configuration.program.command.first {
                program = String(first.split(separator: "/").last ?? Substring(first))
            }
            if configured == nil && (program?.isEmpty ?? true) {
                throw ControlClientFailure(
                    ExitStatus.usage, "\(config): no [program] name or command to find the control socket by; use --control PATH")
            }
        }
        let environment = Dictionary(ProcessEnvironment.read().map { ($0.key, $0.value) }) { $1 }
        switch ControlPath.resolveForClient(
            explicit: control, configured: configured, program: program, environment: environment, uid: geteuid())
        {
        case .success(let path):
            return path
        case .failure(let error):
            switch error {
            case .noneFound: throw ControlClientFailure(ExitStatus.unreachable, error.description)
            case .ambiguous: throw ControlClientFailure(ExitStatus.usage, error.description)
            }
        }
    }
}

/// A client-side failure with the exit status it maps to.
struct ControlClientFailure: Error, CustomStringConvertible {
    var exitStatus: Int32
    var description: String

    init(_ exitStatus: Int32, _ description: String) {
        self.exitStatus = exitStatus
        self.description = description
    }
}

/// One request to the master over its control socket, with blocking I/O bounded by a deadline.
/// A client is a short-lived command, so blocking here is fine (the master never blocks).
final class ControlClient {
    let path: String
    private let fd: CInt
    private var buffer: [UInt8] = []
    private let deadline: ContinuousClock.Instant?
    /// While a call waits: how often to run its tick action.
    private var tick: (interval: Duration, action: () -> Void)?

    /// Connects to `path`. `deadline` bounds the connect and every later read and write; `nil`
    /// waits as long as it takes.
    init(path: String, deadline: ContinuousClock.Instant?) throws(ControlClientFailure) {
        self.path = path
        self.deadline = deadline
        guard path.utf8.count <= 107 else {
            throw ControlClientFailure(ExitStatus.usage, "control socket path \(path) is longer than 107 bytes")
        }
        fd = socket(AF_UNIX, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            throw ControlClientFailure(ExitStatus.failed, "socket: \(String(cString: strerror(errno)))")
        }
        // connect() on a Unix socket blocks only while the master's accept queue is full; the
        // send timeout bounds that wait.
        if let deadline {
            var time = Self.timeval(until: deadline)
            _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.utf8.enumerated() { raw[index] = byte }
        }
        var result: CInt
        repeat {
            result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
        } while result != 0 && errno == EINTR
        if result != 0 {
            let code = errno
            close(fd)
            throw Self.connectFailure(path: path, code: code)
        }
    }

    deinit { close(fd) }

    /// Sends `command` and returns the master's reply, passing each event on the way to `onEvent`.
    /// With `tick`, `onTick` runs whenever that long passes with nothing from the master (a
    /// progress line's clock).
    func call(
        _ command: ControlCommand, tick: Duration? = nil, onTick: () -> Void = {},
        onEvent: (ControlEvent) -> Void = { _ in }
    ) throws(ControlClientFailure) -> ControlReply {
        // The action is kept only for the length of this call.
        let result = withoutActuallyEscaping(onTick) { action -> Result<ControlReply, ControlClientFailure> in
            self.tick = tick.map { (interval: $0, action: action) }
            defer { self.tick = nil }
            do throws(ControlClientFailure) {
                return .success(try exchange(command, onEvent: onEvent))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    private func exchange(_ command: ControlCommand, onEvent: (ControlEvent) -> Void) throws(ControlClientFailure)
        -> ControlReply
    {
        let id = UInt64(getpid())
        do {
            try write(ControlCodec.encode(ControlRequest(id: id, command: command)))
        } catch {
            // A master that refuses the connection (a uid it does not serve, too many clients)
            // answers and closes at once, maybe before the request was sent: its reply says why.
            if let line = try? readLine(), case .reply(let reply)? = try? ControlCodec.decodeMessage(line), reply.id == nil {
                return reply
            }
            throw error
        }
        while true {
            let line = try readLine()
            let message: ControlCodec.Message
            do {
                message = try ControlCodec.decodeMessage(line)
            } catch {
                throw ControlClientFailure(ExitStatus.failed, "the master sent an unreadable line: \(error)")
            }
            switch message {
            case .event(let event):
                if event.id == nil || event.id == id { onEvent(event) }
            case .reply(let reply):
                // A reply without an id answers the connection itself (refused, unreadable request).
                if reply.id == nil || reply.id == id { return reply }
            }
        }
    }

    private func write(_ bytes: [UInt8]) throws(ControlClientFailure) {
        var offset = 0
        while offset < bytes.count {
            try waitFor(events: Int16(POLLOUT))
            let count = bytes.withUnsafeBytes {
                send(fd, $0.baseAddress! + offset, $0.count - offset, CInt(MSG_NOSIGNAL | MSG_DONTWAIT))
            }
            if count > 0 {
                offset += count
            } else if count < 0 && (errno == EINTR || errno == EAGAIN) {
                continue
            } else {
                throw ControlClientFailure(
                    ExitStatus.unreachable, "sending to the master at \(path): \(String(cString: strerror(errno)))")
            }
        }
    }

    private func readLine() throws(ControlClientFailure) -> [UInt8] {
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(buffer[..<newline])
                buffer.removeSubrange(...newline)
                return line
            }
            try waitFor(events: Int16(POLLIN))
            var chunk = [UInt8](repeating: 0, count: 64 * 1024)
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, CInt(MSG_DONTWAIT)) }
            if count > 0 {
                buffer += chunk[..<count]
            } else if count == 0 {
                throw ControlClientFailure(
                    ExitStatus.unreachable, "the master at \(path) closed the connection without replying (did it exit?)")
            } else if errno != EINTR && errno != EAGAIN {
                throw ControlClientFailure(
                    ExitStatus.unreachable, "reading from the master at \(path): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Waits until the socket is ready for `events`, or throws a timeout at the deadline.
    private func waitFor(events: Int16) throws(ControlClientFailure) {
        while true {
            var timeout: CInt = -1
            if let deadline {
                let left = ContinuousClock.now.duration(to: deadline)
                guard left > .zero else { throw timedOut() }
                timeout = CInt(clamping: (left.milliseconds) + 1)
            }
            if let tick {
                let interval = CInt(clamping: tick.interval.milliseconds)
                timeout = timeout < 0 ? interval : min(timeout, interval)
            }
            var entry = pollfd(fd: fd, events: events, revents: 0)
            let ready = poll(&entry, 1, timeout)
            if ready > 0 { return }
            if ready == 0, let tick { tick.action() }
            if ready < 0 && errno != EINTR {
                throw ControlClientFailure(ExitStatus.failed, "poll: \(String(cString: strerror(errno)))")
            }
        }
    }

    private func timedOut() -> ControlClientFailure {
        ControlClientFailure(ExitStatus.timedOut, "timed out waiting for the master at \(path)")
    }

    private static func connectFailure(path: String, code: Int32) -> ControlClientFailure {
        let reason = String(cString: strerror(code))
        switch code {
        case ENOENT:
            return ControlClientFailure(ExitStatus.unreachable, "no master reachable: \(path) does not exist")
        case ECONNREFUSED:
            return ControlClientFailure(
                ExitStatus.unreachable, "no master reachable: nothing listens on \(path) (a socket left by a master that died?)")
        case EACCES, EPERM:
            return ControlClientFailure(
                ExitStatus.unreachable, "no master reachable: \(path): \(reason) (run as root or as the master's user)")
        case EAGAIN, ETIMEDOUT, EINPROGRESS:
            return ControlClientFailure(ExitStatus.timedOut, "timed out connecting to the master at \(path)")
        default:
            return ControlClientFailure(ExitStatus.unreachable, "no master reachable: connect \(path): \(reason)")
        }
    }

    private static func timeval(until deadline: ContinuousClock.Instant) -> Glibc.timeval {
        let left = max(ContinuousClock.now.duration(to: deadline), .milliseconds(1))
        let (seconds, attoseconds) = left.components
        return Glibc.timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }
}

/// Shared plumbing of the client subcommands.
enum ControlCommandRunner {
    /// How long a command other than `reload --wait` waits for the master's reply.
    static let replyTimeout: Duration = .seconds(10)

    /// Connects, sends, and returns the reply; failures are printed and become the exit status.
    static func call(
        _ command: ControlCommand, options: ControlOptions, timeout: Duration?,
        tick: Duration? = nil, onTick: () -> Void = {}, onEvent: (ControlEvent) -> Void = { _ in }
    ) throws -> ControlReply {
        do {
            let path = try options.socketPath()
            let deadline = timeout.map { ContinuousClock.now + $0 }
            let client = try ControlClient(path: path, deadline: deadline)
            return try client.call(command, tick: tick, onTick: onTick, onEvent: onEvent)
        } catch {
            ErrorOutput.print("baton: \(error.description)")
            throw ExitCode(error.exitStatus)
        }
    }

    /// Prints a failed reply (and the failing worker's last lines) and exits 1.
    static func fail(_ what: String, _ reply: ControlReply) -> ExitCode {
        // Only the reason is red: the worker's own lines keep whatever they say.
        var lines = [ErrorOutput.style.paint("baton: \(what) failed: \(reply.error ?? "no reason given")", .red)]
        if let output = reply.output, !output.isEmpty {
            lines.append("last output of the failing worker:")
            lines += output.map { "  | \($0)" }
        }
        FileOutput.standardError(lines.joined(separator: "\n"))
        return ExitCode(ExitStatus.failed)
    }

    /// Parses a `--timeout` value.
    static func duration(_ text: String?, flag: String) throws -> Duration? {
        guard let text else { return nil }
        guard let value = DurationText.parse(text), value > .zero else {
            ErrorOutput.print("baton: \(flag) \(text): expected a duration such as 250ms, 30s, 5m or 1h")
            throw ExitCode(ExitStatus.usage)
        }
        return value
    }
}
