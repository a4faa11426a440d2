/// The supervisor's every decision, as a pure state machine: events in, actions out. It performs
/// no I/O and reads no clock; the runtime feeds it events with their time and performs the actions
/// it returns, in order.
public struct Supervisor: Sendable {
    public enum Phase: Sendable, Equatable {
        case idle
        /// The first generation is being started.
        case starting
        case running
        case stopping(StopMode)
        case stopped
    }

    /// The reload (or the initial start) whose generation is being prepared or started.
    struct ActiveReload: Sendable, Equatable {
        var generation: Int
        var requesters: [ReloadRequester]
        var startedAt: MonotonicInstant
        var isInitial: Bool
    }

    public struct ReloadRecord: Sendable, Equatable {
        public var outcome: ReloadOutcome
        public var finishedAt: MonotonicInstant
    }

    public internal(set) var phase: Phase = .idle
    /// Live generations, oldest first.
    public internal(set) var generations: [Generation] = []
    public internal(set) var lastReload: ReloadRecord?
    public let restartPolicy: RestartPolicy

    var nextGeneration = 1
    var activeReload: ActiveReload?
    /// Requests that arrived during a reload, served together by one follow-up reload.
    var pendingReload: [ReloadRequester]?
    var exitCode: Int32 = 0
    /// The worker count set at run time (`scale`, TTIN/TTOU), if any; see `Supervisor+Scale`.
    var scaled: ScaledCount?
    /// `workers` as the configuration gave it for the latest prepared generation.
    var configuredWorkers: Int?
    var now = MonotonicInstant(nanoseconds: 0)
    var actions: [SupervisorAction] = []

    public init(restartPolicy: RestartPolicy = .init()) {
        self.restartPolicy = restartPolicy
    }

    /// The generation that serves traffic now, if any.
    public var servingGeneration: Generation? {
        generations.last { $0.state == .serving }
    }

    /// Handles one event that happened at `time` and returns what the runtime must do, in order.
    public mutating func handle(_ event: SupervisorEvent, at time: MonotonicInstant) -> [SupervisorAction] {
        now = max(now, time)
        actions = []
        switch event {
        case .start: start()
        case .reloadRequested(let requester): requestReload(requester)
        case .generationPrepared(let number, let settings): generationPrepared(number, settings)
        case .generationPreparationFailed(let number, let reason): generationPreparationFailed(number, reason)
        case .workerSpawned(let id, let pid): workerSpawned(id, pid: pid)
        case .workerSpawnFailed(let id, let reason): workerSpawnFailed(id, reason: reason)
        case .workerReady(let pid): workerReady(pid: pid)
        case .probeExited(let id, let pid, let reason): probeExited(id, pid: pid, reason: reason)
        case .probeSpawnFailed(let id, let pid, let reason): probeSpawnFailed(id, pid: pid, reason: reason)
        case .scaleRequested(let request): scale(request)
        case .processExited(let pid, let reason): processExited(pid: pid, reason: reason)
        case .groupEmptied(let pgid): groupEmptied(pgid: pgid)
        case .timerFired(let timer): timerFired(timer)
        case .stopRequested(let mode): stop(mode)
        }
        return actions
    }

    // MARK: - Start and stop

    mutating func start() {
        guard phase == .idle else {
            log(.warning, "start ignored: the master is already \(phase)")
            return
        }
        phase = .starting
        beginGeneration(requesters: [], isInitial: true)
    }

    mutating func stop(_ mode: StopMode) {
        switch phase {
        case .idle, .stopped:
            phase = .stopped
            actions.append(.exit(code: exitCode))
            return
        case .stopping(.fast):
            return
        case .stopping(.graceful) where mode == .graceful:
            return
        case .starting, .running, .stopping:
            break
        }
        let wasStopping = phase != .starting && phase != .running
        phase = .stopping(mode)
        if !wasStopping {
            log(.notice, mode == .graceful ? "stopping: draining every generation" : "stopping now: killing every worker")
            actions.append(.notifySystemd(.stopping(status: "stopping")))
        } else {
            log(.notice, "stopping now: killing every worker")
        }
        let interrupted = activeReload.map { [$0] } ?? []
        for reload in interrupted {
            finishReload(reload, .failed(generation: reload.generation, reason: "the master is stopping", outputOf: nil))
        }
        activeReload = nil
        if let pending = pendingReload {
            pendingReload = nil
            reply(pending, .failed(generation: nil, reason: "the master is stopping", outputOf: nil))
        }
        for number in generations.map(\.number) {
            guard let index = generationIndex(number) else { continue }
            if generations[index].state == .preparing {
                generations.remove(at: index)
                actions.append(.forgetGeneration(number))
                continue
            }
            cancelWorkerTimers(generation: number)
            actions.append(.cancelTimer(.generationReady(generation: number)))
            if mode == .fast {
                kill(generation: number)
            } else if !generations[index].state.isWindingDown {
                drain(generation: number, reason: "stopping")
            }
        }
        removeFinishedGenerations()
        exitIfStopped()
    }

    mutating func exitIfStopped() {
        guard case .stopping = phase, generations.allSatisfy({ $0.liveWorkers == 0 }) else { return }
        for generation in generations {
            actions.append(.cancelTimer(.drain(generation: generation.number)))
            actions.append(.forgetGeneration(generation.number))
        }
        generations.removeAll()
        phase = .stopped
        log(.notice, "stopped")
        actions.append(.exit(code: exitCode))
    }

    // MARK: - Reloads

    mutating func requestReload(_ requester: ReloadRequester) {
        switch phase {
        case .idle, .stopped, .stopping:
            reply([requester], .failed(generation: nil, reason: "the master is stopping", outputOf: nil))
            return
        case .starting:
            pendingReload = (pendingReload ?? []) + [requester]
            log(.info, "reload requested during start-up: it follows once the first generation serves")
            return
        case .running:
            break
        }
        actions.append(.notifySystemd(.reloading(status: "reloading")))
        if let active = activeReload {
            pendingReload = (pendingReload ?? []) + [requester]
            log(.info, "reload requested while gen=\(active.generation) starts: coalesced into one follow-up reload")
            return
        }
        beginGeneration(requesters: [requester], isInitial: false)
    }

    mutating func beginGeneration(requesters: [ReloadRequester], isInitial: Bool) {
        let number = nextGeneration
        nextGeneration += 1
        generations.append(Generation(number: number, state: .preparing, createdAt: now))
        activeReload = ActiveReload(generation: number, requesters: requesters, startedAt: now, isInitial: isInitial)
        log(.info, isInitial ? "gen=\(number) starting" : "reload: gen=\(number) starting")
        actions.append(.prepareGeneration(number))
    }

    mutating func generationPrepared(_ number: Int, _ prepared: GenerationSettings) {
        guard let index = generationIndex(number), generations[index].state == .preparing else { return }
        let settings = applyScale(to: prepared, generation: number)
        generations[index].settings = settings
        generations[index].state = .starting
        generations[index].workers = (0..<settings.workers).map {
            Worker(id: WorkerID(generation: number, index: $0), state: .spawning)
        }
        actions.append(.setTimer(.generationReady(generation: number), deadline: now + settings.readyTimeout))
        for worker in generations[index].workers {
            actions.append(.spawn(worker.id))
        }
    }

    mutating func generationPreparationFailed(_ number: Int, _ reason: String) {
        guard let index = generationIndex(number), generations[index].state == .preparing else { return }
        generations.remove(at: index)
        actions.append(.forgetGeneration(number))
        concludeFailedReload(number, reason: reason, outputOf: nil)
    }

    /// Every new worker is ready: the new generation serves and the older ones drain.
    mutating func promote(_ number: Int) {
        guard let index = generationIndex(number) else { return }
        generations[index].state = .serving
        generations[index].servingSince = now
        actions.append(.cancelTimer(.generationReady(generation: number)))
        let generation = generations[index]
        let took = DurationText.format(now.duration(since: generation.createdAt))
        log(.info, "gen=\(number) serving: \(generation.readyWorkers)/\(generation.size) ready in \(took)")
        for older in generations where older.number < number && older.state == .serving {
            drain(generation: older.number, reason: "replaced by gen=\(number)")
        }
        enforceMaxDraining(limit: generation.settings?.maxDraining ?? 4)
        removeFinishedGenerations()
        guard let reload = activeReload, reload.generation == number else { return }
        activeReload = nil
        let duration = now.duration(since: reload.startedAt)
        if reload.isInitial {
            phase = .running
            actions.append(.notifySystemd(.ready(status: servingStatus())))
        } else {
            log(.notice, "reload ok: gen=\(number) serving in \(DurationText.format(duration))")
        }
        finishReload(reload, .succeeded(generation: number, duration: duration))
        startPendingReload(afterStartUp: reload.isInitial)
    }

    /// The new generation will not serve: the older one keeps serving.
    mutating func fail(generation number: Int, reason: String, outputOf pid: Int32?) {
        guard let index = generationIndex(number) else { return }
        generations[index].state = .failed(since: now)
        actions.append(.cancelTimer(.generationReady(generation: number)))
        cancelWorkerTimers(generation: number)
        drain(generation: number, reason: "failed")
        concludeFailedReload(number, reason: reason, outputOf: pid)
        removeFinishedGenerations()
        exitIfStopped()
    }

    mutating func concludeFailedReload(_ number: Int, reason: String, outputOf pid: Int32?) {
        guard let reload = activeReload, reload.generation == number else { return }
        activeReload = nil
        let fullReason = "gen=\(number) failed: \(reason)"
        if reload.isInitial {
            log(.error, "\(fullReason); start-up failed", outputOf: pid)
            exitCode = 1
            finishReload(reload, .failed(generation: number, reason: reason, outputOf: pid))
            if let pending = pendingReload {
                pendingReload = nil
                reply(pending, .failed(generation: nil, reason: "start-up failed", outputOf: nil))
            }
            stop(.graceful)
            return
        }
        let serving = servingGeneration.map { "gen=\($0.number) keeps serving" } ?? "no generation serves"
        log(.error, "reload failed: \(fullReason); \(serving)", outputOf: pid)
        finishReload(reload, .failed(generation: number, reason: reason, outputOf: pid))
        startPendingReload()
    }

    mutating func startPendingReload(afterStartUp: Bool = false) {
        guard activeReload == nil, phase == .running, let pending = pendingReload else { return }
        pendingReload = nil
        if afterStartUp {
            // Requests during start-up announced nothing (systemd was still waiting for READY=1).
            actions.append(.notifySystemd(.reloading(status: "reloading")))
        }
        beginGeneration(requesters: pending, isInitial: false)
    }

    mutating func finishReload(_ reload: ActiveReload, _ outcome: ReloadOutcome) {
        if !reload.isInitial {
            lastReload = ReloadRecord(outcome: outcome, finishedAt: now)
            // systemd's reload ends with READY=1; a coalesced follow-up reload still to come
            // keeps it open, so READY=1 waits for the reload that covers the last request.
            if case .stopping = phase {} else if pendingReload == nil {
                actions.append(.notifySystemd(.ready(status: servingStatus())))
            }
        }
        reply(reload.requesters, outcome)
    }

    mutating func reply(_ requesters: [ReloadRequester], _ outcome: ReloadOutcome) {
        let ids = requesters.compactMap(\.id)
        if !ids.isEmpty { actions.append(.reloadFinished(requests: ids, outcome)) }
    }

    /// The one-line status for systemd: `gen 7 serving: 4/4 ready; last reload ok in 212ms`.
    public func servingStatus() -> String {
        var status = "no generation serving"
        if let serving = servingGeneration {
            status = "gen \(serving.number) serving: \(serving.readyWorkers)/\(serving.size) ready"
        }
        switch lastReload?.outcome {
        case .succeeded(_, let duration)?: status += "; last reload ok in \(DurationText.format(duration))"
        case .failed(_, let reason, _)?: status += "; last reload failed: \(reason)"
        case nil: break
        }
        return status
    }

    // MARK: - Helpers shared by the extensions

    mutating func log(_ level: LogRecord.Level, _ message: String, outputOf pid: Int32? = nil) {
        actions.append(.log(LogRecord(level, message, outputOf: pid)))
    }

    func generationIndex(_ number: Int) -> Int? {
        generations.firstIndex { $0.number == number }
    }

    func locate(pid: Int32) -> (generation: Int, worker: Int)? {
        for (g, generation) in generations.enumerated() {
            if let w = generation.workers.firstIndex(where: { $0.pid == pid }) { return (g, w) }
        }
        return nil
    }
}
