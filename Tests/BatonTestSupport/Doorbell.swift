import Foundation

/// Wakes threads that wait for a change of state kept elsewhere (under a Mutex). A waiter checks
/// the state while holding the doorbell's lock and a changer rings after changing it, so no wake-up
/// is lost between the check and the wait.
final class Doorbell: Sendable {
    private let condition = NSCondition()

    /// Wakes every waiter. Call after the state changed.
    func ring() {
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }

    /// Waits until `isDone()` is true or the deadline passes; returns the last `isDone()`.
    func wait(until deadline: ContinuousClock.Instant, isDone: () -> Bool) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while !isDone() {
            let remaining = ContinuousClock.now.duration(to: deadline)
            if remaining <= .zero { return false }
            _ = condition.wait(until: Date(timeIntervalSinceNow: remaining.seconds))
        }
        return true
    }
}

extension Duration {
    /// The duration in seconds, as a Double.
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
