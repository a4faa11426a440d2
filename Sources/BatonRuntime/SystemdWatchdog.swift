import BatonCore
import CBaton
import Glibc

/// Sends `WATCHDOG=1` every `SystemdNotifier.watchdogInterval` from the master's event loop, on a
/// timerfd of its own: a hung loop stops the pings and systemd restarts the service.
final class SystemdWatchdog {
    /// Readable when a ping is due: register it with the reactor and call `fire()`.
    let fd: CInt
    let interval: Duration
    private let notifier: SystemdNotifier

    /// nil when systemd's watchdog is off for this process.
    init?(notifier: SystemdNotifier) throws(SystemError) {
        guard let interval = notifier.watchdogInterval, interval > .zero else { return nil }
        fd = baton_timerfd_create()
        guard fd >= 0 else { throw SystemError("timerfd_create") }
        self.interval = interval
        self.notifier = notifier
        notifier.watchdogPing()
        arm()
    }

    deinit { close(fd) }

    /// Pings and arms the next one.
    func fire() {
        baton_timerfd_drain(fd)
        notifier.watchdogPing()
        arm()
    }

    private func arm() {
        let nanoseconds = UInt64(max(interval.nanoseconds, 1))
        _ = baton_timerfd_arm(fd, baton_monotonic_ns() + nanoseconds)
    }
}
