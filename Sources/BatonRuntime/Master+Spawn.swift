import BatonCore
import CBaton
import Glibc

extension Master {
    /// Variables of the master's own environment that describe the master, never its workers.
    static let scrubbedVariables: Set<String> = [
        "NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "WATCHDOG_PID", "WATCHDOG_USEC",
        "BATON_CONTROL",
    ]

    /// Starts one worker of a generation with the listeners at fds 3... and its environment.
    func spawnWorker(_ id: WorkerID) -> SupervisorEvent {
        guard let config = generationConfigs[id.generation], let handed = generationSockets[id.generation], let notify else {
            return .workerSpawnFailed(id, reason: "its generation is gone")
        }
        let program = config.program
        let environment = workerEnvironment(id, config: config, sockets: handed, notifyAddress: notify.address)
        let searchPath = environment.last { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) }
        do throws(SpawnError) {
            let executable = try ProcessSpawner.resolveExecutable(
                program.command[0], searchPath: searchPath, workingDirectory: program.cwd)
            let credentials = try Credentials.lookup(user: program.user, group: program.group)
            var pipes: [(read: CInt, write: CInt)] = []
            if program.output == .forward {
                for _ in 0..<2 {
                    var ends: [CInt] = [-1, -1]
                    guard pipe(&ends) == 0 else {
                        for pair in pipes { close(pair.read); close(pair.write) }
                        throw SpawnError(stage: "pipe", errno: errno, message: "cannot create an output pipe: \(String(cString: strerror(errno)))")
                    }
                    _ = baton_set_cloexec(ends[0], 1)
                    _ = baton_set_cloexec(ends[1], 1)
                    pipes.append((ends[0], ends[1]))
                }
            }
            let request = SpawnRequest(
                executable: executable, arguments: program.command, environment: environment,
                setsListenPID: program.handoff == .listenFDs, fds: handed.map(\.fd),
                standardOutput: pipes.first?.write, standardError: pipes.last?.write,
                workingDirectory: program.cwd, credentials: credentials, deathSignal: program.drainSignal)
            let pid: pid_t
            do {
                pid = try ProcessSpawner.spawn(request)
            } catch {
                for pair in pipes { close(pair.read); close(pair.write) }
                throw error
            }
            workers[pid] = id
            pidsByGeneration[id.generation, default: []].append(pid)
            let prefix = "[\(program.name) gen=\(id.generation) pid=\(pid)] "
            for (index, pair) in pipes.enumerated() {
                close(pair.write)
                output.add(fd: pair.read, pid: pid, prefix: prefix, sink: index == 0 ? .standardOutput : .standardError)
                do {
                    try reactor.register(pair.read) { [unowned self] _ in
                        if !self.output.read(fd: pair.read) { self.reactor.unregister(pair.read) }
                    }
                } catch {
                    logger.warning("\(id) pid=\(pid): cannot watch its output: \(error)")
                }
            }
            return .workerSpawned(id, pid: pid)
        } catch {
            return .workerSpawnFailed(id, reason: error.message)
        }
    }

    /// The worker's whole environment: the master's (unless `inherit_env = false`) without what
    /// describes the master, the program's `env`, and the handoff variables.
    func workerEnvironment(_ id: WorkerID, config: Configuration, sockets: [BoundSocket], notifyAddress: String) -> [String] {
        let program = config.program
        var variables: [String: String] = [:]
        var order: [String] = []
        func set(_ key: String, _ value: String) {
            if variables.updateValue(value, forKey: key) == nil { order.append(key) }
        }
        if program.inheritEnv {
            for (key, value) in environment where !Self.scrubbedVariables.contains(key) && !key.hasPrefix("BATON_") {
                if key == "JOURNAL_STREAM" && program.output == .forward { continue }
                set(key, value)
            }
        }
        for key in program.env.keys.sorted() { set(key, program.env[key]!) }
        let names = sockets.map(\.name)
        let backlogs = sockets.map { socket in
            String(config.listeners.first { $0.name == socket.name }?.backlog ?? 128)
        }
        if program.handoff == .listenFDs {
            set("LISTEN_FDS", String(sockets.count))
            set("LISTEN_FDNAMES", names.joined(separator: ":"))
        }
        set("NOTIFY_SOCKET", notifyAddress)
        set("BATON_GENERATION", String(id.generation))
        set("BATON_WORKER", String(id.index))
        set("BATON_MASTER_PID", String(masterPID))
        set("BATON_LISTEN_BACKLOGS", backlogs.joined(separator: ":"))
        set("BATON_DRAIN_TIMEOUT_USEC", String(program.drainTimeout.microseconds))
        return order.map { "\($0)=\(variables[$0]!)" }
    }
}
