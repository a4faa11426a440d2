import BatonCore

/// Progress events for clients that wait for a reload (`reload --wait`), derived from how the
/// state machine's generations changed while it handled one event. Comparing snapshots keeps the
/// events exactly in step with the machine, with no bookkeeping of its own.
public enum ControlProgress {
    /// What changed from `old` to `new` (`Supervisor.generations` before and after `handle`), in
    /// generation and worker order; a generation that starts serving comes before the ones that
    /// drain because of it.
    public static func events(from old: [Generation], to new: [Generation]) -> [ControlEvent] {
        var events: [ControlEvent] = []
        var serving: [ControlEvent] = []
        var windingDown: [ControlEvent] = []
        for generation in new {
            let previous = old.first { $0.number == generation.number }
            if previous == nil {
                events.append(ControlEvent(.reloading, generation: generation.number))
            }
            for worker in generation.workers {
                let prior = previous?.workers.first { $0.id == worker.id }
                guard prior?.state != worker.state else { continue }
                let number = generation.number
                switch worker.state {
                case .starting(let pid, _) where prior?.pid != pid:
                    events.append(ControlEvent(.spawned, generation: number, worker: worker.id.index, pid: pid))
                case .ready(let pid, _):
                    events.append(ControlEvent(.ready, generation: number, worker: worker.id.index, pid: pid))
                case .waitingRestart, .lingering, .gone:
                    if let pid = prior?.pid {
                        events.append(ControlEvent(.exited, generation: number, worker: worker.id.index, pid: pid))
                    }
                case .spawning, .starting, .draining, .killed:
                    break
                }
            }
            guard let previous, previous.state != generation.state else { continue }
            switch generation.state {
            case .serving: serving.append(ControlEvent(.serving, generation: generation.number))
            case .draining: windingDown.append(ControlEvent(.draining, generation: generation.number))
            case .failed: windingDown.append(ControlEvent(.failed, generation: generation.number))
            case .preparing, .starting: break
            }
        }
        // A generation whose last worker just ended is removed within the same step: report what
        // ended with it.
        for generation in old where !new.contains(where: { $0.number == generation.number }) {
            for worker in generation.workers {
                if let pid = worker.pid {
                    events.append(ControlEvent(.exited, generation: generation.number, worker: worker.id.index, pid: pid))
                }
            }
            if generation.state == .starting || generation.state == .preparing {
                windingDown.append(ControlEvent(.failed, generation: generation.number))
            }
        }
        return events + serving + windingDown
    }
}
