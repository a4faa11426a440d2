import BatonCore
import CBaton
import Glibc

/// The channel handoff at run time: a worker's channel is opened at its spawn, carries the
/// handover out and the worker's notices in, and `DRAIN=1` out at the end. A closed channel means
/// the worker gave up its channel, not that it exited: exits are learned from the kernel only, and
/// a worker without a channel is told to drain with the signal.
extension Master {
    /// Takes over the master's end of a freshly spawned worker's channel, watches it and queues
    /// the handover of `sockets`.
    func openChannel(fd: CInt, id: WorkerID, pid: pid_t, sockets: [BoundSocket]) {
        // A reused pid whose earlier worker's channel is still held open (by a grandchild) ends it.
        closeChannel(pid: pid)
        let channel = WorkerChannel(fd: fd, id: id, pid: pid)
        channels[pid] = channel
        do {
            try reactor.register(fd) { [unowned self] events in self.channelEvent(pid: pid, events: events) }
        } catch {
            logger.warning("\(id) pid=\(pid): cannot watch its channel: \(error)")
        }
        for message in ChannelProtocol.handoff(names: sockets.map(\.name), generation: id.generation) {
            channel.enqueue(message.text, fds: sockets[message.sockets].map(\.fd))
        }
        flush(channel)
    }

    /// Sends what the channel has queued; watches for room when the socket is full.
    func flush(_ channel: WorkerChannel) {
        switch channel.flush() {
        case .done:
            reactor.update(channel.fd, events: UInt32(BATON_EV_IN))
        case .blocked:
            reactor.update(channel.fd, events: UInt32(BATON_EV_IN | BATON_EV_OUT))
        case .failed(let code):
            logger.warning("\(channel.id) pid=\(channel.pid): channel: send: \(String(cString: strerror(code)))")
            closeChannel(pid: channel.pid)
        }
    }

    func channelEvent(pid: pid_t, events: UInt32) {
        guard let channel = channels[pid] else { return }
        if events & UInt32(BATON_EV_OUT) != 0 { flush(channel) }
        guard channels[pid] != nil, events & UInt32(BATON_EV_IN | BATON_EV_HUP | BATON_EV_ERR) != 0 else { return }
        let hangUp = events & UInt32(BATON_EV_HUP | BATON_EV_ERR) != 0
        let open = channel.receiveAll(hangUp: hangUp) { incoming in
            switch incoming {
            case .rejected(let reason):
                logger.warning("channel: \(channel.id) pid=\(pid): rejected message: \(reason)")
            case .notices(let notices):
                for notice in notices { handle(notice, from: channel) }
            }
        }
        if !open {
            logger.debug("\(channel.id) pid=\(pid) closed its channel")
            closeChannel(pid: pid)
        }
    }

    func handle(_ notice: ChannelProtocol.Notice, from channel: WorkerChannel) {
        switch notice {
        case .ready:
            dispatch(.workerReady(pid: channel.pid))
        case .status(let status):
            logger.debug("\(channel.id) pid=\(channel.pid) status: \(status)")
        case .stopping:
            logger.debug("\(channel.id) pid=\(channel.pid) is stopping")
        case .errno(let code):
            logger.info("\(channel.id) pid=\(channel.pid) reports errno \(code): \(String(cString: strerror(code)))")
        }
    }

    func closeChannel(pid: pid_t) {
        guard let channel = channels.removeValue(forKey: pid) else { return }
        reactor.unregister(channel.fd)
        channel.close()
    }

    /// Performs `.drain`: `DRAIN=1` on the worker's channel while it has one, else the signal.
    func drainWorker(pid: pid_t, signal: CInt, group: Bool, timeout: Duration) {
        if let channel = channels[pid] {
            channel.enqueue(ChannelProtocol.drain(timeout: timeout))
            flush(channel)
            if channels[pid] != nil { return }
            // The send failed: the worker's end is gone, but the worker may not be.
        }
        perform(.signal(pid: pid, signal: signal, group: group))
    }
}
