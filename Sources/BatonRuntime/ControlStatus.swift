import BatonCore

/// The master's state as `baton status` shows it: the reply's `status` to a `status` request.
/// Times are relative (seconds, fractional), so the client needs no clock of the master's.
public struct StatusReport: Codable, Sendable, Equatable {
    public struct Listener: Codable, Sendable, Equatable {
        public var name: String
        /// The address actually bound, e.g. `tcp://127.0.0.1:8080`.
        public var address: String
        /// The master's fd of the socket.
        public var fd: Int32

        public init(name: String, address: String, fd: Int32) {
            self.name = name
            self.address = address
            self.fd = fd
        }
    }

    public struct WorkerStatus: Codable, Sendable, Equatable {
        public var index: Int
        /// `nil` while being spawned or waiting for a restart.
        public var pid: Int32?
        /// spawning, starting, ready, draining, killed, lingering (exited, its process group still
        /// draining), waiting-restart or gone.
        public var state: String
        /// Since its current process started.
        public var uptimeSeconds: Double?
        public var restarts: Int

        public init(index: Int, pid: Int32?, state: String, uptimeSeconds: Double?, restarts: Int) {
            self.index = index
            self.pid = pid
            self.state = state
            self.uptimeSeconds = uptimeSeconds
            self.restarts = restarts
        }

        enum CodingKeys: String, CodingKey {
            case index, pid, state, restarts
            case uptimeSeconds = "uptime_seconds"
        }
    }

    public struct GenerationStatus: Codable, Sendable, Equatable {
        public var number: Int
        /// preparing, starting, serving, draining or failed.
        public var state: String
        /// Since the generation was created.
        public var ageSeconds: Double
        public var workers: [WorkerStatus]

        public init(number: Int, state: String, ageSeconds: Double, workers: [WorkerStatus]) {
            self.number = number
            self.state = state
            self.ageSeconds = ageSeconds
            self.workers = workers
        }

        enum CodingKeys: String, CodingKey {
            case number, state, workers
            case ageSeconds = "age_seconds"
        }
    }

    public struct ReloadStatus: Codable, Sendable, Equatable {
        public var ok: Bool
        public var generation: Int?
        /// Set when the reload succeeded.
        public var durationMilliseconds: Int64?
        /// Set when the reload failed.
        public var error: String?
        public var secondsAgo: Double

        public init(ok: Bool, generation: Int?, durationMilliseconds: Int64?, error: String?, secondsAgo: Double) {
            self.ok = ok
            self.generation = generation
            self.durationMilliseconds = durationMilliseconds
            self.error = error
            self.secondsAgo = secondsAgo
        }

        enum CodingKeys: String, CodingKey {
            case ok, generation, error
            case durationMilliseconds = "duration_ms"
            case secondsAgo = "seconds_ago"
        }
    }

    public var masterPID: Int32
    public var uptimeSeconds: Double
    public var configPath: String?
    public var program: String
    /// running, starting, stopping or stopped.
    public var phase: String
    public var listeners: [Listener]
    /// Oldest first.
    public var generations: [GenerationStatus]
    public var lastReload: ReloadStatus?

    public init(
        masterPID: Int32, uptimeSeconds: Double, configPath: String?, program: String, phase: String,
        listeners: [Listener], generations: [GenerationStatus], lastReload: ReloadStatus?
    ) {
        self.masterPID = masterPID
        self.uptimeSeconds = uptimeSeconds
        self.configPath = configPath
        self.program = program
        self.phase = phase
        self.listeners = listeners
        self.generations = generations
        self.lastReload = lastReload
    }

    enum CodingKeys: String, CodingKey {
        case program, phase, listeners, generations
        case masterPID = "master_pid"
        case uptimeSeconds = "uptime_seconds"
        case configPath = "config_path"
        case lastReload = "last_reload"
    }
}

extension StatusReport {
    /// The report for a master whose state machine is `machine`, at `now`.
    public init(
        machine: Supervisor, now: MonotonicInstant, masterPID: Int32, startedAt: MonotonicInstant, configPath: String?,
        program: String, sockets: [BoundSocket]
    ) {
        func seconds(since instant: MonotonicInstant) -> Double {
            Double(now.duration(since: instant).milliseconds) / 1000
        }
        let generations = machine.generations.map { generation in
            GenerationStatus(
                number: generation.number, state: Self.name(of: generation.state),
                ageSeconds: seconds(since: generation.createdAt),
                workers: generation.workers.map { worker in
                    WorkerStatus(
                        index: worker.id.index, pid: worker.pid, state: Self.name(of: worker.state),
                        uptimeSeconds: worker.pid == nil ? nil : worker.startedAt.map(seconds(since:)),
                        restarts: worker.restarts)
                })
        }
        let lastReload = machine.lastReload.map { record -> ReloadStatus in
            switch record.outcome {
            case .succeeded(let generation, let duration):
                return ReloadStatus(
                    ok: true, generation: generation, durationMilliseconds: duration.milliseconds, error: nil,
                    secondsAgo: seconds(since: record.finishedAt))
            case .failed(let generation, let reason, _):
                return ReloadStatus(
                    ok: false, generation: generation, durationMilliseconds: nil, error: reason,
                    secondsAgo: seconds(since: record.finishedAt))
            }
        }
        self.init(
            masterPID: masterPID, uptimeSeconds: seconds(since: startedAt), configPath: configPath, program: program,
            phase: Self.name(of: machine.phase),
            listeners: sockets.map { Listener(name: $0.name, address: $0.local, fd: $0.fd) },
            generations: generations, lastReload: lastReload)
    }

    static func name(of phase: Supervisor.Phase) -> String {
        switch phase {
        case .idle: return "idle"
        case .starting: return "starting"
        case .running: return "running"
        case .stopping(.graceful): return "stopping"
        case .stopping(.fast): return "stopping-now"
        case .stopped: return "stopped"
        }
    }

    static func name(of state: Generation.State) -> String {
        switch state {
        case .preparing: return "preparing"
        case .starting: return "starting"
        case .serving: return "serving"
        case .draining: return "draining"
        case .failed: return "failed"
        }
    }

    static func name(of state: Worker.State) -> String {
        switch state {
        case .spawning: return "spawning"
        case .starting: return "starting"
        case .ready: return "ready"
        case .draining: return "draining"
        case .killed: return "killed"
        case .lingering: return "lingering"
        case .waitingRestart: return "waiting-restart"
        case .gone: return "gone"
        }
    }
}
