import BatonCore
import CBaton
import CSystemd
import Glibc
import Logging
import Synchronization

/// sd_notify out: the master's messages to systemd (libsystemd's `sd_notify` and
/// `sd_pid_notify_with_fds`), one datagram per call.
///
/// Inert unless `NOTIFY_SOCKET` was in the master's environment when it started. libsystemd reads
/// that variable with getenv() at every call: the master never changes its own environment after
/// start-up (workers get an explicit envp), so the read is safe from the main thread.
///
/// Every method returns libsystemd's result: > 0 sent, 0 inert, < 0 a negative errno (logged as a
/// warning when a logger was given; a failure that repeats is logged once, until a send succeeds).
public final class SystemdNotifier: Sendable {
    /// `NOTIFY_SOCKET` was set: messages are sent.
    public let isEnabled: Bool
    /// How often to send `WATCHDOG=1` (half of `WATCHDOG_USEC`), when systemd's watchdog is on for
    /// this process (`WATCHDOG_PID` unset or ours); nil otherwise.
    public let watchdogInterval: Duration?
    let logger: Logger?
    /// The errno of the last failed send, 0 after a success: a watchdog ping every few seconds to a
    /// vanished socket must not fill the log.
    private let lastFailure = Mutex<Int32>(0)

    /// The most fds one message carries: the kernel's limit per SCM_RIGHTS message (SCM_MAX_FD).
    static let maximumFDsPerMessage = 253

    /// - Parameter environment: the master's environment as read at start-up.
    public init(environment: [(key: String, value: String)], logger: Logger? = nil) {
        isEnabled = environment.contains { $0.key == "NOTIFY_SOCKET" && !$0.value.isEmpty }
        self.logger = logger
        var microseconds: UInt64 = 0
        if isEnabled, sd_watchdog_enabled(0, &microseconds) > 0, microseconds > 0 {
            watchdogInterval = .microseconds(Int64(microseconds / 2))
        } else {
            watchdogInterval = nil
        }
    }

    /// `READY=1`: start-up finished, or a reload ended (successfully or not: the status says).
    @discardableResult
    public func ready(status: String) -> Int32 {
        send(["READY=1", Self.statusLine(status)])
    }

    /// `RELOADING=1` with `MONOTONIC_USEC=` taken now (CLOCK_MONOTONIC, as systemd ≥ 253 compares it
    /// with the moment it asked for the reload), in one datagram. Must be followed by `ready`.
    @discardableResult
    public func reloading(status: String) -> Int32 {
        guard isEnabled else { return 0 }
        return send(["RELOADING=1", "MONOTONIC_USEC=\(baton_monotonic_ns() / 1000)", Self.statusLine(status)])
    }

    /// `STOPPING=1`: the drain begins; systemd starts `TimeoutStopSec=`.
    @discardableResult
    public func stopping(status: String) -> Int32 {
        send(["STOPPING=1", Self.statusLine(status)])
    }

    /// `STATUS=`: one line for `systemctl status`.
    @discardableResult
    public func status(_ text: String) -> Int32 {
        send([Self.statusLine(text)])
    }

    /// `ERRNO=` (with a status line): why start-up failed, before the master exits.
    @discardableResult
    public func errno(_ code: Int32, status: String? = nil) -> Int32 {
        send(["ERRNO=\(code)"] + (status.map { [Self.statusLine($0)] } ?? []))
    }

    /// `FDSTORE=1` + `FDNAME=name` with `fds`: systemd keeps copies and passes them back, named, on
    /// the next start (needs `FileDescriptorStoreMax=`; libsystemd reports success without it).
    /// More fds than one message may carry go in several messages of the same name.
    @discardableResult
    public func storeFDs(name: String, fds: [CInt]) -> Int32 {
        guard isEnabled, !fds.isEmpty else { return 0 }
        var result: Int32 = 0
        var start = 0
        while start < fds.count {
            let chunk = Array(fds[start..<min(start + Self.maximumFDsPerMessage, fds.count)])
            let state = "FDSTORE=1\nFDNAME=\(name)"
            result = chunk.withUnsafeBufferPointer {
                sd_pid_notify_with_fds(0, 0, state, $0.baseAddress, UInt32($0.count))
            }
            guard result > 0 else {
                report(result, state)
                return result
            }
            start += chunk.count
        }
        lastFailure.withLock { $0 = 0 }
        return result
    }

    /// `FDSTOREREMOVE=1` + `FDNAME=name`: systemd closes every stored fd of that name.
    @discardableResult
    public func removeStoredFDs(name: String) -> Int32 {
        send(["FDSTOREREMOVE=1", "FDNAME=\(name)"])
    }

    /// `WATCHDOG=1`.
    @discardableResult
    public func watchdogPing() -> Int32 {
        send(["WATCHDOG=1"])
    }

    /// Sends what the state machine asked for.
    @discardableResult
    public func perform(_ notification: SystemdNotification) -> Int32 {
        // Not under systemd: skip building the lines nobody would read.
        guard isEnabled else { return 0 }
        switch notification {
        case .ready(let status): return ready(status: status)
        case .reloading(let status): return reloading(status: status)
        case .stopping(let status): return stopping(status: status)
        case .status(let text): return status(text)
        }
    }

    // MARK: - Sending

    func send(_ lines: [String]) -> Int32 {
        guard isEnabled else { return 0 }
        let state = lines.joined(separator: "\n")
        let result = sd_notify(0, state)
        if result < 0 { report(result, state) } else { lastFailure.withLock { $0 = 0 } }
        return result
    }

    func report(_ result: Int32, _ state: String) {
        let repeated = lastFailure.withLock { last in
            defer { last = result }
            return last == result
        }
        guard !repeated else { return }
        let first = state.prefix { $0 != "\n" }
        logger?.warning("sd_notify(\(first)...): \(String(cString: strerror(-result)))")
    }

    /// `STATUS=` takes one line: a newline would start a new field.
    static func statusLine(_ text: String) -> String {
        let line = text.map { $0 == "\n" || $0 == "\r" || $0 == "\r\n" ? " " : String($0) }.joined()
        return "STATUS=" + line
    }
}
