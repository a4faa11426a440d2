/// One worker slot of a generation, and the process that fills it.
public struct Worker: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        /// The runtime was asked to start it; no pid yet.
        case spawning
        case starting(pid: Int32, since: MonotonicInstant)
        case ready(pid: Int32, since: MonotonicInstant)
        /// Told to drain (its generation is draining, failed, or the master is stopping).
        case draining(pid: Int32)
        /// SIGKILLed; waiting for the kernel to report its exit.
        case killed(pid: Int32)
        /// The main process exited while draining; the rest of its process group still drains.
        case lingering(pgid: Int32)
        /// Crashed while serving; started again at `until`.
        case waitingRestart(until: MonotonicInstant)
        case gone
    }

    public var id: WorkerID
    public var state: State
    /// How often this slot was started again after a crash.
    public var restarts: Int = 0
    /// Crashes since the slot last ran for `RestartPolicy.stableAfter`.
    public var crashesInARow: Int = 0
    /// When the current process started (spawned), for uptime and stability.
    public var startedAt: MonotonicInstant?
    /// Removed by scaling down: its process drains and the slot is never restarted. A retired
    /// slot whose process is gone may be taken again by a later scale-up.
    public var retired = false

    public init(id: WorkerID, state: State) {
        self.id = id
        self.state = state
    }

    public var pid: Int32? {
        switch state {
        case .starting(let pid, _), .ready(let pid, _), .draining(let pid), .killed(let pid): return pid
        case .spawning, .waitingRestart, .lingering, .gone: return nil
        }
    }

    /// True while a process of this slot may still be running.
    public var isLive: Bool {
        switch state {
        case .spawning, .starting, .ready, .draining, .killed, .lingering: return true
        case .waitingRestart, .gone: return false
        }
    }

    public var isReady: Bool {
        if case .ready = state { return true }
        return false
    }
}

/// A set of identical workers started together by one reload.
public struct Generation: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        /// The runtime is reading its configuration.
        case preparing
        /// Spawned; waiting for every worker's readiness.
        case starting
        case serving
        case draining(since: MonotonicInstant)
        /// Aborted before it served; its workers are being drained.
        case failed(since: MonotonicInstant)

        /// Draining or failed: its workers are on their way out.
        public var isWindingDown: Bool {
            switch self {
            case .draining, .failed: return true
            case .preparing, .starting, .serving: return false
            }
        }
    }

    public var number: Int
    public var state: State
    /// Known once prepared.
    public var settings: GenerationSettings?
    public var workers: [Worker] = []
    public var createdAt: MonotonicInstant
    public var servingSince: MonotonicInstant?
    /// When its draining workers are killed (set when it starts draining or fails).
    public var drainDeadline: MonotonicInstant?

    public init(number: Int, state: State, createdAt: MonotonicInstant) {
        self.number = number
        self.state = state
        self.createdAt = createdAt
    }

    public var liveWorkers: Int { workers.filter(\.isLive).count }
    public var readyWorkers: Int { workers.filter(\.isReady).count }
    /// The slots it runs (retired ones left out): its worker count.
    public var size: Int { workers.filter { !$0.retired }.count }
    /// Every slot it runs is ready.
    public var isComplete: Bool { workers.allSatisfy { $0.retired || $0.isReady } }

    public var isDraining: Bool {
        if case .draining = state { return true }
        return false
    }
}
