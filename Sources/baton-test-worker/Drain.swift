import CBaton
import Glibc

// Readiness, the drain, and every deadline of the event loop.
extension Server {
    /// Sends READY=1 and starts accepting; with `--exit-before-ready`, exits instead.
    func becomeReady() {
        if let code = options.exitBeforeReady {
            complain("exiting with \(code) before ready")
            exit(code)
        }
        ready = true
        if let error = notifier.send("READY=1") { complain(error) }
        say("worker pid=\(endpoints.identity.pid) ready")
        if let code = options.exitAfterReady {
            complain("exiting with \(code) right after ready")
            exit(code)
        }
    }

    /// Stops accepting (closing this process's copies of the listeners: the accept queue lives on
    /// in the master and the next generation) and lets connections finish.
    func beginDrain(_ reason: String, timeoutUsec: UInt64?, _ now: UInt64) {
        if options.ignoreDrain {
            say("ignoring \(reason)")
            return
        }
        if drain != nil {
            say("already draining, ignoring \(reason)")
            return
        }
        var deadline: UInt64?
        if let usec = timeoutUsec ?? environment("BATON_DRAIN_TIMEOUT_USEC").flatMap({ UInt64($0) }), usec > 0 {
            let (ns, overflow) = usec.multipliedReportingOverflow(by: 1000)
            let (end, late) = now.addingReportingOverflow(ns)
            deadline = overflow || late ? nil : end
        }
        drain = Drain(started: now, deadline: deadline,
                      exitNotBefore: now + Self.ns(milliseconds: options.drainDelayMs))
        for listener in listeners { close(listener.fd) }
        listeners.removeAll()
        say("draining after \(reason): stopped accepting, \(connections.count) connections open")
        notifier.send("STOPPING=1")
    }

    /// When an idle connection may be closed during a drain: after the grace, counted from the
    /// later of the drain's start and its last activity.
    func graceEnd(_ connection: Connection, _ drain: Drain) -> UInt64 {
        max(connection.lastActivity, drain.started) + Self.ns(milliseconds: options.idleGraceMs)
    }

    func fireTimers(_ now: UInt64) {
        if !ready && !options.neverReady && drain == nil && now >= readyAt { becomeReady() }
        if let deadline = drain?.deadline, now >= deadline {
            say("drain deadline reached: closing \(connections.count) connections")
            for connection in Array(connections.values) { closeConnection(connection) }
            drain?.deadline = nil
        }
        for connection in Array(connections.values) {
            if let pending = connection.pending, now >= pending.deadline {
                connection.pending = nil
                answer(connection, pending.head, pending.response)
                service(connection, now)
            } else if let until = connection.lingerUntil, now >= until {
                closeConnection(connection)
            } else if let drain, connection.isIdle, now >= graceEnd(connection, drain) {
                closeConnection(connection)
            }
        }
    }

    /// Milliseconds until the next deadline, -1 for none.
    func pollTimeout(_ now: UInt64) -> Int32 {
        var next: UInt64?
        func consider(_ time: UInt64) { next = min(next ?? time, time) }
        if !ready && !options.neverReady && drain == nil { consider(readyAt) }
        if acceptPausedUntil > now && drain == nil { consider(acceptPausedUntil) }
        if let drain {
            if let deadline = drain.deadline { consider(deadline) }
            consider(drain.exitNotBefore)
        }
        for connection in connections.values {
            if let pending = connection.pending { consider(pending.deadline) }
            if let until = connection.lingerUntil { consider(until) }
            if let drain, connection.isIdle { consider(graceEnd(connection, drain)) }
        }
        guard let next else { return -1 }
        if next <= now { return 0 }
        return Int32(min((next - now + 999_999) / 1_000_000, UInt64(Int32.max)))
    }
}

/// "SIGTERM" for 15, and so on for the signals the worker handles.
func signalName(_ number: Int32) -> String {
    switch number {
    case SIGTERM: "SIGTERM"
    case SIGINT: "SIGINT"
    case SIGUSR2: "SIGUSR2"
    case SIGQUIT: "SIGQUIT"
    default: "signal \(number)"
    }
}
