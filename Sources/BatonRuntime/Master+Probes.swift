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
        let environment = variables.entries
        let searchPath = environment.last { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) }
        do throws(SpawnError) {
            guard let command = program.readyCommand.first else {
                throw SpawnError(stage: "resolve", errno: ENOENT, message: "ready_command is empty")
            }
            let executable = try ProcessSpawner.resolveExecutable(
                command, searchPath: searchPath, workingDirectory: program.cwd)
            let credentials = try Credentials.lookup(user: program.user, group: program.group)
            let pipes = try makeOutputPipes(program.output)
            let request = SpawnRequest(
                executable: executable, arguments: program.readyCommand, environment: environment,
                standardOutput: pipes.first?.write, standardError: pipes.last?.write,
                workingDirectory: program.cwd, credentials: credentials, deathSignal: SIGKILL)
            let pid: pid_t
            do {
                pid = try ProcessSpawner.spawn(request)
            } catch {
                for pair in pipes { close(pair.read); close(pair.write) }
                throw error
            }
            probes[pid] = RunningProbe(id: id, workerPID: workerPID)
            let prefix = "[\(program.name) gen=\(id.generation) worker=\(id.index) probe pid=\(pid)] "
            forwardOutput(pipes, pid: pid, prefix: prefix, of: "\(id) probe")
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
