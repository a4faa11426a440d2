import BatonCore
import Testing

/// Reloads and start-ups that fail: the failing generation is drained, the serving one is left
/// alone, and every waiter learns why.
@Suite struct SupervisorReloadFailureTests {
    static func id(_ generation: Int, _ index: Int) -> WorkerID { WorkerID(generation: generation, index: index) }

    /// A master whose generation 1 (pids 101 and 102) serves, with reload 9 starting generation 2
    /// (pids 103 and 104, not ready yet).
    static func reloading() -> SupervisorHarness {
        var h = SupervisorHarness()
        h.startServing()
        h.advance(by: .seconds(1))
        _ = h.reload(id: 9)
        return h
    }

    // MARK: - A new worker exits before the generation is ready

    @Test func newWorkerExitingBeforeReadyFailsTheReload() {
        var h = Self.reloading()
        h.advance(by: .milliseconds(40))
        let actions = h.exit(2, 0, .exited(3))
        let reason = "worker=0 pid=103 exited with status 3 before ready"
        #expect(actions.reloadReplies == [.reloadFinished(requests: [9], .failed(generation: 2, reason: reason, outputOf: 103))])
        #expect(
            actions.log(containing: "reload failed")
                == LogRecord(.error, "reload failed: gen=2 failed: \(reason); gen=1 keeps serving", outputOf: 103))
        #expect(actions.notifications == [.ready(status: "gen 1 serving: 2/2 ready; last reload failed: \(reason)")])
        #expect(actions.timersCancelled.contains(.generationReady(generation: 2)))
        #expect(h.generation(2)?.state == .failed(since: h.now))
        #expect(h.machine.lastReload?.outcome == .failed(generation: 2, reason: reason, outputOf: 103))
        #expect(h.machine.lastReload?.finishedAt == h.now)
    }

    @Test func failedGenerationsOtherWorkersAreDrainedAndTheServingOnesUntouched() {
        var h = Self.reloading()
        let actions = h.exit(2, 0, .exited(3))
        // 103's group is cleaned up after its exit; 104 is told to drain; 101 and 102 hear nothing.
        #expect(actions.signalsSent == [.signal(pid: 103, signal: 9, group: true), .signal(pid: 104, signal: 15, group: true)])
        #expect(actions.timersSet == [.drain(generation: 2): h.now + .seconds(30)])
        #expect(actions.log(containing: "gen=2 draining (failed)") != nil)
        #expect(h.generation(1)?.state == .serving)
        #expect(h.generation(1)?.workers.map(\.pid) == [101, 102])
        #expect(h.generation(1)?.workers.allSatisfy(\.isReady) == true)
        #expect(h.machine.servingGeneration?.number == 1)
        #expect(h.machine.phase == .running)
    }

    @Test func failedGenerationIsForgottenOnceItsWorkersHaveExited() {
        var h = Self.reloading()
        _ = h.exit(2, 0, .exited(3))
        let gone = h.exit(2, 1, .signaled(15))
        #expect(gone.forgottenGenerations == [2])
        #expect(gone.log(containing: "gen=2 exited") == LogRecord(.info, "gen=2 exited"))
        #expect(gone.timersCancelled.contains(.drain(generation: 2)))
        #expect(!gone.signalledPIDs.contains(101) && !gone.signalledPIDs.contains(102))
        #expect(h.machine.generations.map(\.number) == [1])
    }

    @Test func newWorkerExitingAfterReadyButBeforeTheOthersFailsTheReload() {
        var h = Self.reloading()
        _ = h.ready(2, 0)
        let actions = h.exit(2, 0, .signaled(11))
        let reason = "worker=0 pid=103 killed by SIGSEGV after ready, before its generation was complete"
        #expect(actions.outcome(of: 9) == .failed(generation: 2, reason: reason, outputOf: 103))
        #expect(!actions.signalledPIDs.contains(101) && !actions.signalledPIDs.contains(102))
    }

    @Test func failedReloadIsRecordedForStatus() {
        var h = Self.reloading()
        _ = h.exit(2, 1, .exited(2))
        #expect(h.machine.servingStatus() == "gen 1 serving: 2/2 ready; last reload failed: worker=1 pid=104 exited with status 2 before ready")
    }

    // MARK: - Ready timeout

    @Test func readyTimeoutFailsTheReload() {
        var h = Self.reloading()
        _ = h.ready(2, 0)
        h.advance(by: .seconds(60))
        let actions = h.fire(.generationReady(generation: 2))
        let reason = "not ready within 1m: 1/2 workers ready (worker=1 pid=104)"
        #expect(actions.reloadReplies == [.reloadFinished(requests: [9], .failed(generation: 2, reason: reason, outputOf: 104))])
        #expect(actions.signalsSent == [.signal(pid: 103, signal: 15, group: true), .signal(pid: 104, signal: 15, group: true)])
        #expect(h.generation(2)?.state == .failed(since: h.now))
        #expect(h.generation(1)?.state == .serving)
    }

    @Test func readyTimeoutNamesTheFirstWorkerThatIsNotReady() {
        var h = SupervisorHarness(workers: 3, readyTimeout: .milliseconds(1500))
        h.startServing()
        _ = h.reload(id: 9)
        _ = h.ready(2, 1)
        h.advance(by: .milliseconds(1500))
        let actions = h.fire(.generationReady(generation: 2))
        if case .failed(_, let reason, let pid)? = actions.outcome(of: 9) {
            #expect(reason == "not ready within 1.5s: 1/3 workers ready (worker=0 pid=104)")
            #expect(pid == 104)
        } else {
            Issue.record("expected a failed outcome, got \(String(describing: actions.outcome(of: 9)))")
        }
    }

    // MARK: - Spawn and preparation failures

    @Test func spawnFailureFailsTheReloadWithItsReason() {
        var h = SupervisorHarness()
        h.startServing()
        h.spawnFailures[Self.id(2, 1)] = "cannot execute /srv/web: Permission denied"
        let actions = h.reload(id: 9)
        let reason = "worker=1: cannot execute /srv/web: Permission denied"
        #expect(actions.reloadReplies == [.reloadFinished(requests: [9], .failed(generation: 2, reason: reason, outputOf: nil))])
        #expect(actions.log(containing: "reload failed") == LogRecord(.error, "reload failed: gen=2 failed: \(reason); gen=1 keeps serving"))
        // Worker 0 was already running: it is drained.
        #expect(actions.signalsSent == [.signal(pid: 103, signal: 15, group: true)])
        #expect(h.machine.servingGeneration?.number == 1)
    }

    @Test func workerSpawnedAfterItsGenerationFailedIsDrained() {
        // The runtime performs the remaining spawns of a list even after the first one failed.
        var h = SupervisorHarness()
        h.startServing()
        h.spawnFailures[Self.id(2, 0)] = "fork: Resource temporarily unavailable"
        let actions = h.reload(id: 9)
        #expect(actions.outcome(of: 9) == .failed(generation: 2, reason: "worker=0: fork: Resource temporarily unavailable", outputOf: nil))
        #expect(actions.signalsSent == [.signal(pid: 103, signal: 15, group: true)])
        #expect(h.worker(2, 1)?.state == .draining(pid: 103))
        #expect(actions.timersSet[.drain(generation: 2)] == h.now + .seconds(30))
        #expect(h.exit(2, 1).forgottenGenerations == [2])
    }

    @Test func preparationFailureFailsTheReloadAndSpawnsNothing() {
        var h = SupervisorHarness()
        h.startServing()
        let reason = "config.toml:12: program: unknown key \"wrokers\""
        h.preparationFailures[2] = reason
        #expect(
            h.reload(id: 9) == [
                .notifySystemd(.reloading(status: "reloading")),
                .log(LogRecord(.info, "reload: gen=2 starting")),
                .prepareGeneration(2),
                .forgetGeneration(2),
                .log(LogRecord(.error, "reload failed: gen=2 failed: \(reason); gen=1 keeps serving")),
                .notifySystemd(.ready(status: "gen 1 serving: 2/2 ready; last reload failed: \(reason)")),
                .reloadFinished(requests: [9], .failed(generation: 2, reason: reason, outputOf: nil)),
            ])
        #expect(h.machine.generations.map(\.number) == [1])
        #expect(h.machine.servingGeneration?.number == 1)
    }

    @Test func reloadAfterAFailedReloadReplacesTheServingGeneration() {
        var h = SupervisorHarness()
        h.startServing()
        h.preparationFailures[2] = "bad config"
        _ = h.reload(id: 1)
        let actions = h.reloadServing(id: 2)
        #expect(actions.outcome(of: 2) == .succeeded(generation: 3, duration: .zero))
        #expect(actions.signalledPIDs == [101, 102])
        #expect(h.machine.servingStatus() == "gen 3 serving: 2/2 ready; last reload ok in 0ms")
    }

    // MARK: - The first generation fails

    @Test func initialGenerationFailingStopsTheMasterWithExitCode1OnceItsWorkersAreGone() {
        var h = SupervisorHarness()
        _ = h.drive(.start)
        let failed = h.exit(1, 0, .exited(127))
        #expect(
            failed.log(containing: "start-up failed")
                == LogRecord(.error, "gen=1 failed: worker=0 pid=101 exited with status 127 before ready; start-up failed", outputOf: 101))
        #expect(failed.notifications == [.stopping(status: "stopping")])
        #expect(failed.signalsSent == [.signal(pid: 101, signal: 9, group: true), .signal(pid: 102, signal: 15, group: true)])
        #expect(failed.exitCodes.isEmpty)
        #expect(h.machine.phase == .stopping(.graceful))

        let last = h.exit(1, 1, .signaled(15))
        #expect(last.forgottenGenerations == [1])
        #expect(last.last == .exit(code: 1))
        #expect(h.machine.phase == .stopped)
    }

    @Test func initialGenerationWithOneWorkerFailingExitsAtOnce() {
        var h = SupervisorHarness(workers: 1)
        _ = h.drive(.start)
        let failed = h.exit(1, 0, .exited(1))
        #expect(failed.forgottenGenerations == [1])
        #expect(failed.last == .exit(code: 1))
    }

    @Test func initialPreparationFailureExitsWith1AndSpawnsNothing() {
        var h = SupervisorHarness()
        h.preparationFailures[1] = "listener \"http\": address already in use"
        let actions = h.drive(.start)
        #expect(actions.spawnedIDs.isEmpty)
        #expect(actions.log(containing: "start-up failed")?.level == .error)
        #expect(actions.reloadReplies.isEmpty)
        #expect(actions.last == .exit(code: 1))
        #expect(h.machine.phase == .stopped)
    }

    @Test func initialReadyTimeoutDrainsAndExitsWith1() {
        var h = SupervisorHarness(readyTimeout: .seconds(5))
        _ = h.drive(.start)
        _ = h.ready(1, 1)
        h.advance(by: .seconds(5))
        let failed = h.fire(.generationReady(generation: 1))
        #expect(failed.log(containing: "not ready within 5s: 1/2 workers ready (worker=0 pid=101)")?.outputOf == 101)
        #expect(failed.signalsSent == [.signal(pid: 101, signal: 15, group: true), .signal(pid: 102, signal: 15, group: true)])
        #expect(failed.exitCodes.isEmpty)
        _ = h.exit(1, 0)
        #expect(h.exit(1, 1).exitCodes == [1])
    }

    @Test func initialSpawnFailureExitsWith1() {
        var h = SupervisorHarness(workers: 1)
        h.spawnFailures[Self.id(1, 0)] = "no such file: /srv/web"
        let actions = h.drive(.start)
        #expect(actions.log(containing: "start-up failed")?.message == "gen=1 failed: worker=0: no such file: /srv/web; start-up failed")
        #expect(actions.last == .exit(code: 1))
    }

    @Test func initialSpawnFailureOfEveryWorkerExitsWith1() {
        // `baton run --workers 2 -- /no/such/program`: the runtime answers both spawns of the
        // list, the second after the first one's failure already stopped the master.
        var h = SupervisorHarness(workers: 2)
        h.spawnFailures[Self.id(1, 0)] = "no such file: /no/such/program"
        h.spawnFailures[Self.id(1, 1)] = "no such file: /no/such/program"
        let actions = h.drive(.start)
        #expect(actions.spawnedIDs == [Self.id(1, 0), Self.id(1, 1)])
        #expect(actions.forgottenGenerations == [1])
        #expect(actions.exitCodes == [1])
        #expect(h.machine.phase == .stopped)
    }

    @Test func initialSpawnFailureOfTheFirstWorkerDrainsTheSecondAndExitsWith1() {
        var h = SupervisorHarness(workers: 2)
        h.spawnFailures[Self.id(1, 0)] = "no such file: /no/such/program"
        let actions = h.drive(.start)
        #expect(actions.signalsSent == [.signal(pid: 101, signal: 15, group: true)])
        #expect(actions.exitCodes.isEmpty)
        #expect(h.exit(1, 1).exitCodes == [1])
    }

    @Test func reloadRequestedDuringAFailedStartUpIsAnsweredWithTheFailure() {
        var h = SupervisorHarness()
        _ = h.drive(.start)
        _ = h.reload(id: 4)
        let failed = h.exit(1, 0, .exited(1))
        #expect(failed.outcome(of: 4) == .failed(generation: nil, reason: "start-up failed", outputOf: nil))
        #expect(failed.preparedGenerations.isEmpty)
    }
}
