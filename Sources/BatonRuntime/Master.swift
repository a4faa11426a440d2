import BatonCore
import CBaton
import Glibc
import Logging

/// The runtime around the `Supervisor` state machine: it owns the listeners, the notify socket,
/// the signal and timer fds and the workers' output pipes, feeds events to the machine and
/// performs the actions it returns. Everything runs on the calling (main) thread.
public final class Master {
    /// The configuration the next generation is prepared with (re-read at each reload).
    var configuration: Configuration
    let environment: [(key: String, value: String)]
    let logger: Logger
    let masterPID = getpid()
    let startedAt = Clock.now()
    /// Reads the configuration again (file and flags) for a reload; nil: keep the one given.
    let reloadConfiguration: (() throws -> Configuration)?
    let configPath: String?

    var machine = Supervisor()
    let reactor: Reactor
    /// The fds of `OutputSink`s with lines queued, watched for writability (see `afterEachWakeUp`).
    var sinksWatchedForWriting: Set<CInt> = []
    let timers: TimerQueue
    let output = WorkerOutput()
    var signals: CInt = -1
    var notify: NotifySocket?
    /// The listeners of the current configuration, in fd order.
    var sockets: [BoundSocket] = []
    /// Listeners removed from the configuration, open while a live generation still holds them.
    var retiredSockets: [BoundSocket] = []

    /// The configuration and sockets each live generation was prepared with.
    var generationConfigs: [Int: Configuration] = [:]
    var generationSockets: [Int: [BoundSocket]] = [:]
    var control: ControlServer?
    /// Control clients waiting for the outcome of a reload (`reload --wait`), with its progress.
    var reloadWatchers: Set<ControlClientID> = []
    /// Live worker processes by pid (the session id of everything they start).
    var workers: [pid_t: WorkerID] = [:]
    var pidsByGeneration: [Int: [pid_t]] = [:]
    var exitCode: Int32 = 0
    var interruptCount = 0
    /// Process groups of exited draining workers that still have members.
    var lingeringGroups: Set<pid_t> = []
    /// The master's ends of the workers' channels (`handoff = "channel"`), by worker pid.
    var channels: [pid_t: WorkerChannel] = [:]
    /// Readiness probes that run (`ready = "exec"`), by probe pid.
    var probes: [pid_t: RunningProbe] = [:]
    /// sd_notify, the watchdog, the fd store and the sockets systemd passed.
    let systemd: Systemd
    /// The last `baseEnvironment` built: a reload of an unchanged program reuses it.
    var baseEnvironmentCache: (key: BaseEnvironmentKey, variables: OrderedEnvironment)?
    /// einhorn's command socket (`compat = ["einhorn"]`), opened at the first such spawn.
    var einhorn: EinhornSocket?

    /// - Parameters:
    ///   - environment: the master's environment, read once at start-up before any thread exists.
    ///   - reloadConfiguration: reads the configuration anew for each reload.
    ///   - systemdSockets: `SocketActivation.receive()`, taken first thing in `main`.
    public init(
        configuration: Configuration, configPath: String? = nil, environment: [(key: String, value: String)],
        logger: Logger, reloadConfiguration: (() throws -> Configuration)? = nil,
        systemdSockets: SocketActivation.Reception = .init()
    ) throws(SystemError) {
        systemd = Systemd(environment: environment, received: systemdSockets, logger: logger)
        self.configuration = configuration
        self.configPath = configPath
        self.environment = environment
        self.logger = logger
        self.reloadConfiguration = reloadConfiguration
        reactor = try Reactor()
        timers = try TimerQueue()
    }

    /// The signals the master takes through its signalfd. Block them before any thread starts.
    public static let handledSignals: [CInt] = [SIGHUP, SIGINT, SIGTERM, SIGQUIT, SIGCHLD, SIGTTIN, SIGTTOU]

    /// Binds, starts the first generation and runs until the machine says exit. Returns the exit
    /// code. Call `blockSignals()` first, before any other thread is started.
    public func run(signalFD: CInt) -> Int32 {
        signals = signalFD
        signal(SIGPIPE, SIG_IGN)
        if baton_set_child_subreaper() != 0 {
            logger.warning("prctl(PR_SET_CHILD_SUBREAPER) failed: orphaned grandchildren go to init")
        }
        do {
            sockets = try systemd.activate(configuration.listeners)
        } catch {
            logger.error("\(error)")
            return 1
        }
        defer { closeListeners() }
        do {
            let notify = try NotifySocket(masterPID: masterPID)
            self.notify = notify
            try reactor.register(signals) { [unowned self] _ in self.readSignals() }
            try reactor.register(timers.fd) { [unowned self] _ in self.fireTimers() }
            try reactor.register(notify.fd) { [unowned self] _ in self.readNotifications() }
            try systemd.startWatchdog(on: reactor)
            let environment = Dictionary(self.environment.map { ($0.key, $0.value) }) { $1 }
            let path = ControlPath.masterPath(
                configured: configuration.master.control, program: configuration.program.name,
                environment: environment, uid: geteuid())
            control = try ControlServer(path: path, reactor: reactor, logger: logger) { [unowned self] client, request in
                self.handleControl(client, request)
            }
            control?.onDisconnect = { [unowned self] client in self.reloadWatchers.remove(client) }
            control?.holdsOutput = true
            logger.info("control socket \(path)")
        } catch {
            logger.error("\(error)")
            systemd.startFailed(error)
            return 1
        }
        defer { control?.close() }
        defer { closeEinhornSocket() }
        for socket in sockets {
            logger.info("listener=\(socket.name) address=\(socket.local) \(socket.fromSystemd ? "received from systemd" : "bound")")
        }
        let program = configuration.program
        logger.notice(
            "baton master pid=\(masterPID) started: program=\(program.name) workers=\(program.workers) handoff=\(program.handoff.rawValue)"
        )
        dispatch(.start)
        let sinks = [OutputSink.standardOutput, OutputSink.standardError]
        for sink in sinks { sink.holdsLines = true }
        timers.commit()
        reactor.run { [unowned self] in self.afterEachWakeUp() }
        for sink in sinks {
            sink.holdsLines = false
            sink.flush()
        }
        return exitCode
    }

    // MARK: - Events

    /// Feeds one event to the machine and performs its actions. Actions that produce events (a
    /// spawn, a prepared generation) feed those at once, before the remaining actions.
    func dispatch(_ event: SupervisorEvent) {
        let before = reloadWatchers.isEmpty ? nil : machine.generations
        let actions = machine.handle(event, at: Clock.now())
        if let before {
            for progress in ControlProgress.events(from: before, to: machine.generations) {
                for client in reloadWatchers { control?.send(progress, to: client) }
            }
        }
        for action in actions { perform(action) }
    }

    func readSignals() {
        while true {
            let number = baton_signalfd_read(signals)
            guard number > 0 else { return }
            switch number {
            case SIGCHLD:
                reapChildren()
            case SIGHUP:
                logger.info("SIGHUP: reload")
                dispatch(.reloadRequested(.signal))
            case SIGTERM:
                logger.info("SIGTERM: graceful stop")
                dispatch(.stopRequested(.graceful))
            case SIGINT:
                interruptCount += 1
                logger.info(interruptCount == 1 ? "SIGINT: graceful stop" : "SIGINT again: fast stop")
                dispatch(.stopRequested(interruptCount == 1 ? .graceful : .fast))
            case SIGQUIT:
                logger.info("SIGQUIT: fast stop")
                dispatch(.stopRequested(.fast))
            case SIGTTIN:
                logger.info("SIGTTIN: one worker more")
                dispatch(.scaleRequested(.by(1)))
            case SIGTTOU:
                logger.info("SIGTTOU: one worker less")
                dispatch(.scaleRequested(.by(-1)))
            default:
                logger.info("\(SignalName.name(number)) ignored")
            }
        }
    }

    func reapChildren() {
        while true {
            var code: CInt = 0
            var status: CInt = 0
            let pid = baton_reap_one(&code, &status)
            guard pid > 0 else { break }
            let reason: ExitReason = code == CLD_EXITED ? .exited(status) : .signaled(status)
            if reapedProbe(pid, reason) { continue }
            if workers[pid] != nil {
                // Read what the worker said last before its exit is judged, so a report can quote it.
                for fd in output.drain(pid: pid) {
                    reactor.unregister(fd)
                    output.finish(fd: fd)
                }
                workers[pid] = nil
            }
            dispatch(.processExited(pid: pid, reason))
        }
        checkLingeringGroups()
    }

    /// Members of a lingering group are our children once its leader is gone (we are a subreaper),
    /// so each reap is the moment to see whether a group emptied.
    func checkLingeringGroups() {
        for pgid in lingeringGroups where !Self.groupHasMembers(pgid) {
            lingeringGroups.remove(pgid)
            dispatch(.groupEmptied(pgid: pgid))
        }
    }

    static func groupHasMembers(_ pgid: pid_t) -> Bool {
        kill(-pgid, 0) == 0 || errno == EPERM
    }

    func fireTimers() {
        for timer in timers.takeExpired(now: Clock.now()) {
            dispatch(.timerFired(timer))
        }
    }

    func readNotifications() {
        notify?.receiveAll { datagram in
            // Accept only processes in a live worker's session: the worker itself, or whatever it
            // started (a shell wrapper's server). A worker leads its session for life (setsid at
            // spawn; a leader cannot leave), and its pid is not reused before the master reaps
            // it, so the worker itself needs no look at /proc.
            let session = workers[datagram.pid] != nil ? datagram.pid : ProcStat.session(of: datagram.pid)
            guard datagram.pid > 0, let session else {
                // The sender is gone already (e.g. a worker's last STOPPING=1, read after its exit).
                logger.debug("notify: ignored a datagram from pid=\(datagram.pid): the sender has exited")
                return
            }
            guard let id = workers[session] else {
                logger.warning("notify: ignored a datagram from pid=\(datagram.pid): not in a live worker's session")
                return
            }
            switch datagram.message {
            case .failure(let error):
                logger.warning("notify: \(id) pid=\(session): rejected message: \(error)")
            case .success(let message):
                if message["READY"] == "1" { dispatch(.workerReady(pid: session)) }
                if let status = message["STATUS"] { logger.debug("\(id) pid=\(session) status: \(status)") }
                if message["STOPPING"] == "1" { logger.debug("\(id) pid=\(session) is stopping") }
            }
        }
    }

    /// Writes what the master's stdout and stderr queued. While lines stay queued (the reader is
    /// slow), their fd is watched for writability, so that they go out as soon as the reader
    /// catches up, not only at the loop's next event of another kind.
    func afterEachWakeUp() {
        timers.commit()
        control?.flushHeld()
        for sink in [OutputSink.standardOutput, OutputSink.standardError] {
            if sink.hasPending { sink.flush() }
            let watched = sinksWatchedForWriting.contains(sink.fd)
            if sink.hasPending && !watched {
                // The handler has nothing to do: the flush above runs after every wake-up. A fd
                // epoll cannot watch (a regular file) never makes a write wait anyway.
                if (try? reactor.register(sink.fd, events: UInt32(BATON_EV_OUT), handler: { _ in })) != nil {
                    sinksWatchedForWriting.insert(sink.fd)
                }
            } else if !sink.hasPending && watched {
                reactor.unregister(sink.fd)
                sinksWatchedForWriting.remove(sink.fd)
            }
        }
    }

    // MARK: - Actions

    func perform(_ action: SupervisorAction) {
        switch action {
        case .prepareGeneration(let number):
            prepare(generation: number)
        case .spawn(let id):
            dispatch(spawnWorker(id))
        case .signal(let pid, let signal, let group):
            if kill(group ? -pid : pid, signal) != 0 && errno != ESRCH {
                logger.warning("kill(\(group ? -pid : pid), \(SignalName.name(signal))): \(String(cString: strerror(errno)))")
            }
            // A lingering group that is already empty says so only here: nothing more gets reaped.
            if group && lingeringGroups.contains(pid) { checkLingeringGroups() }
        case .drain(let pid, let signal, let group, let timeout):
            drainWorker(pid: pid, signal: signal, group: group, timeout: timeout)
        case .runProbe(let id, let pid):
            runProbe(id, workerPID: pid)
        case .stopProbe(let id):
            stopProbe(id)
        case .setTimer(let id, let deadline):
            timers.set(id, at: deadline)
        case .cancelTimer(let id):
            timers.cancel(id)
        case .log(let record):
            log(record)
        case .reloadFinished(let requests, let outcome):
            var tail: [String] = []
            if case .failed(_, _, let pid?) = outcome { tail = output.tail(of: pid) }
            for id in requests {
                let client = ControlClientID(rawValue: id)
                reloadWatchers.remove(client)
                control?.reply(.reload(outcome, output: tail), to: client)
            }
        case .notifySystemd(let notification):
            logger.debug("systemd: \(notification)")
            systemd.perform(notification)
        case .watchGroup(let pgid):
            if Self.groupHasMembers(pgid) {
                lingeringGroups.insert(pgid)
            } else {
                dispatch(.groupEmptied(pgid: pgid))
            }
        case .forgetGeneration(let number):
            generationConfigs[number] = nil
            generationSockets[number] = nil
            for pid in pidsByGeneration[number] ?? [] { closeChannel(pid: pid) }
            output.forget(pids: pidsByGeneration.removeValue(forKey: number) ?? [])
            closeUnusedSockets()
        case .exit(let code):
            exitCode = code
            reactor.stop()
        }
    }

    func log(_ record: LogRecord) {
        logger.log(level: record.level.loggerLevel, "\(record.message)")
        guard let pid = record.outputOf else { return }
        let tail = output.tail(of: pid)
        if tail.isEmpty {
            logger.log(level: record.level.loggerLevel, "pid=\(pid) wrote no output")
        }
        for line in tail {
            logger.log(level: record.level.loggerLevel, "pid=\(pid) | \(line)")
        }
    }

    func closeListeners() {
        for socket in sockets + retiredSockets {
            close(socket.fd)
            if let path = socket.ownsPath, !systemd.keepsSocketFiles { unlink(path) }
        }
        sockets = []
        retiredSockets = []
    }
}
