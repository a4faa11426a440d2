import Foundation

/// True while a process with this pid exists and is not a zombie (`/proc/PID/stat` state Z or X).
public func processExists(_ pid: pid_t) -> Bool {
    guard pid > 0 else { return false }
    if kill(pid, 0) != 0 && errno == ESRCH { return false }
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
    // The command name is in parentheses and may hold spaces; the state follows the last ')'.
    guard let close = stat.lastIndex(of: ")") else { return false }
    let state = stat[stat.index(after: close)...].drop { $0 == " " }.first
    return state != "Z" && state != "X"
}

/// Waits until `processExists(pid)` is false; returns false when it still exists at the deadline.
/// It polls /proc every 10 ms: a process that is not our child offers no event to wait for.
@discardableResult
public func waitUntilGone(_ pid: pid_t, timeout: Duration = .seconds(30)) -> Bool {
    let deadline = ContinuousClock.now + timeout
    while processExists(pid) {
        if ContinuousClock.now >= deadline { return false }
        Thread.sleep(forTimeInterval: 0.01)
    }
    return true
}
