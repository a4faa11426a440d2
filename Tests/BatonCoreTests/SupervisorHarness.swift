import BatonCore

/// Drives a `Supervisor` the way `Master` does, with pure values only: a fake monotonic clock that
/// tests move by hand, and answers to `.prepareGeneration` and `.spawn` made up on the spot (fake
/// pids, settings or failures the test chose). No process, no socket, no real time.
///
/// `handle(_:)` gives the machine one event and returns its actions unanswered, for asserting one
/// transition exactly. `drive(_:)` also answers every prepare and spawn action at once, as the
/// runtime does, and returns every action in the order the runtime would perform them.
struct SupervisorHarness {
    var machine: Supervisor
    /// The fake `CLOCK_MONOTONIC`; only `advance(by:)` moves it.
    private(set) var now = MonotonicInstant(nanoseconds: 1_000_000_000)
    /// What every generation is prepared with, unless `settingsByGeneration` says otherwise.
    var settings: GenerationSettings
    var settingsByGeneration: [Int: GenerationSettings] = [:]
    /// Generations whose preparation fails, with the reason the runtime gives.
    var preparationFailures: [Int: String] = [:]
    /// Slots whose next spawn fails, with the reason the runtime gives (used once).
    var spawnFailures: [WorkerID: String] = [:]
    /// Process groups that still have members after their worker exited (a shell wrapper's server).
    var lingeringGroups: Set<Int32> = []
    /// The pid of the latest process of each slot.
    private(set) var pids: [WorkerID: Int32] = [:]
    private var nextPID: Int32 = 101

    init(
        workers: Int = 2, readyTimeout: Duration = .seconds(60), drainTimeout: Duration = .seconds(30),
        drainSignal: Int32 = 15, killMode: KillMode = .group, maxDraining: Int = 4,
        readiness: Readiness = .notify, restartPolicy: RestartPolicy = .init()
    ) {
        machine = Supervisor(restartPolicy: restartPolicy)
        settings = GenerationSettings(
            workers: workers, readyTimeout: readyTimeout, drainTimeout: drainTimeout, drainSignal: drainSignal,
            killMode: killMode, maxDraining: maxDraining, readiness: readiness)
    }

    mutating func advance(by duration: Duration) {
        now = now + duration
    }

    func settings(of generation: Int) -> GenerationSettings {
        settingsByGeneration[generation] ?? settings
    }

    /// The pid of the current process of `generation`'s worker `index` (-1 if it has none).
    func pid(_ generation: Int, _ index: Int) -> Int32 {
        pids[WorkerID(generation: generation, index: index)] ?? -1
    }

    func generation(_ number: Int) -> Generation? {
        machine.generations.first { $0.number == number }
    }

    func worker(_ generation: Int, _ index: Int) -> Worker? {
        guard let workers = self.generation(generation)?.workers, index < workers.count else { return nil }
        return workers[index]
    }

    // MARK: - Events

    /// One event at the current time; its actions are returned unanswered.
    mutating func handle(_ event: SupervisorEvent) -> [SupervisorAction] {
        machine.handle(event, at: now)
    }

    /// One event at the current time, every prepare and spawn answered at once (recursively, in
    /// action order, as `Master.perform` does).
    mutating func drive(_ event: SupervisorEvent) -> [SupervisorAction] {
        var performed: [SupervisorAction] = []
        for action in handle(event) {
            performed.append(action)
            switch action {
            case .prepareGeneration(let number):
                if let reason = preparationFailures[number] {
                    performed += drive(.generationPreparationFailed(generation: number, reason: reason))
                } else {
                    performed += drive(.generationPrepared(generation: number, settings(of: number)))
                }
            case .spawn(let id):
                performed += drive(spawnAnswer(id))
            case .watchGroup(let pgid) where !lingeringGroups.contains(pgid):
                // Like the runtime, when nothing else lives in the group it is empty at once.
                performed += drive(.groupEmptied(pgid: pgid))
            default:
                break
            }
        }
        return performed
    }

    /// What the runtime would answer to `.spawn(id)`: a fresh pid, or the failure the test chose.
    private mutating func spawnAnswer(_ id: WorkerID) -> SupervisorEvent {
        if let reason = spawnFailures.removeValue(forKey: id) { return .workerSpawnFailed(id, reason: reason) }
        let pid = nextPID
        nextPID += 1
        pids[id] = pid
        return .workerSpawned(id, pid: pid)
    }

    /// `READY=1` from worker `index` of `generation`.
    mutating func ready(_ generation: Int, _ index: Int) -> [SupervisorAction] {
        drive(.workerReady(pid: pid(generation, index)))
    }

    /// `READY=1` from every worker of `generation` (its slots not retired by a scale-down), in
    /// index order.
    mutating func readyAll(_ generation: Int) -> [SupervisorAction] {
        let slots = self.generation(generation)?.workers.filter { !$0.retired }.map(\.id.index)
            ?? Array(0..<settings(of: generation).workers)
        return slots.flatMap { ready(generation, $0) }
    }

    /// The kernel reports the exit of worker `index` of `generation`.
    mutating func exit(_ generation: Int, _ index: Int, _ reason: ExitReason = .exited(0)) -> [SupervisorAction] {
        drive(.processExited(pid: pid(generation, index), reason))
    }

    /// Every worker of `generation` exits, in index order.
    mutating func exitAll(_ generation: Int, _ reason: ExitReason = .exited(0)) -> [SupervisorAction] {
        (0..<settings(of: generation).workers).flatMap { exit(generation, $0, reason) }
    }

    mutating func reload(id: UInt64? = nil) -> [SupervisorAction] {
        drive(.reloadRequested(ReloadRequester(id: id)))
    }

    mutating func fire(_ timer: TimerID) -> [SupervisorAction] {
        drive(.timerFired(timer))
    }

    // MARK: - Scenarios

    /// Starts the master and makes generation 1 ready: it serves, the phase is running.
    @discardableResult
    mutating func startServing() -> [SupervisorAction] {
        drive(.start) + readyAll(1)
    }

    /// A reload whose new generation becomes ready: it serves and the previous one drains.
    @discardableResult
    mutating func reloadServing(id: UInt64? = nil) -> [SupervisorAction] {
        let requested = reload(id: id)
        guard let number = requested.preparedGenerations.last else { return requested }
        return requested + readyAll(number)
    }
}

/// Views of a list of actions by kind, for asserting the part a test is about.
extension Array where Element == SupervisorAction {
    /// What reaches workers, in order: signals, and drain orders shown as the signal that carries
    /// them without a channel (`.drain(pid, 15, true, _)` as `.signal(pid, 15, true)`). Tests of
    /// the drain timeout look at `drainOrders`.
    var signalsSent: [SupervisorAction] {
        compactMap { action in
            switch action {
            case .signal: return action
            case .drain(let pid, let signal, let group, _): return .signal(pid: pid, signal: signal, group: group)
            default: return nil
            }
        }
    }

    /// The `.drain` actions, timeouts included.
    var drainOrders: [SupervisorAction] {
        filter { if case .drain = $0 { true } else { false } }
    }

    /// The pids that received any signal or drain order.
    var signalledPIDs: Set<Int32> {
        Set(signalsSent.compactMap { if case .signal(let pid, _, _) = $0 { pid } else { nil } })
    }

    var probesRun: [SupervisorAction] {
        filter { if case .runProbe = $0 { true } else { false } }
    }

    var probesStopped: [WorkerID] {
        compactMap { if case .stopProbe(let id) = $0 { id } else { nil } }
    }

    var spawnedIDs: [WorkerID] {
        compactMap { if case .spawn(let id) = $0 { id } else { nil } }
    }

    var preparedGenerations: [Int] {
        compactMap { if case .prepareGeneration(let number) = $0 { number } else { nil } }
    }

    var forgottenGenerations: [Int] {
        compactMap { if case .forgetGeneration(let number) = $0 { number } else { nil } }
    }

    var logRecords: [LogRecord] {
        compactMap { if case .log(let record) = $0 { record } else { nil } }
    }

    var logMessages: [String] { logRecords.map(\.message) }

    /// The first log record whose message contains `text`.
    func log(containing text: String) -> LogRecord? {
        logRecords.first { $0.message.contains(text) }
    }

    var notifications: [SystemdNotification] {
        compactMap { if case .notifySystemd(let notification) = $0 { notification } else { nil } }
    }

    var reloadReplies: [SupervisorAction] {
        filter { if case .reloadFinished = $0 { true } else { false } }
    }

    /// The outcome given to control request `id`, if any.
    func outcome(of id: UInt64) -> ReloadOutcome? {
        for case .reloadFinished(let requests, let outcome) in self where requests.contains(id) { return outcome }
        return nil
    }

    /// Timers set, with their last deadline.
    var timersSet: [TimerID: MonotonicInstant] {
        var timers: [TimerID: MonotonicInstant] = [:]
        for case .setTimer(let timer, let deadline) in self { timers[timer] = deadline }
        return timers
    }

    var timersCancelled: Set<TimerID> {
        Set(compactMap { if case .cancelTimer(let timer) = $0 { timer } else { nil } })
    }

    var exitCodes: [Int32] {
        compactMap { if case .exit(let code) = $0 { code } else { nil } }
    }
}
