import BatonCore
import CBaton
import Glibc

/// How the worker got its sockets.
public enum BatonHandoff: Sendable, Equatable {
    /// `LISTEN_FDS` (baton's default handoff, or systemd socket activation).
    case listenFDs
    /// baton's channel (`BATON_CHANNEL_FD`): sockets over `SCM_RIGHTS`, readiness and the drain
    /// request on the same socket.
    case channel
    /// Not under baton: the worker bound the addresses it was given itself.
    case standalone
}

/// The result of looking for sockets: where they came from and what the handover said.
struct Discovery {
    var handoff: BatonHandoff
    var listeners: [BatonListener]
    var channelFD: Int32?
    var generation: Int?

    /// Takes the sockets from, in this order: the channel (`BATON_CHANNEL_FD`), `LISTEN_FDS` when
    /// `LISTEN_PID` names this process, else binds `standalone` (name, address in baton's syntax).
    static func run(
        environment: [String: String], standalone: [(name: String, address: String)], backlog: Int32
    ) throws(BatonWorkerError) -> Discovery {
        let backlogs = (environment["BATON_LISTEN_BACKLOGS"] ?? "").split(separator: ":", omittingEmptySubsequences: false)
            .map { Int32($0) }
        func describe(_ fds: [Int32], names: [String]) -> [BatonListener] {
            fds.enumerated().map { index, fd in
                // Handed sockets must not leak into the worker's own children.
                _ = baton_set_cloexec(fd, 1)
                let name = index < names.count && !names[index].isEmpty ? names[index] : "unknown"
                let configured = index < backlogs.count ? backlogs[index] : nil
                return BatonListener(
                    name: name, fd: fd, address: WorkerSockets.describe(fd), backlog: configured ?? backlog,
                    socketType: WorkerSockets.socketType(fd))
            }
        }
        if let text = environment["BATON_CHANNEL_FD"] {
            guard let fd = Int32(text), fd >= 0 else { throw BatonWorkerError("BATON_CHANNEL_FD=\(text) is not an fd number") }
            _ = baton_set_cloexec(fd, 1)
            let handover = try receiveHandover(channel: fd)
            return Discovery(
                handoff: .channel, listeners: describe(handover.fds, names: handover.names), channelFD: fd,
                generation: handover.generation ?? environment["BATON_GENERATION"].flatMap { Int($0) })
        }
        let generation = environment["BATON_GENERATION"].flatMap { Int($0) }
        if let count = environment["LISTEN_FDS"], environment["LISTEN_PID"] == String(getpid()) {
            guard let number = Int32(count), number >= 0 else { throw BatonWorkerError("LISTEN_FDS=\(count) is not a count") }
            let names = (environment["LISTEN_FDNAMES"] ?? "").split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            return Discovery(
                handoff: .listenFDs, listeners: describe((0..<number).map { 3 + $0 }, names: names), channelFD: nil,
                generation: generation)
        }
        var listeners: [BatonListener] = []
        for (name, text) in standalone {
            let address: ListenAddress
            switch ListenAddress.parse(text) {
            case .success(let parsed): address = parsed
            case .failure(let error):
                for listener in listeners { close(listener.fd) }
                throw BatonWorkerError("listener \(name): \(error)")
            }
            do {
                let fd = try WorkerSockets.bind(address, backlog: backlog)
                listeners.append(
                    BatonListener(name: name, fd: fd, address: WorkerSockets.describe(fd), backlog: backlog,
                                  socketType: WorkerSockets.socketType(fd)))
            } catch {
                for listener in listeners { close(listener.fd) }
                throw BatonWorkerError("listener \(name): \(error)")
            }
        }
        return Discovery(handoff: .standalone, listeners: listeners, channelFD: nil, generation: nil)
    }

    /// Reads the handover (`LISTEN_FDS=n`, `LISTEN_FDNAMES=…`, `BATON_GENERATION=…` with the fds
    /// in `SCM_RIGHTS`, `MORE=1` on all but the last message) from the channel, blocking.
    static func receiveHandover(channel: Int32) throws(BatonWorkerError) -> (fds: [Int32], names: [String], generation: Int?) {
        var fds: [Int32] = []
        var names: [String] = []
        var generation: Int?
        var buffer = [UInt8](repeating: 0, count: ChannelProtocol.maximumMessageSize)
        var received = [Int32](repeating: -1, count: ChannelProtocol.maximumFDsPerMessage + 1)
        func fail(_ message: String) -> BatonWorkerError {
            for fd in fds { close(fd) }
            return BatonWorkerError("channel handover: \(message)")
        }
        while true {
            var count: Int32 = 0
            var truncated: Int32 = 0
            let length = baton_recv_with_fds(channel, &buffer, buffer.count, &received, Int32(received.count), &count, &truncated)
            fds += received.prefix(Int(count))
            if length < 0 { throw fail(String(cString: strerror(errno))) }
            if length == 0 && count == 0 { throw fail("the master closed the channel") }
            if truncated != 0 { throw fail("message truncated") }
            let message: NotifyMessage
            switch NotifyMessage.parse(buffer.prefix(length)) {
            case .success(let parsed): message = parsed
            case .failure(let error): throw fail(error.description)
            }
            guard let announced = message["LISTEN_FDS"].flatMap({ Int($0) }), announced == Int(count) else {
                throw fail("LISTEN_FDS=\(message["LISTEN_FDS"] ?? "") but \(count) fds arrived")
            }
            if count > 0 {
                names += (message["LISTEN_FDNAMES"] ?? "").split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            }
            generation = message["BATON_GENERATION"].flatMap { Int($0) } ?? generation
            if message["MORE"] != "1" { return (fds, names, generation) }
        }
    }
}
