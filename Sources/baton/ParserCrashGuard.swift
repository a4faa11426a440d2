import BatonCore
import Glibc

/// Runs the configuration parser once in a forked child before the master parses the same text
/// itself.
///
/// TOMLKit's C++ parser (toml++) aborts on some malformed files: assertions that stay on in
/// release builds (a file holding just `[` is one; the `FuzzConfigLoader` fuzz target found three
/// such sites in two minutes). In the master that abort would come on `systemctl reload`, and with
/// the master gone every worker drains: an outage for a typo. Parsing is a pure function of the
/// text, so a text the child parsed without crashing is safe to parse in the master.
///
/// The master is single-threaded, so the forked child may run Swift code. Only texts that changed
/// pay for the fork (`ConfigurationReloader` skips unchanged ones).
enum ParserCrashGuard {
    /// How long the child may take before it counts as hung (and is killed).
    static let timeoutMilliseconds: Int32 = 10_000

    /// Runs `body` in a child process. Returns nil when it returned normally, or how the child
    /// failed (e.g. `the parser crashed (SIGABRT)`). When no child can be started, returns nil:
    /// the caller parses in-process, as it would without the guard.
    static func failure(running body: () -> Void) -> String? {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { return nil }
        let child = fork()
        if child < 0 {
            close(ends[0])
            close(ends[1])
            return nil
        }
        if child == 0 {
            close(ends[0])
            // The parent reports the crash: no assertion text or Swift backtrace on its stderr.
            let null = open("/dev/null", O_WRONLY)
            if null >= 0 { dup2(null, 2) }
            for signal in [SIGABRT, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP] { Glibc.signal(signal, SIG_DFL) }
            body()
            var done: UInt8 = 1
            _ = write(ends[1], &done, 1)
            _exit(0)
        }
        close(ends[1])
        defer { close(ends[0]) }
        var entry = pollfd(fd: ends[0], events: Int16(POLLIN), revents: 0)
        var ready: Int32
        repeat { ready = poll(&entry, 1, timeoutMilliseconds) } while ready < 0 && errno == EINTR
        var byte: UInt8 = 0
        var count = -1
        if ready > 0 {
            repeat { count = read(ends[0], &byte, 1) } while count < 0 && errno == EINTR
        } else {
            kill(child, SIGKILL)
        }
        var status: Int32 = 0
        while waitpid(child, &status, 0) < 0 && errno == EINTR {}
        if count == 1 { return nil }
        if ready == 0 { return "the parser did not finish within \(timeoutMilliseconds / 1000)s" }
        // WIFSIGNALED / WTERMSIG / WEXITSTATUS are macros Swift cannot see.
        let signal = status & 0x7f
        if signal != 0 { return "the parser crashed (\(SignalName.name(signal)))" }
        return "the parser exited with status \((status >> 8) & 0xff)"
    }
}
