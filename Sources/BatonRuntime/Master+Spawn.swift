import BatonCore
import CBaton
import Glibc

extension Master {
    /// Variables of the master's own environment that describe the master, never its workers.
    static let scrubbedVariables: Set<String> = [
        "NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "WATCHDOG_PID", "WATCHDOG_USEC",
        "BATON_CONTROL",
    ]

    /// The worker's fd of its channel (`handoff = "channel"`).
    static let channelFD: CInt = 3

    /// Starts one worker of a generation: with `handoff = "listen-fds"` the listeners at fds 3...;
    /// with `handoff = "channel"` its channel at fd 3, over which the listeners follow at once.
    func spawnWorker(_ id: WorkerID) -> SupervisorEvent {
        guard let config = generationConfigs[id.generation], let handed = generationSockets[id.generation], let notify else {
            return .workerSpawnFailed(id, reason: "its generation is gone")
        }
        let program = config.program
        if let problem = ensureEinhornSocket(for: program) { return .workerSpawnFailed(id, reason: problem) }
        let environment = workerEnvironment(id, config: config, sockets: handed, notifyAddress: notify.address)
        var channel: (master: CInt, worker: CInt)?
        do throws(SpawnError) {
            if program.handoff == .channel {
                do {
                    channel = try WorkerChannel.makePair()
                } catch {
                    throw SpawnError(stage: "channel", errno: error.code, message: "cannot create its channel: \(error)")
                }
            }
            let pid = try spawnForwardingOutput(
                program.command, environment: environment, program: program,
                fds: channel.map { [$0.worker] } ?? handed.map(\.fd), setsListenPID: program.handoff == .listenFDs,
                deathSignal: program.drainSignal, of: "\(id)"
            ) { pid in "[\(program.name) gen=\(id.generation) pid=\(pid)] " }
            workers[pid] = id
            pidsByGeneration[id.generation, default: []].append(pid)
            if let channel {
                close(channel.worker)
                openChannel(fd: channel.master, id: id, pid: pid, sockets: handed)
            }
            return .workerSpawned(id, pid: pid)
        } catch {
            if let channel {
                close(channel.master)
                close(channel.worker)
            }
            return .workerSpawnFailed(id, reason: error.message)
        }
    }

    /// Starts `arguments` (its command looked up along the environment's `PATH`) in the program's
    /// directory with its credentials, and forwards its output with the prefix `prefix(pid)`.
    /// Nothing stays open when it fails.
    func spawnForwardingOutput(
        _ arguments: [String], environment: [String], program: ProgramSpec, fds: [CInt] = [],
        setsListenPID: Bool = false, deathSignal: Int32, of what: String, prefix: (pid_t) -> String
    ) throws(SpawnError) -> pid_t {
        let searchPath = environment.last { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) }
        let executable = try ProcessSpawner.resolveExecutable(
            arguments[0], searchPath: searchPath, workingDirectory: program.cwd)
        let credentials = try Credentials.lookup(user: program.user, group: program.group)
        let pipes = try makeOutputPipes(program.output)
        let request = SpawnRequest(
            executable: executable, arguments: arguments, environment: environment, setsListenPID: setsListenPID,
            fds: fds, standardOutput: pipes.first?.write, standardError: pipes.last?.write,
            workingDirectory: program.cwd, credentials: credentials, deathSignal: deathSignal)
        let pid: pid_t
        do {
            pid = try ProcessSpawner.spawn(request)
        } catch {
            for pair in pipes { close(pair.read); close(pair.write) }
            throw error
        }
        forwardOutput(pipes, pid: pid, prefix: prefix(pid), of: what)
        return pid
    }

    /// With `output = "forward"`, a stdout and a stderr pipe (both ends close-on-exec, the read
    /// end non-blocking; the spawn places the write ends); none with `inherit`.
    func makeOutputPipes(_ mode: OutputMode) throws(SpawnError) -> [(read: CInt, write: CInt)] {
        guard mode == .forward else { return [] }
        var pipes: [(read: CInt, write: CInt)] = []
        for _ in 0..<2 {
            var ends: [CInt] = [-1, -1]
            guard baton_output_pipe(&ends) == 0 else {
                let code = errno
                for pair in pipes { close(pair.read); close(pair.write) }
                throw SpawnError(stage: "pipe", errno: code, message: "cannot create an output pipe: \(String(cString: strerror(code)))")
            }
            pipes.append((ends[0], ends[1]))
        }
        return pipes
    }

    /// Forwards a spawned process's output pipes (stdout first) line by line with `prefix`.
    func forwardOutput(_ pipes: [(read: CInt, write: CInt)], pid: pid_t, prefix: String, of what: String) {
        for (index, pair) in pipes.enumerated() {
            close(pair.write)
            output.add(fd: pair.read, pid: pid, prefix: prefix, sink: index == 0 ? .standardOutput : .standardError)
            do {
                try reactor.register(pair.read) { [unowned self] _ in
                    if !self.output.read(fd: pair.read) { self.reactor.forgetClosed(pair.read) }
                }
            } catch {
                logger.warning("\(what) pid=\(pid): cannot watch its output: \(error)")
            }
        }
    }

    /// The worker's whole environment: the master's (unless `inherit_env = false`) without what
    /// describes the master, the program's `env`, and the handoff variables.
    func workerEnvironment(_ id: WorkerID, config: Configuration, sockets: [BoundSocket], notifyAddress: String) -> [String] {
        let program = config.program
        var variables = baseEnvironment(program)
        let names = sockets.map(\.name)
        let backlogs = sockets.map { socket in
            String(config.listeners.first { $0.name == socket.name }?.backlog ?? 128)
        }
        switch program.handoff {
        case .listenFDs:
            variables.set("LISTEN_FDS", String(sockets.count))
            variables.set("LISTEN_FDNAMES", names.joined(separator: ":"))
        case .channel:
            variables.set("BATON_CHANNEL_FD", String(Self.channelFD))
        }
        variables.set("NOTIFY_SOCKET", notifyAddress)
        variables.set("BATON_GENERATION", String(id.generation))
        variables.set("BATON_WORKER", String(id.index))
        variables.set("BATON_MASTER_PID", String(masterPID))
        variables.set("BATON_LISTEN_BACKLOGS", backlogs.joined(separator: ":"))
        variables.set("BATON_DRAIN_TIMEOUT_USEC", String(program.drainTimeout.microseconds))
        for (key, value) in compatibilityVariables(id, program: program, sockets: sockets) { variables.set(key, value) }
        return variables.entries
    }

    /// The master's environment (unless `inherit_env = false`) without what describes the master,
    /// then the program's `env`: what every process baton starts for the program begins with.
    func baseEnvironment(_ program: ProgramSpec) -> OrderedEnvironment {
        let key = BaseEnvironmentKey(program)
        if let cached = baseEnvironmentCache, cached.key == key { return cached.variables }
        var variables = OrderedEnvironment()
        if program.inheritEnv {
            for (name, value) in environment where !Self.scrubbedVariables.contains(name) && !name.hasPrefix("BATON_") {
                if name == "JOURNAL_STREAM" && program.output == .forward { continue }
                variables.set(name, value)
            }
        }
        for name in program.env.keys.sorted() { variables.set(name, program.env[name]!) }
        baseEnvironmentCache = (key, variables)
        return variables
    }
}

/// What `baseEnvironment` depends on besides the master's own (fixed) environment.
struct BaseEnvironmentKey: Equatable {
    let inheritEnv: Bool
    let env: [String: String]
    let output: OutputMode

    init(_ program: ProgramSpec) {
        inheritEnv = program.inheritEnv
        env = program.env
        output = program.output
    }
}

/// Environment variables in first-set order; setting one again replaces its value in place. Kept
/// as the `KEY=VALUE` strings execve takes, so a cached base environment plus a worker's own
/// variables costs only those variables.
struct OrderedEnvironment {
    private var positions: [String: Int] = [:]
    /// `KEY=VALUE` strings, for execve.
    private(set) var entries: [String] = []

    mutating func set(_ key: String, _ value: String) {
        let entry = key + "=" + value
        if let position = positions[key] {
            entries[position] = entry
        } else {
            positions[key] = entries.count
            entries.append(entry)
        }
    }
}
