import BatonCore
import CBaton
import Glibc

/// The state machine's deadlines on one timerfd, armed for the earliest. Changes are applied by
/// `commit()`, once per wake-up of the loop: a reload sets and cancels several deadlines, and the
/// timerfd needs to know only the earliest that remains.
final class TimerQueue {
    let fd: CInt
    private var deadlines: [TimerID: MonotonicInstant] = [:]
    private var armedAt: MonotonicInstant?
    private var changed = false

    init() throws(SystemError) {
        fd = baton_timerfd_create()
        guard fd >= 0 else { throw SystemError("timerfd_create") }
    }

    deinit { close(fd) }

    func set(_ id: TimerID, at deadline: MonotonicInstant) {
        deadlines[id] = deadline
        changed = true
    }

    func cancel(_ id: TimerID) {
        guard deadlines.removeValue(forKey: id) != nil else { return }
        changed = true
    }

    /// Removes and returns the timers due at `now`, earliest first.
    func takeExpired(now: MonotonicInstant) -> [TimerID] {
        baton_timerfd_drain(fd)
        let due = deadlines.filter { $0.value <= now }.sorted { $0.value < $1.value }.map(\.key)
        for id in due { deadlines[id] = nil }
        armedAt = nil
        changed = true
        return due
    }

    var count: Int { deadlines.count }

    /// Arms the timerfd for the earliest deadline, if the deadlines changed since the last call.
    /// Call it before the loop sleeps.
    func commit() {
        guard changed else { return }
        changed = false
        let earliest = deadlines.values.min()
        guard earliest != armedAt else { return }
        armedAt = earliest
        // Deadline 0 would disarm: an already-due deadline is armed at 1 ns, which fires at once.
        _ = baton_timerfd_arm(fd, earliest.map { max($0.nanoseconds, 1) } ?? 0)
    }
}

enum Clock {
    static func now() -> MonotonicInstant { MonotonicInstant(nanoseconds: baton_monotonic_ns()) }
}
