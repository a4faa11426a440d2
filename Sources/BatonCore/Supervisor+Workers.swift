extension Supervisor {
    // MARK: - Worker events

    mutating func workerSpawned(_ id: WorkerID, pid: Int32) {
        guard let g = generationIndex(id.generation), id.index < generations[g].workers.count,
            generations[g].workers[id.index].state == .spawning
        else {
            // Nothing expects this process (its generation was given up meanwhile): end it.
            log(.warning, "\(id) pid=\(pid) started for a generation that is gone; killing it")
            actions.append(.signal(pid: pid, signal: 9, group: true))
            return
        }
        generations[g].workers[id.index].startedAt = now
        log(.info, "\(id) pid=\(pid) spawned")
        if phase == .stopping(.fast) {
            generations[g].workers[id.index].state = .killed(pid: pid)
            actions.append(.signal(pid: pid, signal: 9, group: generations[g].settings?.killMode != .process))
            return
        }
        generations[g].workers[id.index].state = .starting(pid: pid, since: now)
        let generation = generations[g]
        let settings = settings(of: g)
        if generation.state.isWindingDown {
            // Its generation gave up while it started: it drains with the others, by their deadline.
            generations[g].workers[id.index].state = .draining(pid: pid)
            let deadline = generation.drainDeadline ?? now + settings.drainTimeout
            actions.append(drainOrder(pid: pid, settings, timeout: deadline.duration(since: now)))
            return
        }
        if generation.workers[id.index].retired {
            // A scale-down retired the slot while its process started.
            generations[g].workers[id.index].state = .draining(pid: pid)
            actions.append(drainOrder(pid: pid, settings, timeout: settings.drainTimeout))
            actions.append(.setTimer(.workerDrain(id), deadline: now + settings.drainTimeout))
            return
        }
        if generation.state == .serving {
            actions.append(.setTimer(.workerReady(id), deadline: now + settings.readyTimeout))
        }
        startReadinessChecks(g, id.index)
    }

    mutating func workerSpawnFailed(_ id: WorkerID, reason: String) {
        guard let g = generationIndex(id.generation), id.index < generations[g].workers.count,
            generations[g].workers[id.index].state == .spawning
        else { return }
        generations[g].workers[id.index].state = .gone
        if generations[g].workers[id.index].retired {
            log(.warning, "\(id) could not be started: \(reason)")
            removeFinishedGenerations()
            exitIfStopped()
            return
        }
        switch generations[g].state {
        case .starting:
            fail(generation: id.generation, reason: "worker=\(id.index): \(reason)", outputOf: nil)
        case .serving:
            scheduleRestart(g, id.index, lived: .zero, what: "\(id) could not be started: \(reason)", outputOf: nil)
        case .preparing, .draining, .failed:
            removeFinishedGenerations()
            exitIfStopped()
        }
    }

    /// `READY=1` from a worker. It counts only when the generation's readiness is `notify`.
    mutating func workerReady(pid: Int32) {
        guard let (g, w) = locate(pid: pid), case .starting = generations[g].workers[w].state else { return }
        let readiness = settings(of: g).readiness
        guard readiness == .notify else {
            log(.debug, "\(generations[g].workers[w].id) pid=\(pid) sent READY=1: ignored, readiness is \(readiness)")
            return
        }
        becomeReady(g, w)
    }

    /// A starting worker is ready, by whatever its generation's readiness says.
    mutating func becomeReady(_ g: Int, _ w: Int) {
        guard case .starting(let pid, let since) = generations[g].workers[w].state else { return }
        let id = generations[g].workers[w].id
        generations[g].workers[w].state = .ready(pid: pid, since: now)
        log(.info, "\(id) pid=\(pid) ready in \(DurationText.format(now.duration(since: since)))")
        // Readiness came from the probe or the timer itself: only their timers are left to cancel.
        cancelReadinessTimers(g, w)
        switch generations[g].state {
        case .starting:
            if generations[g].isComplete { promote(id.generation) }
        case .serving:
            actions.append(.cancelTimer(.workerReady(id)))
        case .preparing, .draining, .failed:
            break
        }
    }

    mutating func processExited(pid: Int32, reason: ExitReason) {
        guard let (g, w) = locate(pid: pid) else {
            log(.debug, "reaped pid=\(pid) (\(reason)), not a worker")
            return
        }
        let worker = generations[g].workers[w]
        let generation = generations[g]
        let settings = settings(of: g)
        let group = settings.killMode == .group
        if case .starting = worker.state { stopReadinessChecks(g, w) }
        if worker.retired {
            actions.append(.cancelTimer(.workerDrain(worker.id)))
            workerEnded(g, w, pid: pid, reason: reason)
            return
        }
        // Stability counts from readiness: a replacement that never got ready did not run well.
        let lived: Duration
        if case .ready(_, let since) = worker.state { lived = now.duration(since: since) } else { lived = .zero }
        switch generation.state {
        case .starting:
            // Whatever the failed worker left in its process group goes with it.
            if group { actions.append(.signal(pid: pid, signal: 9, group: true)) }
            generations[g].workers[w].state = .gone
            let when = worker.isReady ? "after ready, before its generation was complete" : "before ready"
            fail(
                generation: generation.number,
                reason: "worker=\(worker.id.index) pid=\(pid) \(reason) \(when)", outputOf: pid)
        case .serving where !isStopping:
            if group { actions.append(.signal(pid: pid, signal: 9, group: true)) }
            if case .starting = worker.state { actions.append(.cancelTimer(.workerReady(worker.id))) }
            scheduleRestart(g, w, lived: lived, what: "\(worker.id) pid=\(pid) \(reason)", outputOf: pid)
        case .preparing, .serving, .draining, .failed:
            workerEnded(g, w, pid: pid, reason: reason)
        }
    }

    /// A worker that was on its way out (draining, killed, retired) exited.
    mutating func workerEnded(_ g: Int, _ w: Int, pid: Int32, reason: ExitReason) {
        let worker = generations[g].workers[w]
        let level: LogRecord.Level = reason.isClean ? .info : .warning
        log(level, "\(worker.id) pid=\(pid) \(reason)", outputOf: reason.isClean ? nil : pid)
        if settings(of: g).killMode == .group {
            // The rest of its group (a shell wrapper's server) may still be draining.
            generations[g].workers[w].state = .lingering(pgid: pid)
            actions.append(.watchGroup(pgid: pid))
            return
        }
        generations[g].workers[w].state = .gone
        removeFinishedGenerations()
        exitIfStopped()
    }

    mutating func groupEmptied(pgid: Int32) {
        for g in generations.indices {
            for w in generations[g].workers.indices where generations[g].workers[w].state == .lingering(pgid: pgid) {
                generations[g].workers[w].state = .gone
            }
        }
        removeFinishedGenerations()
        exitIfStopped()
    }

    /// A serving worker crashed: start it again after the backoff, and say so if it keeps crashing.
    mutating func scheduleRestart(_ g: Int, _ w: Int, lived: Duration, what: String, outputOf pid: Int32?) {
        if lived >= restartPolicy.stableAfter { generations[g].workers[w].crashesInARow = 0 }
        generations[g].workers[w].crashesInARow += 1
        generations[g].workers[w].restarts += 1
        let crashes = generations[g].workers[w].crashesInARow
        let delay = restartPolicy.backoff(afterCrashes: crashes)
        let id = generations[g].workers[w].id
        generations[g].workers[w].state = .waitingRestart(until: now + delay)
        actions.append(.setTimer(.respawn(id), deadline: now + delay))
        log(.warning, "\(what); restarting in \(DurationText.format(delay))", outputOf: pid)
        if crashes >= restartPolicy.crashLoopThreshold {
            log(.error, "\(id) crash loop: \(crashes) crashes in a row; next restart in \(DurationText.format(delay))")
        }
    }

    mutating func timerFired(_ timer: TimerID) {
        switch timer {
        case .generationReady(let number):
            guard let g = generationIndex(number), generations[g].state == .starting else { return }
            let generation = generations[g]
            let timeout = DurationText.format(generation.settings?.readyTimeout ?? .zero)
            let laggard = generation.workers.first { !$0.retired && !$0.isReady }
            let who = laggard.map { " (worker=\($0.id.index)\($0.pid.map { " pid=\($0)" } ?? ""))" } ?? ""
            fail(
                generation: number,
                reason: "not ready within \(timeout): \(generation.readyWorkers)/\(generation.size) workers ready\(who)",
                outputOf: laggard?.pid)
        case .workerReady(let id):
            guard let g = generationIndex(id.generation), id.index < generations[g].workers.count,
                case .starting(let pid, _) = generations[g].workers[id.index].state
            else { return }
            log(.warning, "\(id) pid=\(pid) not ready in time; killing it", outputOf: pid)
            stopReadinessChecks(g, id.index)
            actions.append(.signal(pid: pid, signal: 9, group: generations[g].settings?.killMode != .process))
        case .drain(let number):
            guard let g = generationIndex(number) else { return }
            let live = generations[g].workers.filter { $0.isLive && $0.state != .spawning }
            guard !live.isEmpty else { return }
            let timeout = DurationText.format(generations[g].settings?.drainTimeout ?? .zero)
            log(.warning, "gen=\(number) drain timeout (\(timeout)): killing \(live.count) worker(s)")
            kill(generation: number)
        case .respawn(let id):
            guard !isStopping, let g = generationIndex(id.generation), generations[g].state == .serving,
                id.index < generations[g].workers.count, !generations[g].workers[id.index].retired,
                case .waitingRestart = generations[g].workers[id.index].state
            else { return }
            generations[g].workers[id.index].state = .spawning
            actions.append(.spawn(id))
        case .readyDelay(let id):
            readyDelayPassed(id)
        case .probe(let id):
            probeDue(id)
        case .workerDrain(let id):
            retiredDrainTimedOut(id)
        }
    }

    // MARK: - Draining and killing

    /// How the machine tells a worker to drain; the runtime picks its channel or the signal.
    func drainOrder(pid: Int32, _ settings: GenerationSettings, timeout: Duration) -> SupervisorAction {
        // A zero timeout would read as "no deadline" to a worker: the kill comes at once anyway.
        .drain(pid: pid, signal: settings.drainSignal, group: settings.killMode == .group,
               timeout: max(timeout, .milliseconds(1)))
    }

    /// Tells every live worker of a generation to drain and starts its drain deadline.
    mutating func drain(generation number: Int, reason: String) {
        guard let g = generationIndex(number) else { return }
        let settings = settings(of: g)
        if case .failed = generations[g].state {} else { generations[g].state = .draining(since: now) }
        let deadline = now + settings.drainTimeout
        generations[g].drainDeadline = deadline
        for w in generations[g].workers.indices {
            let worker = generations[g].workers[w]
            switch worker.state {
            case .starting(let pid, _), .ready(let pid, _):
                if case .starting = worker.state { stopReadinessChecks(g, w) }
                generations[g].workers[w].state = .draining(pid: pid)
                actions.append(drainOrder(pid: pid, settings, timeout: settings.drainTimeout))
            case .waitingRestart:
                generations[g].workers[w].state = .gone
            case .spawning, .draining, .killed, .lingering, .gone:
                break
            }
        }
        cancelWorkerTimers(generation: number)
        if generations[g].liveWorkers > 0 {
            log(.info, "gen=\(number) draining (\(reason))")
            actions.append(.setTimer(.drain(generation: number), deadline: deadline))
        }
    }

    /// SIGKILLs every live worker's process group (or process, with `kill_mode = "process"`).
    mutating func kill(generation number: Int) {
        guard let g = generationIndex(number) else { return }
        let group = generations[g].settings?.killMode != .process
        for w in generations[g].workers.indices {
            switch generations[g].workers[w].state {
            case .starting(let pid, _), .ready(let pid, _), .draining(let pid):
                if case .starting = generations[g].workers[w].state { stopReadinessChecks(g, w) }
                generations[g].workers[w].state = .killed(pid: pid)
                actions.append(.signal(pid: pid, signal: 9, group: group))
            case .lingering(let pgid):
                actions.append(.signal(pid: pgid, signal: 9, group: true))
            case .waitingRestart:
                generations[g].workers[w].state = .gone
            case .spawning, .killed, .gone:
                break
            }
        }
        cancelWorkerTimers(generation: number)
    }

    /// Beyond `limit` draining generations, the oldest are killed.
    mutating func enforceMaxDraining(limit: Int) {
        let draining = generations.filter { generation in
            generation.isDraining && generation.workers.contains { if case .draining = $0.state { true } else { false } }
        }.map(\.number)
        guard draining.count > limit else { return }
        for number in draining.prefix(draining.count - limit) {
            log(.warning, "gen=\(number) killed: more than \(limit) generations draining")
            kill(generation: number)
        }
    }

    mutating func cancelWorkerTimers(generation number: Int) {
        guard let g = generationIndex(number) else { return }
        for worker in generations[g].workers {
            switch worker.state {
            case .gone, .waitingRestart, .draining, .killed, .lingering:
                actions.append(.cancelTimer(.respawn(worker.id)))
            case .starting, .ready, .spawning:
                break
            }
            actions.append(.cancelTimer(.workerReady(worker.id)))
        }
    }

    /// Draining and failed generations with no process left are done.
    mutating func removeFinishedGenerations() {
        for generation in generations where generation.state.isWindingDown && generation.liveWorkers == 0 {
            actions.append(.cancelTimer(.drain(generation: generation.number)))
            switch generation.state {
            case .draining(let since):
                log(.info, "gen=\(generation.number) exited, drained in \(DurationText.format(now.duration(since: since)))")
            default:
                log(.info, "gen=\(generation.number) exited")
            }
            actions.append(.forgetGeneration(generation.number))
        }
        generations.removeAll { $0.state.isWindingDown && $0.liveWorkers == 0 }
    }

    var isStopping: Bool {
        if case .stopping = phase { return true }
        return false
    }

    /// The settings of the generation at index `g` (known once it was prepared).
    func settings(of g: Int) -> GenerationSettings {
        generations[g].settings ?? GenerationSettings(workers: generations[g].workers.count)
    }
}
