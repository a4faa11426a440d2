import BatonCore
import Testing

/// A worker of the serving generation that dies is started again with exponential backoff; a
/// crash loop is reported.
@Suite struct SupervisorCrashTests {
    static let slot = WorkerID(generation: 1, index: 0)

    /// Generation 1 (pids 101 and 102) serves since 10s ago.
    static func serving(
        workers: Int = 2, readyTimeout: Duration = .seconds(60), killMode: KillMode = .group
    ) -> SupervisorHarness {
        var h = SupervisorHarness(workers: workers, readyTimeout: readyTimeout, killMode: killMode)
        h.startServing()
        h.advance(by: .seconds(10))
        return h
    }

    /// Worker 0 crashes; returns the restart delay the machine chose.
    static func crash(_ h: inout SupervisorHarness, _ reason: ExitReason = .exited(1)) -> Duration? {
        let actions = h.exit(1, 0, reason)
        return actions.timersSet[.respawn(slot)].map { $0.duration(since: h.now) }
    }

    /// Lets worker 0's restart timer fire, which spawns its replacement.
    static func restart(_ h: inout SupervisorHarness) {
        guard case .waitingRestart(let until)? = h.worker(1, 0)?.state else {
            Issue.record("worker 0 is not waiting for a restart: \(String(describing: h.worker(1, 0)?.state))")
            return
        }
        h.advance(by: until.duration(since: h.now))
        _ = h.fire(.respawn(slot))
    }

    // MARK: - One crash

    @Test func crashOfAServingWorkerSchedulesItsRestart() {
        var h = Self.serving()
        #expect(
            h.exit(1, 0, .exited(1)) == [
                .signal(pid: 101, signal: 9, group: true),
                .setTimer(.respawn(Self.slot), deadline: h.now + .milliseconds(100)),
                .log(LogRecord(.warning, "gen=1 worker=0 pid=101 exited with status 1; restarting in 100ms", outputOf: 101)),
            ])
        #expect(h.worker(1, 0)?.state == .waitingRestart(until: h.now + .milliseconds(100)))
        #expect(h.worker(1, 0)?.restarts == 1)
        #expect(h.worker(1, 0)?.crashesInARow == 1)
        #expect(h.machine.servingGeneration?.number == 1)
        #expect(h.machine.phase == .running)
    }

    @Test func crashBySignalIsNamed() {
        var h = Self.serving()
        let actions = h.exit(1, 1, .signaled(11))
        #expect(actions.logMessages == ["gen=1 worker=1 pid=102 killed by SIGSEGV; restarting in 100ms"])
    }

    @Test func crashWithKillModeProcessCleansUpNoGroup() {
        var h = Self.serving(killMode: .process)
        #expect(h.exit(1, 0, .exited(1)).signalsSent == [])
    }

    @Test func crashLeavesTheOtherWorkersAndNotificationsAlone() {
        var h = Self.serving()
        let actions = h.exit(1, 0, .exited(1))
        #expect(actions.signalledPIDs == [101])
        #expect(actions.notifications.isEmpty)
        #expect(actions.reloadReplies.isEmpty)
        #expect(h.worker(1, 1)?.isReady == true)
    }

    // MARK: - The replacement

    @Test func restartTimerSpawnsTheSameSlot() {
        var h = Self.serving()
        _ = h.exit(1, 0, .exited(1))
        h.advance(by: .milliseconds(100))
        #expect(h.handle(.timerFired(.respawn(Self.slot))) == [.spawn(Self.slot)])
        #expect(h.worker(1, 0)?.state == .spawning)
    }

    @Test func spawnedReplacementHasAReadyDeadline() {
        var h = Self.serving()
        _ = h.exit(1, 0, .exited(1))
        h.advance(by: .milliseconds(100))
        _ = h.handle(.timerFired(.respawn(Self.slot)))
        #expect(
            h.handle(.workerSpawned(Self.slot, pid: 300)) == [
                .log(LogRecord(.info, "gen=1 worker=0 pid=300 spawned")),
                .setTimer(.workerReady(Self.slot), deadline: h.now + .seconds(60)),
            ])
        #expect(h.worker(1, 0)?.state == .starting(pid: 300, since: h.now))
    }

    @Test func readyReplacementCancelsItsDeadline() {
        var h = Self.serving()
        _ = h.exit(1, 0, .exited(1))
        Self.restart(&h)
        h.advance(by: .milliseconds(30))
        #expect(
            h.ready(1, 0) == [
                .log(LogRecord(.info, "gen=1 worker=0 pid=103 ready in 30ms")),
                .cancelTimer(.workerReady(Self.slot)),
            ])
        #expect(h.machine.servingStatus() == "gen 1 serving: 2/2 ready")
    }

    @Test func replacementNotReadyInTimeIsKilled() {
        var h = Self.serving()
        _ = h.exit(1, 0, .exited(1))
        Self.restart(&h)
        h.advance(by: .seconds(60))
        #expect(
            h.fire(.workerReady(Self.slot)) == [
                .log(LogRecord(.warning, "gen=1 worker=0 pid=103 not ready in time; killing it", outputOf: 103)),
                .signal(pid: 103, signal: 9, group: true),
            ])
    }

    @Test func replacementNotReadyInTimeWithKillModeProcessIsKilledAlone() {
        var h = Self.serving(killMode: .process)
        _ = h.exit(1, 0, .exited(1))
        Self.restart(&h)
        h.advance(by: .seconds(60))
        #expect(h.fire(.workerReady(Self.slot)).signalsSent == [.signal(pid: 103, signal: 9, group: false)])
    }

    @Test func replacementThatNeverBecameReadyDoesNotCountAsStable() {
        // Killed at ready_timeout (60s, as long as stableAfter), it never served: its death is the
        // second crash in a row, not a fresh start. Otherwise a worker that hangs at start-up is
        // restarted every minute with the shortest backoff and never reported as a crash loop.
        var h = Self.serving()
        #expect(Self.crash(&h) == .milliseconds(100))
        Self.restart(&h)
        h.advance(by: .seconds(60))
        _ = h.fire(.workerReady(Self.slot))
        #expect(Self.crash(&h, .signaled(9)) == .milliseconds(200))
    }

    @Test func replacementExitingBeforeReadyCancelsItsDeadline() {
        var h = Self.serving()
        _ = h.exit(1, 0, .exited(1))
        Self.restart(&h)
        let actions = h.exit(1, 0, .exited(1))
        #expect(actions.timersCancelled == [.workerReady(Self.slot)])
        #expect(actions.timersSet[.respawn(Self.slot)] == h.now + .milliseconds(200))
    }

    @Test func replacementThatCannotBeSpawnedIsRetried() {
        var h = Self.serving()
        _ = h.exit(1, 0, .exited(1))
        h.spawnFailures[Self.slot] = "fork: Resource temporarily unavailable"
        h.advance(by: .milliseconds(100))
        let actions = h.fire(.respawn(Self.slot))
        #expect(actions.spawnedIDs == [Self.slot])
        #expect(
            actions.logRecords == [
                LogRecord(.warning, "gen=1 worker=0 could not be started: fork: Resource temporarily unavailable; restarting in 200ms")
            ])
        #expect(actions.timersSet == [.respawn(Self.slot): h.now + .milliseconds(200)])
        #expect(h.worker(1, 0)?.state == .waitingRestart(until: h.now + .milliseconds(200)))
    }

    // MARK: - Backoff

    @Test func backoffDoublesFrom100msAndStopsAt30s() {
        var h = Self.serving()
        let expected: [Duration] = [
            .milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .milliseconds(1600),
            .milliseconds(3200), .milliseconds(6400), .milliseconds(12800), .milliseconds(25600), .seconds(30),
            .seconds(30), .seconds(30),
        ]
        var delays: [Duration?] = []
        for _ in expected {
            delays.append(Self.crash(&h))
            Self.restart(&h)
        }
        #expect(delays == expected)
        #expect(h.worker(1, 0)?.restarts == expected.count)
    }

    @Test(arguments: [
        (1, Duration.milliseconds(100)), (2, .milliseconds(200)), (3, .milliseconds(400)), (6, .milliseconds(3200)),
        (9, .milliseconds(25600)), (10, .seconds(30)), (1000, .seconds(30)), (0, .milliseconds(100)),
    ])
    func restartPolicyBackoff(crashes: Int, delay: Duration) {
        #expect(RestartPolicy().backoff(afterCrashes: crashes) == delay)
    }

    @Test func workerThatLivedAMinuteStartsTheBackoffAgain() {
        var h = Self.serving()
        #expect(Self.crash(&h) == .milliseconds(100))
        Self.restart(&h)
        #expect(Self.crash(&h) == .milliseconds(200))
        Self.restart(&h)
        _ = h.ready(1, 0)
        h.advance(by: .seconds(60))
        #expect(Self.crash(&h) == .milliseconds(100))
        #expect(h.worker(1, 0)?.crashesInARow == 1)
        #expect(h.worker(1, 0)?.restarts == 3)
    }

    @Test func workerThatLivedLessThanAMinuteKeepsTheBackoffGrowing() {
        var h = Self.serving()
        #expect(Self.crash(&h) == .milliseconds(100))
        Self.restart(&h)
        #expect(Self.crash(&h) == .milliseconds(200))
        Self.restart(&h)
        _ = h.ready(1, 0)
        h.advance(by: .seconds(60) - .milliseconds(1))
        #expect(Self.crash(&h) == .milliseconds(400))
    }

    @Test func firstCrashAfterALongLifeUsesTheShortestDelay() {
        var h = Self.serving()
        h.advance(by: .seconds(3600))
        #expect(Self.crash(&h) == .milliseconds(100))
    }

    @Test func eachSlotHasItsOwnBackoff() {
        var h = Self.serving()
        #expect(Self.crash(&h) == .milliseconds(100))
        Self.restart(&h)
        #expect(Self.crash(&h) == .milliseconds(200))
        let other = h.exit(1, 1, .exited(1))
        #expect(other.timersSet == [.respawn(WorkerID(generation: 1, index: 1)): h.now + .milliseconds(100)])
    }

    // MARK: - Crash loop

    @Test func fifthCrashInARowIsReportedAsACrashLoop() {
        var h = Self.serving()
        for crash in 1...4 {
            let actions = h.exit(1, 0, .exited(1))
            #expect(actions.log(containing: "crash loop") == nil, "crash \(crash)")
            Self.restart(&h)
        }
        let fifth = h.exit(1, 0, .exited(1))
        #expect(fifth.log(containing: "crash loop") == LogRecord(.error, "gen=1 worker=0 crash loop: 5 crashes in a row; next restart in 1.6s"))
        Self.restart(&h)
        let sixth = h.exit(1, 0, .exited(1))
        #expect(sixth.log(containing: "crash loop")?.message == "gen=1 worker=0 crash loop: 6 crashes in a row; next restart in 3.2s")
    }

    @Test func crashLoopThresholdComesFromThePolicy() {
        var policy = RestartPolicy()
        policy.crashLoopThreshold = 2
        policy.initialBackoff = .seconds(1)
        policy.maximumBackoff = .seconds(3)
        var h = SupervisorHarness(restartPolicy: policy)
        h.startServing()
        #expect(Self.crash(&h) == .seconds(1))
        Self.restart(&h)
        let second = h.exit(1, 0, .exited(1))
        #expect(second.log(containing: "crash loop")?.message == "gen=1 worker=0 crash loop: 2 crashes in a row; next restart in 2s")
        Self.restart(&h)
        #expect(Self.crash(&h) == .seconds(3))
    }

    // MARK: - Crashes around reloads

    @Test func crashedSlotOfAReplacedGenerationIsNotRestarted() {
        var h = Self.serving()
        _ = h.exit(1, 0, .exited(1))
        _ = h.reloadServing()
        h.advance(by: .milliseconds(100))
        #expect(h.fire(.respawn(Self.slot)) == [])
        #expect(h.worker(1, 0)?.state == .gone)
    }

    @Test func crashOfTheServingGenerationDuringAReloadIsRestarted() {
        var h = Self.serving()
        _ = h.reload(id: 1)
        #expect(Self.crash(&h) == .milliseconds(100))
        h.advance(by: .milliseconds(100))
        #expect(h.fire(.respawn(Self.slot)).spawnedIDs == [Self.slot])
        #expect(h.generation(2)?.state == .starting)
    }

    @Test func replacementStillStartingWhenItsGenerationIsReplacedIsDrained() {
        var h = Self.serving()
        _ = h.exit(1, 0, .exited(1))
        Self.restart(&h)
        let actions = h.reloadServing()
        #expect(actions.signalsSent.contains(.signal(pid: 103, signal: 15, group: true)))
        #expect(actions.timersCancelled.contains(.workerReady(Self.slot)))
        #expect(h.worker(1, 0)?.state == .draining(pid: 103))
    }
}
