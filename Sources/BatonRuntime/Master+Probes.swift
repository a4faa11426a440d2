import BatonCore
import CBaton
import Glibc

/// A readiness probe (`ready = "exec"`) that is running: which worker it judges.
struct RunningProbe {
    var id: WorkerID
    var workerPID: pid_t
    /// Killed by `.stopProbe`: its exit is reaped quietly, never reported to the machine.
    var stopped = false
}

/// Readiness probes: `ready_command` started with the spawn shim (new session, the program's
/// credentials and directory, `BATON_WORKER_PID` in its environment), reaped by the master's own
/// reaper, and routed to the machine as `probeExited` rather than as a worker's exit.
extension Master {
    /// Performs `.runProbe`.
    func runProbe(_ id: WorkerID, workerPID: pid_t) {
        guard let config = generationConfigs[id.generation] else {
            dispatch(.probeSpawnFailed(id, pid: workerPID, reason: "its generation is gone"))
            return
        }
        let program = config.program
        var variables = baseEnvironment(program)
        variables.set("BATON_WORKER_PID", String(workerPID))
        variables.set("BATON_GENERATION", String(id.generation))
        variables.set("BATON_WORKER", String(id.index))
        variables.set("BATON_MASTER_PID", String(masterPID))
        do throws(SpawnError) {
            guard !program.readyCommand.isEmpty else {
                throw SpawnError(stage: "resolve", errno: ENOENT, message: "ready_command is empty")
            }
            let pid = try spawnForwardingOutput(
                program.readyCommand, environment: variables.entries, program: program, deathSignal: SIGKILL,
                of: "\(id) probe"
            ) { pid in "[\(program.name) gen=\(id.generation) worker=\(id.index) probe pid=\(pid)] " }
            probes[pid] = RunningProbe(id: id, workerPID: workerPID)
        } catch {
            dispatch(.probeSpawnFailed(id, pid: workerPID, reason: error.message))
        }
    }

    /// Performs `.stopProbe`: the probe's process group is killed; its exit is then reaped quietly.
    func stopProbe(_ id: WorkerID) {
        for (pid, probe) in probes where probe.id == id && !probe.stopped {
            probes[pid]?.stopped = true
            if kill(-pid, SIGKILL) != 0 && errno != ESRCH {
                logger.warning("kill(\(-pid), SIGKILL) for the probe of \(id): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Called by the reaper for every reaped pid: true when it was a probe (reported to the
    /// machine unless it was stopped), false for anything else.
    func reapedProbe(_ pid: pid_t, _ reason: ExitReason) -> Bool {
        guard let probe = probes.removeValue(forKey: pid) else { return false }
        // Flush its last output before it is forgotten.
        for fd in output.drain(pid: pid) {
            reactor.unregister(fd)
            output.finish(fd: fd)
        }
        output.forget(pids: [pid])
        if !probe.stopped {
            dispatch(.probeExited(probe.id, pid: probe.workerPID, reason))
        }
        return true
    }
}
