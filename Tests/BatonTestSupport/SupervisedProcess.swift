import Foundation
import Synchronization

/// How a process ended.
public enum ExitStatus: Equatable, Sendable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    /// Decodes a waitpid(2) status (the W* macros are not visible to Swift).
    init(waitStatus status: Int32) {
        if status & 0x7f == 0 {
            self = .exited((status >> 8) & 0xff)
        } else {
            self = .signaled(status & 0x7f)
        }
    }

    public var description: String {
        switch self {
        case .exited(let code): "exited with \(code)"
        case .signaled(let signal): "killed by signal \(signal)"
        }
    }
}

/// A process started for a test: in its own session, stdout and stderr merged into one pipe that a
/// dedicated thread splits into lines (all kept, none echoed), reaped by pid on another thread.
/// `cleanup()` (also run by deinit) SIGKILLs it, its process group and every process group whose
/// pid appeared in its output as `pid=<N>` (baton's workers lead their own sessions).
public final class SupervisedProcess: Sendable {
    /// The process id (also its process group and session id).
    public let pid: pid_t
    /// The executable, for messages.
    public let executable: String

    private let shared: Shared

    /// What the reader and reaper threads share with the test.
    private final class Shared: Sendable {
        struct State {
            var lines: [String] = []
            var outputClosed = false
            var exit: ExitStatus?
            /// When the process was found gone: reaped by us (`exit` set) or by another waiter.
            var exitedAt: ContinuousClock.Instant?
            var cleanedUp = false
        }
        let state = Mutex(State())
        let doorbell = Doorbell()

        func update(_ change: (inout State) -> Void) {
            state.withLock { change(&$0) }
            doorbell.ring()
        }
    }

    /// How long output may still arrive after the process exited (grandchildren holding the pipe)
    /// before a wait for a line gives up.
    private static let outputGraceAfterExit: Duration = .seconds(2)

    /// Serialises pipe creation and spawning in this process: pipe() and FD_CLOEXEC are two steps,
    /// and a concurrent spawn in between would leak the write end into another child.
    private static let spawnLock = Mutex(())

    /// Starts `executable` (an absolute path) with `arguments` and exactly `environment`.
    /// `passing` fds are placed at 3, 4, … in the child (the caller keeps its own copies), the
    /// way systemd hands over LISTEN_FDS.
    public init(
        executable: String,
        arguments: [String] = [],
        environment: [String: String] = SupervisedProcess.cleanEnvironment(),
        passing fds: [Int32] = []
    ) throws {
        self.executable = executable
        let argv = [executable] + arguments
        let envp = environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        let (pid, readEnd) = try Self.spawnLock.withLock { _ in
            try Self.spawn(executable, argv: argv, envp: envp, fds: fds)
        }
        self.pid = pid
        let shared = Shared()
        self.shared = shared
        Thread.detachNewThread { Self.readLines(from: readEnd, into: shared) }
        Thread.detachNewThread { Self.reap(pid, into: shared) }
    }

    /// Runs `executable ARGUMENTS` to its end; returns its exit status and its whole output
    /// (stdout and stderr, lines joined by newlines).
    public static func run(
        _ executable: String, _ arguments: [String], timeout: Duration = .seconds(60)
    ) throws -> (status: ExitStatus, output: String) {
        let child = try SupervisedProcess(executable: executable, arguments: arguments)
        // A client may quote a master's worker pids: those groups are not the client's to kill.
        defer { child.cleanup(reportedGroups: false) }
        let status = try child.waitForExit(timeout: timeout)
        // Returns (by throwing) once the exited process's output has been read to its end.
        _ = try? child.waitForLine(after: child.mark(), timeout: .seconds(5)) { _ in false }
        return (status, child.lines.joined(separator: "\n"))
    }

    /// The current environment without the variables through which a test's own supervisor
    /// (systemd, or baton itself) would leak into the child: NOTIFY_SOCKET, LISTEN_*, BATON_*.
    public static func cleanEnvironment() -> [String: String] {
        ProcessInfo.processInfo.environment.filter { key, _ in
            key != "NOTIFY_SOCKET" && !key.hasPrefix("LISTEN_") && !key.hasPrefix("BATON_")
                && !key.hasPrefix("EINHORN_") && key != "SERVER_STARTER_PORT"
        }
    }

    // MARK: - Output

    /// Every line printed so far.
    public var lines: [String] {
        shared.state.withLock { $0.lines }
    }

    /// The number of lines printed so far: pass it to `waitForLine(after:)` to see only later ones.
    public func mark() -> Int {
        shared.state.withLock { $0.lines.count }
    }

    /// Waits for the first line at index `mark` or later that satisfies `predicate`, and returns it.
    /// Throws when the deadline passes or the process exits without printing it; the error
    /// carries the last 40 lines.
    @discardableResult
    public func waitForLine(
        after mark: Int = 0,
        timeout: Duration = .seconds(30),
        where predicate: (String) -> Bool
    ) throws -> String {
        let deadline = ContinuousClock.now + timeout
        var next = mark
        while true {
            let (fresh, exitedAt, outputClosed, exit) = shared.state.withLock { state in
                let fresh = next < state.lines.count ? Array(state.lines[next...]) : []
                return (fresh, state.exitedAt, state.outputClosed, state.exit)
            }
            if let line = fresh.first(where: predicate) { return line }
            next += fresh.count
            // Output may still come from grandchildren that hold the pipe, for a short while.
            let exitGraceEnd = exitedAt.map { $0 + Self.outputGraceAfterExit }
            if let exitGraceEnd, outputClosed || ContinuousClock.now >= exitGraceEnd {
                let how = exit?.description ?? "ended (reaped elsewhere)"
                throw failure("\(how) without printing the line waited for")
            }
            if ContinuousClock.now >= deadline {
                throw failure("no such line within \(timeout)")
            }
            // Wake on a new line, on exit, on the end of output, at the deadline, or when the grace
            // for output after exit ends.
            let seen = next
            let sawExit = exitedAt != nil
            _ = shared.doorbell.wait(until: min(deadline, exitGraceEnd ?? deadline)) {
                shared.state.withLock { state in
                    state.lines.count > seen || (state.exitedAt != nil) != sawExit
                        || (state.exitedAt != nil && state.outputClosed)
                }
            }
        }
    }

    /// Waits for a line containing `text`.
    @discardableResult
    public func waitForLine(
        after mark: Int = 0,
        timeout: Duration = .seconds(30),
        containing text: String
    ) throws -> String {
        try waitForLine(after: mark, timeout: timeout) { $0.contains(text) }
    }

    // MARK: - Signals and exit

    /// Sends `signal` to the process (not its group), unless it has already been reaped.
    public func signal(_ signal: Int32) {
        shared.state.withLock { state in
            if state.exitedAt == nil { _ = kill(pid, signal) }
        }
    }

    /// Sends `signal` to the process group the process leads.
    public func signalGroup(_ signal: Int32) {
        _ = kill(-pid, signal)
    }

    /// The exit status, if the process has exited.
    public var exitStatus: ExitStatus? {
        shared.state.withLock { $0.exit }
    }

    /// Waits until the process exits and returns how; throws at the deadline (the process keeps
    /// running). Once it returns, `lines` holds everything the process wrote.
    public func waitForExit(timeout: Duration = .seconds(30)) throws -> ExitStatus {
        let deadline = ContinuousClock.now + timeout
        let ended = shared.doorbell.wait(until: deadline) { shared.state.withLock { $0.exitedAt != nil } }
        guard ended else {
            throw failure("still running after \(timeout)")
        }
        // What it wrote just before exiting may still be in the pipe: read it to the end, so
        // `lines` holds it. A descendant that keeps the pipe open bounds this at 2 s.
        _ = shared.doorbell.wait(until: .now + .seconds(2)) { shared.state.withLock { $0.outputClosed } }
        guard let status = exitStatus else {
            throw failure("exited, but another waitpid/waitid in this test process took its status")
        }
        return status
    }

    /// SIGKILLs the process, its process group, and (unless `reportedGroups` is false: a client
    /// that merely quotes pids, like `baton status`) every process group whose pid appeared in the
    /// output as `pid=<N>`, then waits (up to 10 s) until the process was reaped. Idempotent.
    public func cleanup(reportedGroups: Bool = true) {
        let first = shared.state.withLock { state in
            defer { state.cleanedUp = true }
            return !state.cleanedUp
        }
        guard first else { return }
        signal(SIGKILL)
        // The group outlives its leader while members remain, so its id cannot be reused yet.
        _ = kill(-pid, SIGKILL)
        let protected: Set<pid_t> = [0, 1, getpid(), getpgrp(), pid]
        for group in Self.pids(in: reportedGroups ? lines : []) where !protected.contains(group) {
            _ = kill(-group, SIGKILL)
        }
        _ = shared.doorbell.wait(until: .now + .seconds(10)) { shared.state.withLock { $0.exitedAt != nil } }
    }

    deinit {
        cleanup()
    }

    /// The numbers that follow `pid=` in the given lines, in order of first appearance.
    public static func pids(in lines: [String]) -> [pid_t] {
        var found: [pid_t] = []
        for line in lines {
            var rest = Substring(line)
            while let range = rest.range(of: "pid=") {
                let digits = rest[range.upperBound...].prefix { $0.isASCII && $0.isNumber }
                if let value = pid_t(digits), value > 0, !found.contains(value) { found.append(value) }
                rest = rest[range.upperBound...]
            }
        }
        return found
    }

    private func failure(_ what: String) -> TestSupportError {
        let tail = lines.suffix(40)
        let name = (executable as NSString).lastPathComponent
        return TestSupportError(
            "\(name) (pid \(pid)): \(what); its last \(tail.count) lines:\n" + tail.map { "  | " + $0 }.joined(separator: "\n")
        )
    }

    // MARK: - Spawning and the helper threads

    /// posix_spawn in a new session, with an empty signal mask and every signal at its default
    /// (the test process may block or ignore some), stdin from /dev/null, stdout+stderr to a pipe.
    private static func spawn(_ path: String, argv: [String], envp: [String], fds: [Int32]) throws -> (pid_t, Int32) {
        var pipeFDs: [Int32] = [-1, -1]
        guard pipe(&pipeFDs) == 0 else {
            throw TestSupportError("pipe: \(String(cString: strerror(errno)))")
        }
        _ = fcntl(pipeFDs[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(pipeFDs[1], F_SETFD, FD_CLOEXEC)
        defer { close(pipeFDs[1]) }
        // Copies far above 3…3+n, so that placing one never overwrites the source of another.
        var sources: [Int32] = []
        defer { sources.forEach { close($0) } }
        for fd in fds {
            let copy = fcntl(fd, F_DUPFD_CLOEXEC, 200)
            guard copy >= 0 else {
                close(pipeFDs[0])
                throw TestSupportError("dup fd \(fd): \(String(cString: strerror(errno)))")
            }
            sources.append(copy)
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 2)
        for (index, source) in sources.enumerated() {
            posix_spawn_file_actions_adddup2(&actions, source, Int32(3 + index))
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // POSIX_SPAWN_SETSID (glibc ≥ 2.26) is not exported to Swift.
        let setsid: Int32 = 0x80
        posix_spawnattr_setflags(&attributes, Int16(setsid | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)

        let cArguments = argv.map { strdup($0) } + [nil]
        let cEnvironment = envp.map { strdup($0) } + [nil]
        defer {
            cArguments.forEach { free($0) }
            cEnvironment.forEach { free($0) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, path, &actions, &attributes, cArguments, cEnvironment)
        guard result == 0 else {
            close(pipeFDs[0])
            throw TestSupportError("posix_spawn \(path): \(String(cString: strerror(result)))")
        }
        return (pid, pipeFDs[0])
    }

    private static func readLines(from fd: Int32, into shared: Shared) {
        var pending: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            pending += buffer[0..<count]
            guard let lastNewline = pending.lastIndex(of: 10) else { continue }
            let complete = pending[..<lastNewline].split(separator: 10, omittingEmptySubsequences: false)
                .map { String(decoding: $0, as: UTF8.self) }
            pending.removeSubrange(...lastNewline)
            shared.update { $0.lines += complete }
        }
        close(fd)
        let rest = pending
        shared.update { state in
            if !rest.isEmpty { state.lines.append(String(decoding: rest, as: UTF8.self)) }
            state.outputClosed = true
        }
    }

    private static func reap(_ pid: pid_t, into shared: Shared) {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR {
                // ECHILD: a waitpid(-1)/waitid(P_ALL) elsewhere in the test process reaped it.
                shared.update { $0.exitedAt = .now }
                return
            }
        }
        shared.update { state in
            state.exit = ExitStatus(waitStatus: status)
            state.exitedAt = .now
        }
    }
}
