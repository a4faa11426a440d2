import BatonCore
import Glibc

extension Master {
    /// One request from the control socket.
    func handleControl(_ client: ControlClientID, _ request: ControlRequest) {
        switch request.command {
        case .status:
            let report = StatusReport(
                machine: machine, now: Clock.now(), masterPID: masterPID, startedAt: startedAt,
                configPath: configPath, program: configuration.program.name, sockets: sockets)
            control?.reply(ControlReply(ok: true, status: report), to: client)
        case .reload(let wait):
            if case .stopping = machine.phase {
                control?.reply(.failure("the master is stopping"), to: client)
                return
            }
            logger.info("control: reload\(wait ? " (waiting)" : "")")
            if wait {
                reloadWatchers.insert(client)
                dispatch(.reloadRequested(ReloadRequester(id: client.rawValue)))
            } else {
                dispatch(.reloadRequested(.signal))
                control?.reply(.success(message: "reload started"), to: client)
            }
        case .stop(let now):
            logger.info("control: stop\(now ? " now" : "")")
            control?.reply(.success(message: "stopping"), to: client)
            dispatch(.stopRequested(now ? .fast : .graceful))
        case .scale(let count):
            switch machine.phase {
            case .starting, .running:
                break
            case .idle, .stopping, .stopped:
                control?.reply(.failure("the master is stopping"), to: client)
                return
            }
            logger.info("control: scale \(count)")
            dispatch(.scaleRequested(.to(count)))
            let workers = machine.workerCount ?? count
            control?.reply(ControlReply(ok: true, message: "workers: \(workers)", workers: workers), to: client)
        }
    }
}
