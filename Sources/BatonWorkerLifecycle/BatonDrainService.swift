import BatonWorker
import ServiceLifecycle

/// The worker's drain request as a `Service`: it returns once baton asks the worker to drain.
/// Run it in a `ServiceGroup` with `successTerminationBehavior: .gracefullyShutdownGroup`
/// (`ServiceGroupConfiguration.ServiceConfiguration.batonDrain(_:)` does), and the drain becomes
/// the graceful shutdown of the whole group: each service shuts down gracefully, in reverse order.
///
/// `BatonWorker` takes over the drain signals (SIGTERM, SIGINT): leave them out of the group's
/// `gracefulShutdownSignals`, as a signal is trapped in one place only.
public struct BatonDrainService: Service {
    public let worker: BatonWorker

    public init(worker: BatonWorker) {
        self.worker = worker
    }

    /// Waits for the drain request; returns early, without error, on the group's graceful
    /// shutdown or on cancellation.
    public func run() async throws {
        let worker = self.worker
        await withTaskCancellationOrGracefulShutdownHandler {
            _ = await worker.drainRequested()
        } onCancelOrGracefulShutdown: {
            // Turn a shutdown that came from elsewhere into the worker's own drain, so the
            // waiting above (and anything else that waits for it) ends.
            worker.requestDrain()
        }
    }
}

extension ServiceGroupConfiguration.ServiceConfiguration {
    /// `BatonDrainService` set up so that the drain request shuts the group down gracefully.
    public static func batonDrain(_ worker: BatonWorker) -> Self {
        .init(service: BatonDrainService(worker: worker), successTerminationBehavior: .gracefullyShutdownGroup)
    }
}
