import BatonCore
import Testing

/// The worker count at run time: `baton scale N` and `SIGTTIN`/`SIGTTOU`. Extra slots spawn,
/// surplus ones drain and are never restarted, and later generations keep the count until the
/// configuration file changes `workers`.
@Suite struct SupervisorScaleTests {
    static func id(_ generation: Int, _ index: Int) -> WorkerID { WorkerID(generation: generation, index: index) }

    /// Generation 1 (pids 101, 102) serves.
    static func serving(workers: Int = 2, drainTimeout: Duration = .seconds(30)) -> SupervisorHarness {
        var h = SupervisorHarness(workers: workers, drainTimeout: drainTimeout)
        h.startServing()
        h.advance(by: .seconds(1))
        return h
    }

    @Test func scaleUpSpawnsTheNewSlotsInTheServingGeneration() {
        var h = Self.serving()
        let actions = h.drive(.scaleRequested(.to(4)))
        #expect(actions.spawnedIDs == [Self.id(1, 2), Self.id(1, 3)])
        #expect(actions.log(containing: "scale: 2 → 4 workers per generation")?.level == .notice)
        // A new slot of a serving generation must be ready by its own deadline.
        #expect(actions.timersSet[.workerReady(Self.id(1, 2))] == h.now + .seconds(60))
        #expect(h.generation(1)?.size == 4)
        #expect(h.generation(1)?.settings?.workers == 4)
        #expect(h.machine.workerCount == 4)
        _ = h.ready(1, 2)
        _ = h.ready(1, 3)
        #expect(h.machine.servingStatus() == "gen 1 serving: 4/4 ready")
    }

    @Test func scaleDownDrainsTheHighestSlotsByTheirOwnDeadline() {
        var h = Self.serving(workers: 3, drainTimeout: .seconds(5))
        let actions = h.drive(.scaleRequested(.to(1)))
        #expect(actions.drainOrders == [
            .drain(pid: 102, signal: 15, group: true, timeout: .seconds(5)),
            .drain(pid: 103, signal: 15, group: true, timeout: .seconds(5)),
        ])
        #expect(actions.timersSet[.workerDrain(Self.id(1, 1))] == h.now + .seconds(5))
        #expect(h.worker(1, 1)?.state == .draining(pid: 102))
        #expect(h.worker(1, 1)?.retired == true)
        #expect(h.worker(1, 0)?.isReady == true)
        #expect(h.generation(1)?.state == .serving)
        #expect(h.machine.servingStatus() == "gen 1 serving: 1/1 ready")
    }

    @Test func retiredWorkerThatExitsIsNotRestarted() {
        var h = Self.serving()
        _ = h.drive(.scaleRequested(.to(1)))
        let exited = h.exit(1, 1)
        #expect(exited.timersSet.isEmpty)
        #expect(exited.timersCancelled.contains(.workerDrain(Self.id(1, 1))))
        #expect(exited.log(containing: "gen=1 worker=1 pid=102 exited with status 0")?.level == .info)
        #expect(h.worker(1, 1)?.state == .gone)
        #expect(h.generation(1)?.state == .serving)
    }

    @Test func retiredWorkerPastItsDeadlineIsKilled() {
        var h = Self.serving(drainTimeout: .seconds(5))
        _ = h.drive(.scaleRequested(.to(1)))
        h.advance(by: .seconds(5))
        let fired = h.fire(.workerDrain(Self.id(1, 1)))
        #expect(fired.signalsSent == [.signal(pid: 102, signal: 9, group: true)])
        #expect(h.worker(1, 1)?.state == .killed(pid: 102))
        // Killed, it is still not restarted.
        #expect(h.exit(1, 1, .signaled(9)).spawnedIDs.isEmpty)
    }

    @Test func ttinAndTtouAddAndRemoveOneWorker() {
        var h = Self.serving()
        #expect(h.drive(.scaleRequested(.by(1))).spawnedIDs == [Self.id(1, 2)])
        #expect(h.machine.workerCount == 3)
        #expect(h.drive(.scaleRequested(.by(-1))).drainOrders.count == 1)
        #expect(h.machine.workerCount == 2)
    }

    @Test func theCountNeverGoesBelowOne() {
        var h = Self.serving(workers: 1)
        let actions = h.drive(.scaleRequested(.by(-1)))
        #expect(actions.drainOrders.isEmpty)
        #expect(actions.logMessages.contains("scale: 0 workers is out of range; using 1"))
        #expect(actions.logMessages.contains("scale: already 1 worker(s) per generation"))
        #expect(h.generation(1)?.size == 1)
    }

    @Test func aRetiredSlotWhoseProcessIsGoneIsTakenAgain() {
        var h = Self.serving(workers: 3)
        _ = h.drive(.scaleRequested(.to(1)))
        _ = h.exit(1, 2)
        // Slot 1 still drains, slot 2 is free again.
        let actions = h.drive(.scaleRequested(.to(3)))
        #expect(actions.spawnedIDs == [Self.id(1, 2), Self.id(1, 3)])
        #expect(h.worker(1, 2)?.retired == false)
        #expect(h.worker(1, 1)?.retired == true)
        #expect(h.generation(1)?.size == 3)
    }

    @Test func theNextGenerationIsPreparedWithTheScaledCount() {
        var h = Self.serving()
        _ = h.drive(.scaleRequested(.to(3)))
        let reload = h.reload()
        #expect(reload.spawnedIDs == [Self.id(2, 0), Self.id(2, 1), Self.id(2, 2)])
        #expect(h.generation(2)?.settings?.workers == 3)
    }

    @Test func aChangedWorkerCountInTheConfigurationWinsOverTheScale() {
        var h = Self.serving()
        _ = h.drive(.scaleRequested(.to(3)))
        h.settingsByGeneration[2] = GenerationSettings(workers: 5)
        let reload = h.reload()
        #expect(reload.spawnedIDs.count == 5)
        #expect(reload.log(containing: "gen=2: workers = 5 from the configuration replaces the scale to 3") != nil)
        #expect(h.machine.workerCount == 5)
    }

    @Test func scaleDuringAReloadAppliesToTheStartingGenerationToo() {
        var h = Self.serving()
        _ = h.reload()
        _ = h.ready(2, 0)
        // Shrinking the starting generation to its one ready worker completes it.
        let actions = h.drive(.scaleRequested(.to(1)))
        #expect(h.generation(2)?.state == .serving)
        #expect(actions.log(containing: "gen=2 serving: 1/1 ready") != nil)
        #expect(h.generation(1)?.isDraining == true)
        // The retired starting worker exits without failing anything.
        #expect(h.exit(2, 1, .exited(0)).log(containing: "failed") == nil)
        #expect(h.generation(2)?.state == .serving)
    }

    @Test func retiredWorkerExitingDuringItsGenerationsStartDoesNotFailIt() {
        var h = Self.serving()
        _ = h.reload()
        _ = h.drive(.scaleRequested(.to(3)))
        _ = h.drive(.scaleRequested(.to(2)))
        // Slot 2 of gen 2 was added and retired again before it was ready.
        #expect(h.worker(2, 2)?.retired == true)
        #expect(h.exit(2, 2, .exited(1)).log(containing: "failed") == nil)
        _ = h.readyAll(2)
        #expect(h.machine.servingGeneration?.number == 2)
    }

    @Test func scaleIsRefusedWhileStopping() {
        var h = Self.serving()
        _ = h.drive(.stopRequested(.graceful))
        let actions = h.drive(.scaleRequested(.to(5)))
        #expect(actions == [.log(LogRecord(.warning, "scale ignored: the master is stopping"))])
    }

    @Test func slotWaitingForARestartIsDroppedByAScaleDown() {
        var h = Self.serving()
        _ = h.exit(1, 1, .exited(1))
        let actions = h.drive(.scaleRequested(.to(1)))
        #expect(actions.timersCancelled.contains(.respawn(Self.id(1, 1))))
        #expect(h.worker(1, 1)?.state == .gone)
        #expect(h.fire(.respawn(Self.id(1, 1))).spawnedIDs.isEmpty)
    }

    @Test func slotRetiredWhileSpawningDrainsWhenItReportsIn() {
        var h = Self.serving()
        let up = h.handle(.scaleRequested(.to(3)))
        #expect(up.spawnedIDs == [Self.id(1, 2)])
        _ = h.handle(.scaleRequested(.to(2)))
        let spawned = h.handle(.workerSpawned(Self.id(1, 2), pid: 777))
        #expect(spawned.drainOrders == [.drain(pid: 777, signal: 15, group: true, timeout: .seconds(30))])
        #expect(h.worker(1, 2)?.state == .draining(pid: 777))
    }
}
