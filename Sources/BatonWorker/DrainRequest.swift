/// baton (or a person) asks the worker to drain: stop accepting, finish what is in flight, exit.
public struct BatonDrainRequest: Sendable, Equatable, CustomStringConvertible {
    /// Where the request came from.
    public enum Source: Sendable, Equatable {
        /// A drain signal (baton's `drain_signal`, default SIGTERM; also what the kernel sends if
        /// the master dies, through `PR_SET_PDEATHSIG`).
        case signal(Int32)
        /// `DRAIN=1` on baton's channel.
        case channel
        /// `BatonWorker.requestDrain(timeout:)` from the program itself.
        case program
    }

    public let source: Source
    /// How long the drain may take before baton kills the worker: the channel's `TIMEOUT_USEC`,
    /// else `BATON_DRAIN_TIMEOUT_USEC`; nil outside baton (no limit is known).
    public let timeout: Duration?
    /// When the worker learned of it.
    public let receivedAt: ContinuousClock.Instant

    public init(source: Source, timeout: Duration?, receivedAt: ContinuousClock.Instant = .now) {
        self.source = source
        self.timeout = timeout
        self.receivedAt = receivedAt
    }

    /// When baton kills the worker if it has not exited: everything must be closed by then.
    public var deadline: ContinuousClock.Instant? { timeout.map { receivedAt + $0 } }

    public var description: String {
        let origin: String
        switch source {
        case .signal(let number): origin = "signal \(number)"
        case .channel: origin = "DRAIN=1"
        case .program: origin = "the program"
        }
        return timeout.map { "drain after \(origin) within \($0)" } ?? "drain after \(origin)"
    }
}
