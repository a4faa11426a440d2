import BatonCore
import Glibc

/// `compat = ["einhorn"]` and `compat = ["server-starter"]`: the other supervisors' variables in
/// a worker's environment, and einhorn's command socket, whose `worker:ack` is readiness.
extension Master {
    /// The compatibility variables of a `handoff = "listen-fds"` worker, added after baton's own.
    /// Needs `ensureEinhornSocket()` first for einhorn.
    func compatibilityVariables(_ id: WorkerID, program: ProgramSpec, sockets: [BoundSocket]) -> [(key: String, value: String)] {
        guard program.handoff == .listenFDs else { return [] }
        var variables: [(key: String, value: String)] = []
        if program.compat.contains("einhorn"), let einhorn {
            variables += WorkerCompatibility.einhornVariables(
                fdCount: sockets.count, childIndex: id.index, masterPID: masterPID, socketPath: einhorn.path)
        }
        if program.compat.contains("server-starter") {
            variables.append(("SERVER_STARTER_PORT", WorkerCompatibility.serverStarterPort(addresses: sockets.map(\.local))))
            variables.append(("SERVER_STARTER_GENERATION", String(id.generation)))
        }
        return variables
    }

    /// Opens einhorn's command socket the first time a program with `compat = ["einhorn"]` spawns
    /// a worker; it stays until the master exits. Returns why it cannot, or nil.
    func ensureEinhornSocket(for program: ProgramSpec) -> String? {
        guard program.compat.contains("einhorn"), program.handoff == .listenFDs, einhorn == nil else { return nil }
        do {
            let socket = try EinhornSocket(parent: EinhornSocket.parentDirectory(environment: environment))
            try reactor.register(socket.fd) { [unowned self] _ in self.acceptEinhornConnections() }
            einhorn = socket
            logger.info("einhorn command socket \(socket.path)")
            return nil
        } catch {
            return "einhorn command socket: \(error)"
        }
    }

    func acceptEinhornConnections() {
        guard let einhorn else { return }
        for client in einhorn.acceptAll() {
            do {
                try reactor.register(client) { [unowned self] _ in self.readEinhornConnection(client) }
            } catch {
                logger.warning("einhorn: cannot watch a connection: \(error)")
                einhorn.close(connection: client)
            }
        }
    }

    func readEinhornConnection(_ client: CInt) {
        guard let einhorn else { return }
        let open = einhorn.read(connection: client) { line in handleEinhorn(line) }
        if !open {
            reactor.unregister(client)
            einhorn.close(connection: client)
        }
    }

    /// `worker:ack` from a live worker's session makes that worker ready, like `READY=1` on the
    /// notify socket. The pid it names must be in the same session as the process that connected.
    func handleEinhorn(_ line: EinhornSocket.Line) {
        let command: EinhornCommand
        switch line.command {
        case .failure(let error):
            logger.warning("einhorn: pid=\(line.peerPID): rejected line: \(error)")
            return
        case .success(let parsed):
            command = parsed
        }
        guard command.command == "worker:ack" else {
            logger.info("einhorn: pid=\(line.peerPID): command \(command.command) ignored (only worker:ack is understood)")
            return
        }
        guard line.peerPID > 0, let session = ProcStat.session(of: line.peerPID), let id = workers[session] else {
            logger.warning("einhorn: ignored worker:ack from pid=\(line.peerPID): not in a live worker's session")
            return
        }
        let named = command.pid ?? line.peerPID
        guard ProcStat.session(of: named) == session else {
            logger.warning("einhorn: \(id) pid=\(session): ignored worker:ack for pid=\(named): not in this worker's session")
            return
        }
        logger.debug("einhorn: \(id) pid=\(session) worker:ack")
        dispatch(.workerReady(pid: session))
    }

    /// Closes einhorn's command socket, its connections and its file (at exit).
    func closeEinhornSocket() {
        guard let einhorn else { return }
        for client in einhorn.connectionFDs { reactor.unregister(client) }
        reactor.unregister(einhorn.fd)
        einhorn.close()
        self.einhorn = nil
    }
}
