import NIOCore
import Synchronization

/// The open connections of a server, so that a drain reaches every one and the server knows when
/// the last one closed.
final class ConnectionTracker: Sendable {
    fileprivate struct State {
        var connections: [ObjectIdentifier: any Channel] = [:]
        /// Accepted sockets that NIO is still setting up.
        var pending = 0
        var drain: HTTPDrainEvent?
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    var count: Int { state.withLock { $0.connections.count + $0.pending } }

    /// Counts an accepted socket until `add` or `abandon`, so that no drain ends under it.
    func reserve() {
        state.withLock { $0.pending += 1 }
    }

    /// A reserved socket that never became a channel.
    func abandon() {
        let waiters: [CheckedContinuation<Void, Never>] = state.withLock { state in
            state.pending -= 1
            return state.takeWaitersIfDrained()
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Tracks a reserved `channel` until it closes; one that arrives after the drain began
    /// drains at once.
    func add(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        let drain: HTTPDrainEvent? = state.withLock { state in
            state.pending -= 1
            state.connections[id] = channel
            return state.drain
        }
        channel.closeFuture.whenComplete { [self] _ in remove(id) }
        if let drain { channel.pipeline.fireUserInboundEventTriggered(drain) }
    }

    private func remove(_ id: ObjectIdentifier) {
        let waiters: [CheckedContinuation<Void, Never>] = state.withLock { state in
            state.connections[id] = nil
            return state.takeWaitersIfDrained()
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Tells every connection, now and later, to drain.
    func drain(_ event: HTTPDrainEvent) {
        let channels: [any Channel] = state.withLock { state in
            if state.drain == nil { state.drain = event }
            return Array(state.connections.values)
        }
        for channel in channels { channel.pipeline.fireUserInboundEventTriggered(event) }
    }

    /// Returns once the drain began and no connection is left.
    func waitUntilDrained() async {
        await withCheckedContinuation { continuation in
            let done = state.withLock { state in
                if state.drain != nil && state.connections.isEmpty && state.pending == 0 { return true }
                state.waiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }
}

extension ConnectionTracker.State {
    /// Once draining with nothing left: the waiters to wake (taken out of the state).
    fileprivate mutating func takeWaitersIfDrained() -> [CheckedContinuation<Void, Never>] {
        guard drain != nil, connections.isEmpty, pending == 0 else { return [] }
        defer { waiters.removeAll() }
        return waiters
    }
}
