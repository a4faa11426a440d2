import BatonCore
import Testing

/// Graceful and fast stops: who is signalled, who is told, and when the master exits.
@Suite struct SupervisorStopTests {
    static func id(_ generation: Int, _ index: Int) -> WorkerID { WorkerID(generation: generation, index: index) }

    static func isKill(_ action: SupervisorAction) -> Bool {
        if case .signal(_, 9, _) = action { return true }
        return false
    }

    // MARK: - Graceful

    @Test func gracefulStopNotifiesSystemdAndDrainsTheServingGeneration() {
        var h = SupervisorHarness()
        h.startServing()
        let actions = h.handle(.stopRequested(.graceful))
        #expect(actions.logRecords.first == LogRecord(.notice, "stopping: draining every generation"))
        #expect(actions.notifications == [.stopping(status: "stopping")])
        #expect(actions.signalsSent == [.signal(pid: 101, signal: 15, group: true), .signal(pid: 102, signal: 15, group: true)])
        #expect(actions.timersSet == [.drain(generation: 1): h.now + .seconds(30)])
        #expect(actions.exitCodes.isEmpty)
        #expect(h.machine.phase == .stopping(.graceful))
        #expect(h.generation(1)?.isDraining == true)
    }

    @Test func gracefulStopExitsWith0OnlyWhenEveryWorkerHasExited() {
        var h = SupervisorHarness()
        h.startServing()
        _ = h.handle(.stopRequested(.graceful))
        #expect(h.exit(1, 0).exitCodes.isEmpty)
        #expect(h.machine.phase == .stopping(.graceful))
        let last = h.exit(1, 1)
        #expect(last.forgottenGenerations == [1])
        #expect(last.suffix(2) == [.log(LogRecord(.notice, "stopped")), .exit(code: 0)])
        #expect(h.machine.phase == .stopped)
        #expect(h.machine.generations.isEmpty)
    }

    @Test func gracefulStopDrainsEveryGenerationAndFailsEveryReloadWaiter() {
        var h = SupervisorHarness()
        h.startServing()
        h.reloadServing()  // generation 1 drains, 2 serves
        _ = h.reload(id: 5)  // generation 3 starts
        _ = h.reload(id: 6)  // queued
        _ = h.reload(id: 7)  // queued
        let actions = h.handle(.stopRequested(.graceful))
        #expect(
            actions.reloadReplies == [
                .reloadFinished(requests: [5], .failed(generation: 3, reason: "the master is stopping", outputOf: nil)),
                .reloadFinished(requests: [6, 7], .failed(generation: nil, reason: "the master is stopping", outputOf: nil)),
            ])
        // Generation 1 was told already; 2 and 3 are told now.
        #expect(actions.signalledPIDs == [103, 104, 105, 106])
        #expect(actions.signalsSent.allSatisfy { !Self.isKill($0) })
        #expect(Set(actions.timersSet.keys) == [.drain(generation: 2), .drain(generation: 3)])
        #expect(actions.notifications == [.stopping(status: "stopping")])
        #expect(actions.preparedGenerations.isEmpty)
        #expect(h.machine.generations.allSatisfy { $0.state.isWindingDown })

        _ = h.exitAll(1)
        _ = h.exitAll(2)
        #expect(h.exit(3, 0).exitCodes.isEmpty)
        #expect(h.exit(3, 1).exitCodes == [0])
    }

    @Test func readinessDuringAGracefulStopPromotesNothing() {
        var h = SupervisorHarness()
        h.startServing()
        _ = h.reload(id: 5)
        _ = h.handle(.stopRequested(.graceful))
        #expect(h.readyAll(2) == [])
        #expect(h.generation(2)?.isDraining == true)
    }

    @Test func secondGracefulStopIsANoOp() {
        var h = SupervisorHarness()
        h.startServing()
        _ = h.handle(.stopRequested(.graceful))
        let before = h.machine.generations
        #expect(h.handle(.stopRequested(.graceful)) == [])
        #expect(h.machine.generations == before)
    }

    @Test func reloadRequestedWhileStoppingFails() {
        var h = SupervisorHarness()
        h.startServing()
        _ = h.handle(.stopRequested(.graceful))
        #expect(
            h.handle(.reloadRequested(ReloadRequester(id: 3))) == [
                .reloadFinished(requests: [3], .failed(generation: nil, reason: "the master is stopping", outputOf: nil))
            ])
        #expect(h.handle(.reloadRequested(.signal)) == [])
    }

    @Test func crashDuringAGracefulStopIsNotRestarted() {
        var h = SupervisorHarness()
        h.startServing()
        _ = h.handle(.stopRequested(.graceful))
        let actions = h.exit(1, 0, .exited(1))
        #expect(actions.timersSet.isEmpty)
        #expect(actions.logRecords == [LogRecord(.warning, "gen=1 worker=0 pid=101 exited with status 1", outputOf: 101)])
        #expect(h.exit(1, 1).exitCodes == [0])
    }

    @Test func drainTimeoutDuringAGracefulStopKillsTheStragglers() {
        var h = SupervisorHarness()
        h.startServing()
        _ = h.handle(.stopRequested(.graceful))
        _ = h.exit(1, 0)
        h.advance(by: .seconds(30))
        #expect(h.fire(.drain(generation: 1)).signalsSent == [.signal(pid: 102, signal: 9, group: true)])
        #expect(h.exit(1, 1, .signaled(9)).exitCodes == [0])
    }

    @Test func slotWaitingForRestartIsDroppedByAStop() {
        var h = SupervisorHarness()
        h.startServing()
        _ = h.exit(1, 0, .exited(1))
        let actions = h.handle(.stopRequested(.graceful))
        #expect(actions.timersCancelled.contains(.respawn(Self.id(1, 0))))
        #expect(actions.signalsSent == [.signal(pid: 102, signal: 15, group: true)])
        h.advance(by: .milliseconds(100))
        #expect(h.fire(.respawn(Self.id(1, 0))) == [])
        #expect(h.exit(1, 1).exitCodes == [0])
    }

    @Test func stopWithNoLiveWorkerExitsAtOnce() {
        var h = SupervisorHarness(workers: 1)
        h.startServing()
        _ = h.exit(1, 0, .exited(1))
        let actions = h.handle(.stopRequested(.graceful))
        #expect(actions.exitCodes == [0])
        #expect(actions.forgottenGenerations == [1])
        #expect(h.machine.phase == .stopped)
    }

    @Test func stopBeforeStartExitsAtOnce() {
        var h = SupervisorHarness()
        #expect(h.handle(.stopRequested(.graceful)) == [.exit(code: 0)])
        #expect(h.machine.phase == .stopped)
        #expect(h.handle(.start) == [.log(LogRecord(.warning, "start ignored: the master is already stopped"))])
    }

    @Test func stopWhileTheFirstGenerationIsPreparedExitsAtOnce() {
        var h = SupervisorHarness()
        _ = h.handle(.start)
        let actions = h.handle(.stopRequested(.graceful))
        #expect(actions.notifications == [.stopping(status: "stopping")])
        #expect(actions.forgottenGenerations == [1])
        #expect(actions.last == .exit(code: 0))
        #expect(h.handle(.generationPrepared(generation: 1, h.settings)) == [])
    }

    @Test func stopWhileAReloadIsPreparedForgetsThatGeneration() {
        var h = SupervisorHarness()
        h.startServing()
        _ = h.handle(.reloadRequested(ReloadRequester(id: 4)))
        let actions = h.handle(.stopRequested(.graceful))
        #expect(actions.outcome(of: 4) == .failed(generation: 2, reason: "the master is stopping", outputOf: nil))
        #expect(actions.forgottenGenerations == [2])
        #expect(h.machine.generations.map(\.number) == [1])
        #expect(h.handle(.generationPrepared(generation: 2, h.settings)) == [])
    }

    @Test func gracefulStopDuringStartUpDrainsTheStartingWorkers() {
        var h = SupervisorHarness()
        _ = h.drive(.start)
        _ = h.ready(1, 0)
        let actions = h.handle(.stopRequested(.graceful))
        #expect(actions.signalsSent == [.signal(pid: 101, signal: 15, group: true), .signal(pid: 102, signal: 15, group: true)])
        #expect(actions.notifications == [.stopping(status: "stopping")])
        #expect(h.ready(1, 1) == [])
        _ = h.exit(1, 0)
        #expect(h.exit(1, 1).exitCodes == [0])
    }

    // MARK: - Fast

    @Test func fastStopKillsEveryWorker() {
        var h = SupervisorHarness()
        h.startServing()
        h.reloadServing()
        let actions = h.handle(.stopRequested(.fast))
        #expect(actions.logRecords.first == LogRecord(.notice, "stopping now: killing every worker"))
        #expect(actions.notifications == [.stopping(status: "stopping")])
        #expect(
            actions.signalsSent == [
                .signal(pid: 101, signal: 9, group: true), .signal(pid: 102, signal: 9, group: true),
                .signal(pid: 103, signal: 9, group: true), .signal(pid: 104, signal: 9, group: true),
            ])
        #expect(actions.exitCodes.isEmpty)
        #expect(h.machine.phase == .stopping(.fast))
    }

    @Test func fastStopExitsOnceEveryWorkerIsReaped() {
        var h = SupervisorHarness()
        h.startServing()
        h.reloadServing()
        _ = h.handle(.stopRequested(.fast))
        _ = h.exitAll(1, .signaled(9))
        #expect(h.exit(2, 0, .signaled(9)).exitCodes.isEmpty)
        let last = h.exit(2, 1, .signaled(9))
        #expect(last.last == .exit(code: 0))
        #expect(last.forgottenGenerations.contains(2))
        #expect(h.machine.phase == .stopped)
    }

    @Test func fastStopWithKillModeProcessKillsOnlyTheWorkers() {
        var h = SupervisorHarness(killMode: .process)
        h.startServing()
        #expect(
            h.handle(.stopRequested(.fast)).signalsSent == [
                .signal(pid: 101, signal: 9, group: false), .signal(pid: 102, signal: 9, group: false),
            ])
    }

    @Test func fastAfterGracefulEscalates() {
        var h = SupervisorHarness()
        h.startServing()
        _ = h.handle(.stopRequested(.graceful))
        _ = h.exit(1, 0)
        let actions = h.handle(.stopRequested(.fast))
        #expect(actions.logRecords == [LogRecord(.notice, "stopping now: killing every worker")])
        #expect(actions.notifications.isEmpty)
        #expect(actions.signalsSent == [.signal(pid: 102, signal: 9, group: true)])
        #expect(h.machine.phase == .stopping(.fast))
        #expect(h.exit(1, 1, .signaled(9)).exitCodes == [0])
    }

    @Test func stopAfterAFastStopIsANoOp() {
        var h = SupervisorHarness()
        h.startServing()
        _ = h.handle(.stopRequested(.fast))
        #expect(h.handle(.stopRequested(.fast)) == [])
        #expect(h.handle(.stopRequested(.graceful)) == [])
        #expect(h.machine.phase == .stopping(.fast))
    }

    @Test func fastStopFailsEveryReloadWaiter() {
        var h = SupervisorHarness()
        h.startServing()
        _ = h.reload(id: 5)
        _ = h.reload(id: 6)
        let actions = h.handle(.stopRequested(.fast))
        #expect(actions.outcome(of: 5) == .failed(generation: 2, reason: "the master is stopping", outputOf: nil))
        #expect(actions.outcome(of: 6) == .failed(generation: nil, reason: "the master is stopping", outputOf: nil))
        #expect(actions.signalledPIDs == [101, 102, 103, 104])
    }

    @Test func fastStopDuringStartUpExitsOnceTheWorkerIsReaped() {
        // One worker, still starting: its death must not be taken for a failed start-up that
        // leaves the master waiting forever.
        var h = SupervisorHarness(workers: 1)
        _ = h.drive(.start)
        #expect(h.handle(.stopRequested(.fast)).signalsSent == [.signal(pid: 101, signal: 9, group: true)])
        let reaped = h.exit(1, 0, .signaled(9))
        #expect(reaped.exitCodes == [0])
        #expect(h.machine.phase == .stopped)
    }

    @Test func fastStopDuringAReloadExitsWhicheverWorkerIsReapedLast() {
        var h = SupervisorHarness(workers: 1)
        h.startServing()
        _ = h.reload(id: 5)
        _ = h.handle(.stopRequested(.fast))
        #expect(h.exit(1, 0, .signaled(9)).exitCodes.isEmpty)
        #expect(h.exit(2, 0, .signaled(9)).exitCodes == [0])
    }

    @Test func workerSpawnedAfterAFastStopIsKilled() {
        // The machine's contract lets the runtime answer a spawn later; a process that arrives
        // after a fast stop must die too, or the master waits for it.
        var h = SupervisorHarness()
        _ = h.handle(.start)
        _ = h.handle(.generationPrepared(generation: 1, h.settings))
        _ = h.handle(.workerSpawned(Self.id(1, 0), pid: 101))
        #expect(h.handle(.stopRequested(.fast)).signalsSent == [.signal(pid: 101, signal: 9, group: true)])
        let late = h.handle(.workerSpawned(Self.id(1, 1), pid: 102))
        #expect(late.signalsSent == [.signal(pid: 102, signal: 9, group: true)])
        _ = h.drive(.processExited(pid: 101, .signaled(9)))
        #expect(h.drive(.processExited(pid: 102, .signaled(9))).exitCodes == [0])
    }

    @Test func workerSpawnedAfterAGracefulStopIsDrained() {
        var h = SupervisorHarness()
        _ = h.handle(.start)
        _ = h.handle(.generationPrepared(generation: 1, h.settings))
        _ = h.handle(.workerSpawned(Self.id(1, 0), pid: 101))
        _ = h.handle(.stopRequested(.graceful))
        let late = h.handle(.workerSpawned(Self.id(1, 1), pid: 102))
        #expect(late.signalsSent == [.signal(pid: 102, signal: 15, group: true)])
        _ = h.drive(.processExited(pid: 101, .exited(0)))
        #expect(h.drive(.processExited(pid: 102, .exited(0))).exitCodes == [0])
    }

    @Test func exitCodeAfterAFailedStartUpStays1() {
        var h = SupervisorHarness()
        _ = h.drive(.start)
        _ = h.exit(1, 0, .exited(1))
        #expect(h.handle(.stopRequested(.fast)).signalsSent == [.signal(pid: 102, signal: 9, group: true)])
        #expect(h.exit(1, 1, .signaled(9)).exitCodes == [1])
    }
}
