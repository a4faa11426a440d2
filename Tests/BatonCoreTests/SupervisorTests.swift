import BatonCore
import Testing

/// Start-up of the first generation, and events the machine must shrug off. Reloads, drains,
/// crashes and stops have their own files; `SupervisorHarness` drives the machine.
@Suite struct SupervisorTests {
    static let settings = GenerationSettings(workers: 2)

    // MARK: - Start-up

    @Test func startPreparesTheFirstGeneration() {
        var h = SupervisorHarness()
        #expect(h.handle(.start) == [.log(LogRecord(.info, "gen=1 starting")), .prepareGeneration(1)])
        #expect(h.machine.phase == .starting)
        #expect(h.generation(1)?.state == .preparing)
    }

    @Test func preparedGenerationSetsItsReadyDeadlineAndSpawnsEveryWorker() {
        var h = SupervisorHarness()
        _ = h.handle(.start)
        h.advance(by: .milliseconds(5))
        let settings = GenerationSettings(workers: 3, readyTimeout: .seconds(10))
        #expect(
            h.handle(.generationPrepared(generation: 1, settings)) == [
                .setTimer(.generationReady(generation: 1), deadline: h.now + .seconds(10)),
                .spawn(WorkerID(generation: 1, index: 0)),
                .spawn(WorkerID(generation: 1, index: 1)),
                .spawn(WorkerID(generation: 1, index: 2)),
            ])
        #expect(h.generation(1)?.state == .starting)
        #expect(h.generation(1)?.settings == settings)
        #expect(h.generation(1)?.workers.map(\.state) == [.spawning, .spawning, .spawning])
    }

    @Test func spawnedWorkerIsStartingUntilItIsReady() {
        var h = SupervisorHarness()
        _ = h.handle(.start)
        _ = h.handle(.generationPrepared(generation: 1, Self.settings))
        let id = WorkerID(generation: 1, index: 0)
        #expect(h.handle(.workerSpawned(id, pid: 4121)) == [.log(LogRecord(.info, "gen=1 worker=0 pid=4121 spawned"))])
        #expect(h.worker(1, 0)?.state == .starting(pid: 4121, since: h.now))
        #expect(h.worker(1, 0)?.startedAt == h.now)
        #expect(h.machine.phase == .starting)
    }

    @Test func partialReadinessOnlyLogs() {
        var h = SupervisorHarness()
        _ = h.drive(.start)
        h.advance(by: .milliseconds(182))
        #expect(h.ready(1, 0) == [.log(LogRecord(.info, "gen=1 worker=0 pid=101 ready in 182ms"))])
        #expect(h.machine.phase == .starting)
        #expect(h.generation(1)?.state == .starting)
        #expect(h.machine.servingGeneration == nil)
    }

    @Test func lastWorkerReadyMakesTheGenerationServeAndNotifiesSystemd() {
        var h = SupervisorHarness()
        _ = h.drive(.start)
        h.advance(by: .milliseconds(100))
        _ = h.ready(1, 0)
        h.advance(by: .milliseconds(112))
        #expect(
            h.ready(1, 1) == [
                .log(LogRecord(.info, "gen=1 worker=1 pid=102 ready in 212ms")),
                .cancelTimer(.generationReady(generation: 1)),
                .log(LogRecord(.info, "gen=1 serving: 2/2 ready in 212ms")),
                .notifySystemd(.ready(status: "gen 1 serving: 2/2 ready")),
            ])
        #expect(h.machine.phase == .running)
        #expect(h.machine.servingGeneration?.number == 1)
        #expect(h.machine.servingGeneration?.servingSince == h.now)
        #expect(h.machine.lastReload == nil)
    }

    @Test func theWholeStartThroughTheRuntimesAnswers() {
        var h = SupervisorHarness(workers: 2)
        let started = h.drive(.start)
        #expect(started.preparedGenerations == [1])
        #expect(started.spawnedIDs == [WorkerID(generation: 1, index: 0), WorkerID(generation: 1, index: 1)])
        #expect(started.timersSet == [.generationReady(generation: 1): h.now + .seconds(60)])
        #expect(started.notifications.isEmpty)
        let ready = h.readyAll(1)
        #expect(ready.notifications == [.ready(status: "gen 1 serving: 2/2 ready")])
        #expect(ready.signalsSent.isEmpty)
        #expect(h.machine.phase == .running)
    }

    @Test func startTwiceIsIgnored() {
        var h = SupervisorHarness()
        _ = h.drive(.start)
        #expect(h.handle(.start) == [.log(LogRecord(.warning, "start ignored: the master is already starting"))])
        _ = h.readyAll(1)
        #expect(h.handle(.start) == [.log(LogRecord(.warning, "start ignored: the master is already running"))])
        #expect(h.machine.generations.map(\.number) == [1])
    }

    @Test func servingStatusCountsReadyWorkers() {
        var h = SupervisorHarness(workers: 3)
        #expect(h.machine.servingStatus() == "no generation serving")
        h.startServing()
        #expect(h.machine.servingStatus() == "gen 1 serving: 3/3 ready")
        _ = h.exit(1, 1, .exited(1))
        #expect(h.machine.servingStatus() == "gen 1 serving: 2/3 ready")
    }

    // MARK: - Events to ignore

    @Test func readyFromAnUnknownPIDIsIgnored() {
        var h = SupervisorHarness()
        _ = h.drive(.start)
        let before = h.machine.generations
        #expect(h.handle(.workerReady(pid: 999)) == [])
        #expect(h.machine.generations == before)
        #expect(h.machine.phase == .starting)
    }

    @Test func duplicateReadyIsIgnored() {
        var h = SupervisorHarness()
        _ = h.drive(.start)
        _ = h.ready(1, 0)
        let before = h.machine.generations
        #expect(h.ready(1, 0) == [])
        #expect(h.machine.generations == before)
        _ = h.ready(1, 1)
        #expect(h.machine.phase == .running)
        #expect(h.ready(1, 1) == [])
        #expect(h.ready(1, 0) == [])
    }

    @Test func exitOfAnUnknownPIDIsLoggedAtDebugOnly() {
        var h = SupervisorHarness()
        h.startServing()
        let before = h.machine.generations
        #expect(
            h.handle(.processExited(pid: 999, .signaled(9)))
                == [.log(LogRecord(.debug, "reaped pid=999 (killed by SIGKILL), not a worker"))])
        #expect(h.machine.generations == before)
    }

    @Test func timersOfGenerationsThatAreGoneAreIgnored() {
        var h = SupervisorHarness()
        h.startServing()
        h.reloadServing()
        _ = h.exitAll(1)
        #expect(h.machine.generations.map(\.number) == [2])
        let before = h.machine.generations
        for number in [1, 7] {
            let id = WorkerID(generation: number, index: 0)
            #expect(h.handle(.timerFired(.generationReady(generation: number))) == [])
            #expect(h.handle(.timerFired(.drain(generation: number))) == [])
            #expect(h.handle(.timerFired(.respawn(id))) == [])
            #expect(h.handle(.timerFired(.workerReady(id))) == [])
        }
        #expect(h.machine.generations == before)
    }

    @Test func timersThatNoLongerApplyToALiveGenerationAreIgnored() {
        var h = SupervisorHarness()
        h.startServing()
        // Generation 1 serves: its ready deadline passed, no slot waits for a restart or readiness.
        #expect(h.handle(.timerFired(.generationReady(generation: 1))) == [])
        #expect(h.handle(.timerFired(.respawn(WorkerID(generation: 1, index: 0)))) == [])
        #expect(h.handle(.timerFired(.workerReady(WorkerID(generation: 1, index: 1)))) == [])
        #expect(h.handle(.timerFired(.respawn(WorkerID(generation: 1, index: 9)))) == [])
        #expect(h.machine.servingGeneration?.readyWorkers == 2)
    }

    @Test func generationPreparedForAnUnknownGenerationIsIgnored() {
        var h = SupervisorHarness()
        h.startServing()
        #expect(h.handle(.generationPrepared(generation: 7, Self.settings)) == [])
        #expect(h.handle(.generationPreparationFailed(generation: 7, reason: "late")) == [])
        #expect(h.machine.generations.map(\.number) == [1])
    }

    @Test func generationPreparedTwiceIsIgnored() {
        var h = SupervisorHarness()
        _ = h.drive(.start)
        #expect(h.handle(.generationPrepared(generation: 1, Self.settings)) == [])
        #expect(h.handle(.generationPreparationFailed(generation: 1, reason: "late")) == [])
        #expect(h.generation(1)?.state == .starting)
    }

    @Test func workerSpawnedForASlotThatIsNotSpawningIsKilled() {
        var h = SupervisorHarness()
        _ = h.drive(.start)
        let running = WorkerID(generation: 1, index: 0)
        #expect(
            h.handle(.workerSpawned(running, pid: 555)) == [
                .log(LogRecord(.warning, "gen=1 worker=0 pid=555 started for a generation that is gone; killing it")),
                .signal(pid: 555, signal: 9, group: true),
            ])
        #expect(h.worker(1, 0)?.pid == 101)
        let unknown = WorkerID(generation: 9, index: 0)
        #expect(h.handle(.workerSpawned(unknown, pid: 556)).signalsSent == [.signal(pid: 556, signal: 9, group: true)])
        let beyond = WorkerID(generation: 1, index: 5)
        #expect(h.handle(.workerSpawned(beyond, pid: 557)).signalsSent == [.signal(pid: 557, signal: 9, group: true)])
    }

    @Test func workerSpawnFailedForASlotThatIsNotSpawningIsIgnored() {
        var h = SupervisorHarness()
        h.startServing()
        let before = h.machine.generations
        #expect(h.handle(.workerSpawnFailed(WorkerID(generation: 1, index: 0), reason: "late")) == [])
        #expect(h.handle(.workerSpawnFailed(WorkerID(generation: 4, index: 0), reason: "late")) == [])
        #expect(h.machine.generations == before)
    }

    @Test func eventsBeforeStartDoNothing() {
        var h = SupervisorHarness()
        #expect(h.handle(.workerReady(pid: 1)) == [])
        #expect(h.handle(.generationPrepared(generation: 1, Self.settings)) == [])
        #expect(h.handle(.timerFired(.drain(generation: 1))) == [])
        #expect(h.machine.phase == .idle)
        #expect(h.machine.generations.isEmpty)
    }

    @Test func timeNeverGoesBackwards() {
        // An event stamped earlier than one already seen is taken as happening now, not in the past.
        var machine = Supervisor()
        _ = machine.handle(.start, at: MonotonicInstant(nanoseconds: 5_000_000_000))
        let actions = machine.handle(
            .generationPrepared(generation: 1, Self.settings), at: MonotonicInstant(nanoseconds: 1_000_000_000))
        #expect(actions.timersSet[.generationReady(generation: 1)] == MonotonicInstant(nanoseconds: 65_000_000_000))
    }
}
