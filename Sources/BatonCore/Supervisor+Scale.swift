/// Changing the worker count at run time (`baton scale N`, `SIGTTIN`/`SIGTTOU`). The starting and
/// serving generations take the new count at once (extra slots spawn, surplus ones drain), and
/// every later generation is prepared with it, until the configuration file itself changes
/// `workers`: an edit of the file is the newer decision and wins.
extension Supervisor {
    /// The most workers a generation may run (as the configuration's `workers`).
    public static let maximumWorkers = 4096

    /// A count set at run time, and the configured count it replaced.
    struct ScaledCount: Sendable, Equatable {
        var workers: Int
        /// `workers` from the configuration when the scale was asked for; nil while unknown.
        var configured: Int?
    }

    /// The worker count generations run with now: the last scale, else the configured count of
    /// the latest prepared generation; nil before the first generation was prepared.
    public var workerCount: Int? {
        scaled?.workers ?? configuredWorkers
    }

    mutating func scale(_ request: ScaleRequest) {
        switch phase {
        case .idle, .stopping, .stopped:
            log(.warning, "scale ignored: the master is \(phase == .idle ? "not running yet" : "stopping")")
            return
        case .starting, .running:
            break
        }
        let wanted: Int
        switch request {
        case .to(let count):
            wanted = count
        case .by(let delta):
            guard let current = workerCount else {
                log(.warning, "scale ignored: the worker count is not known yet")
                return
            }
            wanted = current + delta
        }
        let target = min(max(wanted, 1), Self.maximumWorkers)
        if target != wanted {
            log(.warning, "scale: \(wanted) workers is out of range; using \(target)")
        }
        if let current = workerCount, current == target {
            log(.info, "scale: already \(target) worker(s) per generation")
            return
        }
        log(.notice, "scale: \(workerCount.map(String.init) ?? "?") → \(target) workers per generation")
        scaled = ScaledCount(workers: target, configured: configuredWorkers)
        for generation in generations where generation.state == .starting || generation.state == .serving {
            resize(generation: generation.number, to: target)
        }
    }

    /// What a freshly prepared generation runs with: the configuration, or the count set at run
    /// time while the configuration's `workers` stayed what it was.
    mutating func applyScale(to prepared: GenerationSettings, generation number: Int) -> GenerationSettings {
        var settings = prepared
        configuredWorkers = prepared.workers
        guard var scaled else { return settings }
        if scaled.configured == nil { scaled.configured = prepared.workers }
        if scaled.configured == prepared.workers {
            settings.workers = scaled.workers
            self.scaled = scaled
        } else {
            log(.notice, "gen=\(number): workers = \(prepared.workers) from the configuration replaces the scale to \(scaled.workers)")
            self.scaled = nil
        }
        return settings
    }

    /// Gives a starting or serving generation `target` slots: retired slots whose process is gone
    /// are taken again first, then new ones appended; surplus slots, highest index first, retire.
    mutating func resize(generation number: Int, to target: Int) {
        guard let g = generationIndex(number) else { return }
        let active = generations[g].workers.indices.filter { !generations[g].workers[$0].retired }
        generations[g].settings?.workers = target
        if target > active.count {
            var added: [Int] = []
            for w in generations[g].workers.indices where added.count < target - active.count {
                let slot = generations[g].workers[w]
                guard slot.retired, !slot.isLive else { continue }
                generations[g].workers[w] = Worker(id: slot.id, state: .spawning)
                added.append(w)
            }
            while active.count + added.count < target {
                let index = generations[g].workers.count
                generations[g].workers.append(Worker(id: WorkerID(generation: number, index: index), state: .spawning))
                added.append(index)
            }
            for w in added.sorted() {
                actions.append(.cancelTimer(.workerDrain(generations[g].workers[w].id)))
                actions.append(.spawn(generations[g].workers[w].id))
            }
        } else {
            for w in active.suffix(active.count - target) {
                retire(g, w)
            }
            if generations[g].state == .starting && generations[g].isComplete { promote(number) }
        }
    }

    /// A slot removed by scaling down: its process drains (by its own deadline, since its
    /// generation keeps serving) and the slot is never restarted.
    mutating func retire(_ g: Int, _ w: Int) {
        generations[g].workers[w].retired = true
        let worker = generations[g].workers[w]
        let settings = settings(of: g)
        switch worker.state {
        case .starting(let pid, _), .ready(let pid, _):
            if case .starting = worker.state { stopReadinessChecks(g, w) }
            actions.append(.cancelTimer(.workerReady(worker.id)))
            generations[g].workers[w].state = .draining(pid: pid)
            log(.info, "\(worker.id) pid=\(pid) retired by scale: draining")
            actions.append(drainOrder(pid: pid, settings, timeout: settings.drainTimeout))
            actions.append(.setTimer(.workerDrain(worker.id), deadline: now + settings.drainTimeout))
        case .waitingRestart:
            generations[g].workers[w].state = .gone
            actions.append(.cancelTimer(.respawn(worker.id)))
            log(.info, "\(worker.id) retired by scale (it was waiting for a restart)")
        case .spawning:
            // Drained as soon as its spawn is reported.
            break
        case .draining, .killed, .lingering, .gone:
            break
        }
    }

    /// A retired worker outlived its drain deadline.
    mutating func retiredDrainTimedOut(_ id: WorkerID) {
        guard let g = generationIndex(id.generation), id.index < generations[g].workers.count,
            generations[g].workers[id.index].retired,
            case .draining(let pid) = generations[g].workers[id.index].state
        else { return }
        let settings = settings(of: g)
        log(.warning, "\(id) pid=\(pid) drain timeout (\(DurationText.format(settings.drainTimeout))): killing it")
        generations[g].workers[id.index].state = .killed(pid: pid)
        actions.append(.signal(pid: pid, signal: 9, group: settings.killMode == .group))
    }
}
