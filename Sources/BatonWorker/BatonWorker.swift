import BatonCore
import CBaton
import Dispatch
import Glibc
import Synchronization

/// A worker's side of baton: its sockets, readiness, status and the drain request, whatever the
/// handoff (`LISTEN_FDS` or baton's channel), and outside baton too, where it binds the addresses
/// it was given so that the same binary runs under `swift run`.
///
/// ```swift
/// let worker = try BatonWorker.start(standalone: [("http", "tcp://127.0.0.1:8080")])
/// let http = worker.listeners(named: "http")     // fds to serve on
/// // … start serving on them …
/// worker.ready()
/// let drain = await worker.drainRequested()       // stop accepting, finish by drain.deadline
/// ```
///
/// Create one per process, early (it reads and cleans `LISTEN_*` from the environment, and takes
/// over the drain signals).
public final class BatonWorker: Sendable {
    /// Where the sockets came from.
    public let handoff: BatonHandoff
    /// Every socket, in fd order (`LISTEN_FDNAMES` order), a name repeated per socket.
    public let listeners: [BatonListener]
    /// `BATON_GENERATION` (or the channel's), nil outside baton.
    public let generation: Int?
    /// `BATON_WORKER`: this worker's index in its generation, nil outside baton.
    public let workerIndex: Int?

    private let notifySocket: String?
    private let drainTimeout: Duration?
    private let queue = DispatchQueue(label: "baton-worker")
    private let state: Mutex<State>

    private struct State {
        /// baton's channel while it is open (sends happen under the lock, so it is never closed
        /// under a sender).
        var channelFD: Int32?
        var drain: BatonDrainRequest?
        var waiters: [CheckedContinuation<BatonDrainRequest, Never>] = []
        var streams: [Int: AsyncStream<BatonDrainRequest>.Continuation] = [:]
        var nextStream = 0
        var handlers: [@Sendable (BatonDrainRequest) -> Void] = []
        /// Kept alive for as long as the worker: a released source stops.
        var sources: [RetainedSource] = []
    }

    /// Finds the worker's sockets and starts listening for the drain request.
    ///
    /// - Parameters:
    ///   - standalone: outside baton (no `BATON_CHANNEL_FD`, no `LISTEN_FDS` for this pid), the
    ///     listeners to bind, by name, with addresses in baton's syntax (`tcp://127.0.0.1:8080`,
    ///     `tcp://[::1]:8080`, `udp://…`, `unix:/path`, `unix:@name`).
    ///   - backlog: the backlog of sockets bound here, and of handed ones when baton did not say.
    ///   - drainSignals: the signals that request a drain (their default action is replaced).
    ///     Include baton's `drain_signal` if it is not SIGTERM.
    public static func start(
        standalone: [(name: String, address: String)] = [], backlog: Int32 = 4096,
        drainSignals: [Int32] = [SIGTERM, SIGINT]
    ) throws(BatonWorkerError) -> BatonWorker {
        let environment = Self.readEnvironment()
        let discovery = try Discovery.run(environment: environment, standalone: standalone, backlog: backlog)
        // As sd_listen_fds(1): the variables describe this process only, not its children.
        for key in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] { unsetenv(key) }
        let worker = BatonWorker(discovery: discovery, environment: environment)
        worker.watch(signals: drainSignals)
        if let channel = discovery.channelFD { worker.watch(channel: channel) }
        return worker
    }

    private init(discovery: Discovery, environment: [String: String]) {
        handoff = discovery.handoff
        listeners = discovery.listeners
        generation = discovery.generation
        workerIndex = discovery.handoff == .standalone ? nil : environment["BATON_WORKER"].flatMap { Int($0) }
        notifySocket = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        drainTimeout = environment["BATON_DRAIN_TIMEOUT_USEC"].flatMap { UInt64($0) }.map { .microseconds($0) }
        state = Mutex(State(channelFD: discovery.channelFD))
    }

    /// The listeners named `name`, in fd order.
    public func listeners(named name: String) -> [BatonListener] {
        listeners.filter { $0.name == name }
    }

    // MARK: - Telling the master

    /// Says `READY=1`: on the channel, else on `NOTIFY_SOCKET`; nothing outside baton. Call it
    /// once the worker accepts on every listener. Returns whether the message went out.
    @discardableResult
    public func ready() -> Bool { send("READY=1") }

    /// Says `STATUS=text` (logged by the master at debug level); newlines become spaces.
    @discardableResult
    public func status(_ text: String) -> Bool {
        send("STATUS=" + text.split(whereSeparator: \.isNewline).joined(separator: " "))
    }

    /// Says `STOPPING=1` (the library's servers say it when they begin to drain).
    @discardableResult
    public func stopping() -> Bool { send("STOPPING=1") }

    private func send(_ text: String) -> Bool {
        let channelSent: Bool? = state.withLock { state in
            guard let channel = state.channelFD else { return nil }
            let bytes = Array(text.utf8)
            return bytes.withUnsafeBytes { baton_send_with_fds(channel, $0.baseAddress, $0.count, nil, 0) } == bytes.count
        }
        if let channelSent { return channelSent }
        guard let notifySocket else { return false }
        return WorkerSockets.notify(text, socketAddress: notifySocket)
    }

    // MARK: - The drain request

    /// Waits for the first drain request (returns at once once there was one).
    public func drainRequested() async -> BatonDrainRequest {
        await withCheckedContinuation { continuation in
            let current: BatonDrainRequest? = state.withLock { state in
                if let drain = state.drain { return drain }
                state.waiters.append(continuation)
                return nil
            }
            if let current { continuation.resume(returning: current) }
        }
    }

    /// The first drain request, nil while there was none.
    public var currentDrain: BatonDrainRequest? { state.withLock { $0.drain } }

    /// Every drain request from now on (a request made before is delivered first). A second one
    /// (e.g. a second Ctrl-C) is a hint to hurry. The sequence ends when the iterating task is
    /// cancelled.
    public var drainRequests: AsyncStream<BatonDrainRequest> {
        let (stream, continuation) = AsyncStream<BatonDrainRequest>.makeStream()
        let id = state.withLock { state in
            let id = state.nextStream
            state.nextStream += 1
            state.streams[id] = continuation
            if let drain = state.drain { continuation.yield(drain) }
            return id
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.streams.removeValue(forKey: id) }
        }
        return stream
    }

    /// Calls `handler` on an internal queue with every drain request (and at once with one made
    /// before).
    public func onDrain(_ handler: @escaping @Sendable (BatonDrainRequest) -> Void) {
        let current = state.withLock { state in
            state.handlers.append(handler)
            return state.drain
        }
        if let current { queue.async { handler(current) } }
    }

    /// Requests a drain from within the program (an admin endpoint, a test), with `timeout`.
    public func requestDrain(timeout: Duration? = nil) {
        deliver(BatonDrainRequest(source: .program, timeout: timeout ?? drainTimeout))
    }

    private func deliver(_ request: BatonDrainRequest) {
        let (waiters, streams, handlers) = state.withLock { state in
            if state.drain == nil { state.drain = request }
            let waiters = state.waiters
            state.waiters.removeAll()
            return (waiters, Array(state.streams.values), state.handlers)
        }
        let first = currentDrain ?? request
        for waiter in waiters { waiter.resume(returning: first) }
        for stream in streams { stream.yield(request) }
        for handler in handlers { handler(request) }
    }

    // MARK: - Sources of drain requests

    private func watch(signals: [Int32]) {
        for number in signals {
            // The source sees the signal only once its default action (termination) is gone.
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            let timeout = drainTimeout
            source.setEventHandler { [weak self] in
                self?.deliver(BatonDrainRequest(source: .signal(number), timeout: timeout))
            }
            source.resume()
            state.withLock { $0.sources.append(RetainedSource(source: source)) }
        }
    }

    private func watch(channel: Int32) {
        _ = baton_set_nonblocking(channel, 1)
        let source = DispatchSource.makeReadSource(fileDescriptor: channel, queue: queue)
        source.setEventHandler { [weak self] in self?.readChannel(channel, source: source) }
        source.setCancelHandler { [weak self] in
            // Closed under the lock: no send can be using the fd, and none will after.
            self?.state.withLock { state in
                if state.channelFD == channel { state.channelFD = nil }
            }
            close(channel)
        }
        source.resume()
        state.withLock { $0.sources.append(RetainedSource(source: source)) }
    }

    /// Reads the channel's messages; `DRAIN=1` (with `TIMEOUT_USEC=`) is a drain request. A
    /// closed channel leaves readiness to `NOTIFY_SOCKET` and the drain to the signals.
    private func readChannel(_ channel: Int32, source: any DispatchSourceRead) {
        var buffer = [UInt8](repeating: 0, count: NotifyMessage.maximumSize + 1)
        var fds = [Int32](repeating: -1, count: 8)
        while true {
            var count: Int32 = 0
            var truncated: Int32 = 0
            let length = baton_recv_with_fds(channel, &buffer, buffer.count, &fds, Int32(fds.count), &count, &truncated)
            // Nothing after the handover carries fds: keep none.
            for fd in fds.prefix(Int(count)) { close(fd) }
            if length < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return }
            if length <= 0 && count == 0 {
                state.withLock { $0.channelFD = nil }
                source.cancel()
                return
            }
            guard case .success(let message) = NotifyMessage.parse(buffer.prefix(length)), message["DRAIN"] == "1" else {
                continue
            }
            let timeout = message["TIMEOUT_USEC"].flatMap { UInt64($0) }.map { Duration.microseconds($0) } ?? drainTimeout
            deliver(BatonDrainRequest(source: .channel, timeout: timeout))
        }
    }

    private static func readEnvironment() -> [String: String] {
        var result: [String: String] = [:]
        var cursor = environ
        while let entry = cursor.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            cursor += 1
        }
        return result
    }
}

/// A dispatch source held by the worker's state. Dispatch sources are thread-safe; they are only
/// kept here, never used through this box.
private struct RetainedSource: @unchecked Sendable {
    let source: any DispatchSourceProtocol
}
