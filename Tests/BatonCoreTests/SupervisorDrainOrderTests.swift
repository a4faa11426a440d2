import BatonCore
import Testing

/// The drain order (`.drain`): the runtime sends `DRAIN=1` with `TIMEOUT_USEC=` on a worker's
/// channel, or the drain signal; either way the worker learns how long it has.
@Suite struct SupervisorDrainOrderTests {
    static func id(_ generation: Int, _ index: Int) -> WorkerID { WorkerID(generation: generation, index: index) }

    @Test func replacedWorkersAreToldTheirDrainTimeout() {
        var h = SupervisorHarness(drainTimeout: .seconds(7), drainSignal: 10, killMode: .process)
        h.startServing()
        let reloaded = h.reloadServing()
        #expect(reloaded.drainOrders == [
            .drain(pid: 101, signal: 10, group: false, timeout: .seconds(7)),
            .drain(pid: 102, signal: 10, group: false, timeout: .seconds(7)),
        ])
        #expect(h.generation(1)?.drainDeadline == h.now + .seconds(7))
    }

    @Test func workerSpawnedIntoADrainingGenerationGetsWhatIsLeftOfTheDeadline() {
        var h = SupervisorHarness(drainTimeout: .seconds(10))
        _ = h.handle(.start)
        _ = h.handle(.generationPrepared(generation: 1, h.settings))
        _ = h.handle(.workerSpawned(Self.id(1, 0), pid: 101))
        _ = h.handle(.stopRequested(.graceful))
        h.advance(by: .seconds(4))
        let late = h.handle(.workerSpawned(Self.id(1, 1), pid: 102))
        #expect(late.drainOrders == [.drain(pid: 102, signal: 15, group: true, timeout: .seconds(6))])
    }

    @Test func workerSpawnedAfterTheDeadlineStillGetsAPositiveTimeout() {
        var h = SupervisorHarness(drainTimeout: .seconds(1))
        _ = h.handle(.start)
        _ = h.handle(.generationPrepared(generation: 1, h.settings))
        _ = h.handle(.workerSpawned(Self.id(1, 0), pid: 101))
        _ = h.handle(.stopRequested(.graceful))
        h.advance(by: .seconds(3))
        let late = h.handle(.workerSpawned(Self.id(1, 1), pid: 102))
        // Zero would read as "no deadline" to a worker.
        #expect(late.drainOrders == [.drain(pid: 102, signal: 15, group: true, timeout: .milliseconds(1))])
    }

    @Test func killsStayPlainSignals() {
        var h = SupervisorHarness(drainTimeout: .seconds(1))
        h.startServing()
        h.reloadServing()
        h.advance(by: .seconds(1))
        let fired = h.fire(.drain(generation: 1))
        #expect(fired.drainOrders.isEmpty)
        #expect(fired.signalsSent == [.signal(pid: 101, signal: 9, group: true), .signal(pid: 102, signal: 9, group: true)])
    }
}
