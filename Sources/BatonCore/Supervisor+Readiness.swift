/// Readiness for programs that never notify (`ready = "exec"`, `"delay"`, `"spawn"`). Each is a
/// timer or a probe of one starting worker; all stay bounded by `ready_timeout` (the generation's
/// ready deadline, or a replacement worker's own).
extension Supervisor {
    /// A worker just started (its `execve` succeeded): begin judging its readiness.
    mutating func startReadinessChecks(_ g: Int, _ w: Int) {
        guard case .starting(let pid, _) = generations[g].workers[w].state else { return }
        let id = generations[g].workers[w].id
        switch settings(of: g).readiness {
        case .notify:
            break
        case .spawn:
            becomeReady(g, w)
        case .delay(let delay):
            if delay <= .zero {
                becomeReady(g, w)
            } else {
                actions.append(.setTimer(.readyDelay(id), deadline: now + delay))
            }
        case .exec:
            // The first probe runs at once: the listeners were bound before the worker started,
            // so a fast worker can be ready before a first interval would have passed.
            actions.append(.runProbe(id, pid: pid))
        }
    }

    /// The worker no longer waits for readiness (it drains, is killed or exited): its timers go
    /// and a probe still running is killed.
    mutating func stopReadinessChecks(_ g: Int, _ w: Int) {
        cancelReadinessTimers(g, w)
        if case .exec = settings(of: g).readiness {
            actions.append(.stopProbe(generations[g].workers[w].id))
        }
    }

    mutating func cancelReadinessTimers(_ g: Int, _ w: Int) {
        let id = generations[g].workers[w].id
        switch settings(of: g).readiness {
        case .notify, .spawn: break
        case .delay: actions.append(.cancelTimer(.readyDelay(id)))
        case .exec: actions.append(.cancelTimer(.probe(id)))
        }
    }

    mutating func readyDelayPassed(_ id: WorkerID) {
        guard let (g, w) = startingSlot(id) else { return }
        becomeReady(g, w)
    }

    mutating func probeDue(_ id: WorkerID) {
        guard let (g, w) = startingSlot(id), case .starting(let pid, _) = generations[g].workers[w].state,
            case .exec = settings(of: g).readiness
        else { return }
        actions.append(.runProbe(id, pid: pid))
    }

    mutating func probeExited(_ id: WorkerID, pid: Int32, reason: ExitReason) {
        // A probe of an earlier process of the slot, or of a worker that stopped waiting, is moot.
        guard let (g, w) = startingSlot(id), generations[g].workers[w].pid == pid,
            case .exec(let interval) = settings(of: g).readiness
        else { return }
        if reason.isClean {
            becomeReady(g, w)
            return
        }
        log(.debug, "\(id) pid=\(pid) not ready yet: probe \(reason); next in \(DurationText.format(interval))")
        actions.append(.setTimer(.probe(id), deadline: now + interval))
    }

    /// The probe command cannot run at all, so the worker can never be judged ready: say why now
    /// rather than at the ready deadline.
    mutating func probeSpawnFailed(_ id: WorkerID, pid: Int32, reason: String) {
        guard let (g, w) = startingSlot(id), generations[g].workers[w].pid == pid else { return }
        let what = "ready_command cannot run: \(reason)"
        cancelReadinessTimers(g, w)
        switch generations[g].state {
        case .starting:
            fail(generation: id.generation, reason: "worker=\(id.index) pid=\(pid): \(what)", outputOf: nil)
        case .serving:
            log(.error, "\(id) pid=\(pid): \(what); killing it")
            actions.append(.signal(pid: pid, signal: 9, group: settings(of: g).killMode == .group))
        case .preparing, .draining, .failed:
            break
        }
    }

    /// The indices of slot `id` when its process is still starting.
    func startingSlot(_ id: WorkerID) -> (Int, Int)? {
        guard let g = generationIndex(id.generation), id.index < generations[g].workers.count,
            case .starting = generations[g].workers[id.index].state
        else { return nil }
        return (g, id.index)
    }
}
