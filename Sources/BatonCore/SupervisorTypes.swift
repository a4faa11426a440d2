/// A point on the monotonic clock (`CLOCK_MONOTONIC`), in nanoseconds. The state machine never
/// reads a clock: every event comes with the time it happened.
public struct MonotonicInstant: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var nanoseconds: UInt64

    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.nanoseconds < rhs.nanoseconds }

    public static func + (lhs: Self, rhs: Duration) -> Self {
        let delta = rhs.nanoseconds
        if delta >= 0 { return Self(nanoseconds: lhs.nanoseconds &+ UInt64(delta)) }
        let magnitude = UInt64(-delta)
        return Self(nanoseconds: lhs.nanoseconds > magnitude ? lhs.nanoseconds - magnitude : 0)
    }

    /// The time from `earlier` to this instant; zero if `earlier` is later.
    public func duration(since earlier: Self) -> Duration {
        guard nanoseconds > earlier.nanoseconds else { return .zero }
        return .nanoseconds(Int64(nanoseconds - earlier.nanoseconds))
    }

    public var description: String { "\(nanoseconds)ns" }
}

/// A worker slot: its generation and its index in that generation (`BATON_WORKER`).
public struct WorkerID: Hashable, Sendable, CustomStringConvertible {
    public var generation: Int
    public var index: Int

    public init(generation: Int, index: Int) {
        self.generation = generation
        self.index = index
    }

    public var description: String { "gen=\(generation) worker=\(index)" }
}

/// How a process ended, as the kernel reported it.
public enum ExitReason: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    public var description: String {
        switch self {
        case .exited(let status): return "exited with status \(status)"
        case .signaled(let signal): return "killed by \(SignalName.name(signal))"
        }
    }

    public var isClean: Bool { self == .exited(0) }
}

/// Deadlines the machine asks the runtime to keep. Setting a timer that is already set moves it.
public enum TimerID: Hashable, Sendable {
    /// The whole new generation must be ready by then.
    case generationReady(generation: Int)
    /// A replacement worker in a serving generation must be ready by then.
    case workerReady(WorkerID)
    /// A draining generation is killed then.
    case drain(generation: Int)
    /// A crashed worker of the serving generation is started again then.
    case respawn(WorkerID)
    /// `ready = "delay"`: a starting worker counts as ready then.
    case readyDelay(WorkerID)
    /// `ready = "exec"`: the next readiness probe of a starting worker runs then.
    case probe(WorkerID)
    /// A worker retired by scaling down is killed then if it has not exited.
    case workerDrain(WorkerID)
}

/// How a generation's workers are judged ready.
public enum Readiness: Sendable, Equatable, CustomStringConvertible {
    /// `READY=1` from the worker (on the notify socket, or on its channel).
    case notify
    /// A probe command (`ready_command`) run at once and then every `interval` after the last one
    /// ended, until one exits 0.
    case exec(interval: Duration)
    /// This long after the worker was started.
    case delay(Duration)
    /// As soon as `execve` succeeded.
    case spawn

    /// The configuration's word: `notify`, `exec`, `delay`, `spawn`.
    public var description: String {
        switch self {
        case .notify: return "notify"
        case .exec: return "exec"
        case .delay: return "delay"
        case .spawn: return "spawn"
        }
    }
}

/// A change of the worker count: `baton scale N`, or one more/less (`SIGTTIN`/`SIGTTOU`).
public enum ScaleRequest: Sendable, Equatable {
    case to(Int)
    case by(Int)
}

/// The settings a generation lives by, fixed when it is prepared.
public struct GenerationSettings: Sendable, Equatable {
    public var workers: Int
    public var readyTimeout: Duration
    public var drainTimeout: Duration
    public var drainSignal: Int32
    public var killMode: KillMode
    public var maxDraining: Int
    public var readiness: Readiness

    public init(
        workers: Int, readyTimeout: Duration = .seconds(60), drainTimeout: Duration = .seconds(30),
        drainSignal: Int32 = 15, killMode: KillMode = .group, maxDraining: Int = 4, readiness: Readiness = .notify
    ) {
        self.workers = workers
        self.readyTimeout = readyTimeout
        self.drainTimeout = drainTimeout
        self.drainSignal = drainSignal
        self.killMode = killMode
        self.maxDraining = maxDraining
        self.readiness = readiness
    }

    public init(program: ProgramSpec) {
        let readiness: Readiness
        switch program.ready {
        case .notify: readiness = .notify
        case .exec: readiness = .exec(interval: program.readyInterval)
        case .delay: readiness = .delay(program.readyDelay)
        case .spawn: readiness = .spawn
        }
        self.init(
            workers: program.workers, readyTimeout: program.readyTimeout, drainTimeout: program.drainTimeout,
            drainSignal: program.drainSignal, killMode: program.killMode, maxDraining: program.maxDraining,
            readiness: readiness)
    }
}

/// Crash-restart policy of the serving generation's workers.
public struct RestartPolicy: Sendable, Equatable {
    public var initialBackoff: Duration = .milliseconds(100)
    public var maximumBackoff: Duration = .seconds(30)
    /// A worker that lived this long resets its slot's crash count.
    public var stableAfter: Duration = .seconds(60)
    /// This many crashes in a row are reported as a crash loop.
    public var crashLoopThreshold: Int = 5

    public init() {}

    /// The delay before restart number `crashes` (1 for the first crash in a row).
    public func backoff(afterCrashes crashes: Int) -> Duration {
        var delay = initialBackoff
        var remaining = max(crashes - 1, 0)
        while remaining > 0 && delay < maximumBackoff {
            delay = delay * 2
            remaining -= 1
        }
        return min(delay, maximumBackoff)
    }
}

public enum StopMode: Sendable, Equatable {
    /// Drain every generation, wait for the workers, exit 0.
    case graceful
    /// SIGKILL every worker's process group, exit once they are reaped.
    case fast
}

/// Who asked for a reload: a control-socket request waits for the outcome; a signal does not.
public struct ReloadRequester: Sendable, Equatable {
    public var id: UInt64?
    public init(id: UInt64? = nil) { self.id = id }
    public static let signal = ReloadRequester()
}

public enum ReloadOutcome: Sendable, Equatable {
    case succeeded(generation: Int, duration: Duration)
    /// `outputOf` names the worker whose last lines of output explain the failure, if one does.
    case failed(generation: Int?, reason: String, outputOf: Int32?)
}

public enum SystemdNotification: Sendable, Equatable {
    /// `READY=1` with a status line (start-up done, or a reload ended, successfully or not).
    case ready(status: String)
    /// `RELOADING=1` with `MONOTONIC_USEC=` (stamped by the runtime when sent).
    case reloading(status: String)
    case stopping(status: String)
    case status(String)
}

public struct LogRecord: Sendable, Equatable {
    public enum Level: Int, Sendable, Comparable {
        case debug, info, notice, warning, error
        public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    public var level: Level
    public var message: String
    /// A worker pid whose last lines of output the runtime quotes after the message.
    public var outputOf: Int32?

    public init(_ level: Level, _ message: String, outputOf: Int32? = nil) {
        self.level = level
        self.message = message
        self.outputOf = outputOf
    }
}

public enum SupervisorEvent: Sendable, Equatable {
    /// The master is up: prepare and start the first generation.
    case start
    case reloadRequested(ReloadRequester)
    /// The runtime prepared generation N (configuration read, listeners bound).
    case generationPrepared(generation: Int, GenerationSettings)
    /// The runtime could not prepare generation N (e.g. an invalid configuration file).
    case generationPreparationFailed(generation: Int, reason: String)
    case workerSpawned(WorkerID, pid: Int32)
    case workerSpawnFailed(WorkerID, reason: String)
    /// `READY=1` from the worker whose main pid is given (the runtime attributes senders). Counts
    /// only with `Readiness.notify`.
    case workerReady(pid: Int32)
    /// The readiness probe run for worker `pid` of that slot (after `.runProbe`) ended.
    case probeExited(WorkerID, pid: Int32, ExitReason)
    /// The readiness probe for worker `pid` of that slot could not be started at all.
    case probeSpawnFailed(WorkerID, pid: Int32, reason: String)
    /// Run this many workers per generation from now on.
    case scaleRequested(ScaleRequest)
    case processExited(pid: Int32, ExitReason)
    /// The process group watched after `.watchGroup` has no member left.
    case groupEmptied(pgid: Int32)
    case timerFired(TimerID)
    case stopRequested(StopMode)
}

public enum SupervisorAction: Sendable, Equatable {
    /// Read what generation N runs with (config, listeners) and answer with `generationPrepared`
    /// or `generationPreparationFailed`.
    case prepareGeneration(Int)
    /// Start a worker of that generation and slot; answer with `workerSpawned` or `workerSpawnFailed`.
    case spawn(WorkerID)
    /// Deliver a signal to a worker: to its process group when `group` is true.
    case signal(pid: Int32, signal: Int32, group: Bool)
    /// Tell a worker to drain and finish within `timeout`: `DRAIN=1` with `TIMEOUT_USEC=` on its
    /// channel when it has an open one (`handoff = "channel"`), else `signal` as `.signal` would.
    case drain(pid: Int32, signal: Int32, group: Bool, timeout: Duration)
    /// Run the readiness probe (`ready_command`) for worker `pid` of that slot; answer with
    /// `probeExited` once it ends, or `probeSpawnFailed`.
    case runProbe(WorkerID, pid: Int32)
    /// The probe of that slot, if one runs, no longer matters: kill it (its exit is not reported).
    case stopProbe(WorkerID)
    case setTimer(TimerID, deadline: MonotonicInstant)
    case cancelTimer(TimerID)
    case log(LogRecord)
    /// Tell these control requests how the reload covering them ended.
    case reloadFinished(requests: [UInt64], ReloadOutcome)
    case notifySystemd(SystemdNotification)
    /// A draining worker's main process exited but its process group may live on (a shell
    /// wrapper dies at once on SIGTERM while its server drains). Answer with `groupEmptied` once no
    /// member is left, at once if none is.
    case watchGroup(pgid: Int32)
    /// A generation and its settings are no longer needed.
    case forgetGeneration(Int)
    case exit(code: Int32)
}
