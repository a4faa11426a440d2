import BatonWorker
import Glibc
import NIOCore
import NIOPosix

extension ServerBootstrap {
    /// Adopts a listener that baton handed over (or that `BatonWorker` bound outside baton) with
    /// NIO's async `bind` taking a socket, and keeps the listener's configured backlog.
    ///
    /// NIO 2.101 calls `listen()` again when it adopts a socket, with its default backlog of 128
    /// and before `.backlog` is applied: the accept queue of every generation would shrink to 128.
    /// This method sets the option and calls `listen()` once more with `listener.backlog` right
    /// after the adoption (for that moment the queue is at most 128 long: a SYN beyond it waits
    /// for a retransmission, nothing is refused).
    ///
    /// NIO takes ownership of the fd (closing the channel closes it) and sets `O_NONBLOCK` on it.
    /// That flag lives on the open file description that the master and every generation share:
    /// every other holder (an older generation, a worker in another language) then sees a
    /// non-blocking socket and must accept until `EAGAIN`, as baton's own workers do. Never
    /// `shutdown()` the channel's socket: close it to stop accepting.
    ///
    /// Caveat: with several workers (or generations) on one listener, all of them wake for each
    /// connection and all but one find nothing to accept. NIO's *debug* builds assert that this
    /// never happens (`BaseSocketChannel.readable0`) and crash; release builds handle it. For
    /// HTTP/1.1 `BatonHTTPServer` accepts itself and has no such issue.
    public func bind<Output: Sendable>(
        _ listener: BatonListener,
        serverBackPressureStrategy: NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark? = nil,
        childChannelInitializer: @escaping @Sendable (Channel) -> EventLoopFuture<Output>
    ) async throws -> NIOAsyncChannel<Output, Never> {
        let channel = try await self.serverChannelOption(.backlog, value: listener.backlog)
            .bind(
                listener.fd, cleanupExistingSocketFile: false, serverBackPressureStrategy: serverBackPressureStrategy,
                childChannelInitializer: childChannelInitializer)
        Self.restoreBacklog(listener)
        return channel
    }

    /// The `EventLoopFuture` flavour: `withBoundSocket` keeping the listener's backlog.
    public func withBoundSocket(_ listener: BatonListener) -> EventLoopFuture<Channel> {
        self.serverChannelOption(.backlog, value: listener.backlog).withBoundSocket(listener.fd).map { channel in
            Self.restoreBacklog(listener)
            return channel
        }
    }

    private static func restoreBacklog(_ listener: BatonListener) {
        guard listener.isStream else { return }
        _ = listen(listener.fd, listener.backlog)
    }
}
