import BatonCore
import Glibc

extension Master {
    /// Prepares generation `number`: for a reload, reads the configuration again and binds new
    /// listeners. An invalid file or an unbindable address fails the reload and leaves the
    /// serving generation untouched.
    func prepare(generation number: Int) {
        if number > 1, let reloadConfiguration {
            let fresh: Configuration
            do {
                fresh = try reloadConfiguration()
            } catch {
                dispatch(.generationPreparationFailed(generation: number, reason: "configuration: \(error)"))
                return
            }
            do {
                try adoptListeners(of: fresh)
            } catch {
                dispatch(.generationPreparationFailed(generation: number, reason: "\(error)"))
                return
            }
            configuration = fresh
        }
        generationConfigs[number] = configuration
        generationSockets[number] = sockets
        dispatch(.generationPrepared(generation: number, GenerationSettings(program: configuration.program)))
    }

    /// Diffs listeners by name and address: sockets whose name and address stay keep their open
    /// file description (and accept queue; a changed backlog is applied with listen()); new
    /// addresses are bound now; sockets no longer configured are closed once no live generation
    /// uses them.
    func adoptListeners(of fresh: Configuration) throws(ListenerError) {
        var next: [BoundSocket] = []
        var freshlyBound: [BoundSocket] = []
        for listener in fresh.listeners {
            for address in listener.addresses {
                if let kept = sockets.first(where: { $0.name == listener.name && $0.configured == address }) {
                    // listen() again only to apply a changed backlog (a UDP socket has none).
                    let backlogChanged = configuration.listeners.first { $0.name == listener.name }?.backlog != listener.backlog
                    if case .udp = address {} else if backlogChanged { _ = listen(kept.fd, listener.backlog) }
                    next.append(kept)
                    continue
                }
                do {
                    let socket = try ListenerBinder.bind(address, of: listener)
                    freshlyBound.append(socket)
                    next.append(socket)
                } catch {
                    for socket in freshlyBound {
                        close(socket.fd)
                        if let path = socket.ownsPath { unlink(path) }
                    }
                    throw error
                }
            }
        }
        for socket in freshlyBound { logger.info("listener=\(socket.name) address=\(socket.local) bound") }
        let keptFDs = Set(next.map(\.fd))
        let unchanged = next.map(\.fd) == sockets.map(\.fd)
        retiredSockets += sockets.filter { !keptFDs.contains($0.fd) }
        sockets = next
        // The fd store holds these very fds already: nothing to tell systemd.
        if !unchanged { systemd.listenersChanged(sockets) }
        closeUnusedSockets()
    }

    /// Closes sockets that neither the current configuration nor a live generation holds.
    func closeUnusedSockets() {
        let inUse = Set(sockets.map(\.fd)).union(generationSockets.values.flatMap { $0.map(\.fd) })
        for socket in retiredSockets where !inUse.contains(socket.fd) {
            logger.info("listener=\(socket.name) address=\(socket.local) closed")
            close(socket.fd)
            if let path = socket.ownsPath { unlink(path) }
        }
        retiredSockets.removeAll { !inUse.contains($0.fd) }
    }
}
