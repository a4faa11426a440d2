import BatonCore
import Testing

/// Readiness for programs that never notify: `ready = "spawn"`, `"delay"` and `"exec"` (a probe
/// command), all bounded by `ready_timeout`; `READY=1` counts only with `"notify"`.
@Suite struct SupervisorReadinessTests {
    static func id(_ generation: Int, _ index: Int) -> WorkerID { WorkerID(generation: generation, index: index) }

    // MARK: - spawn

    @Test func spawnReadinessServesAsSoonAsEveryWorkerIsStarted() {
        var h = SupervisorHarness(workers: 2, readiness: .spawn)
        let actions = h.drive(.start)
        #expect(h.worker(1, 0)?.isReady == true)
        #expect(h.worker(1, 1)?.isReady == true)
        #expect(h.machine.phase == .running)
        #expect(actions.log(containing: "gen=1 serving: 2/2 ready") != nil)
        #expect(actions.notifications.contains(.ready(status: "gen 1 serving: 2/2 ready")))
    }

    @Test func spawnReadinessReplacementIsReadyAtOnceAndItsTimerCancelled() {
        var h = SupervisorHarness(workers: 1, readiness: .spawn)
        h.startServing()
        _ = h.exit(1, 0, .exited(1))
        h.advance(by: .milliseconds(100))
        let actions = h.fire(.respawn(Self.id(1, 0)))
        #expect(h.worker(1, 0)?.isReady == true)
        #expect(actions.timersCancelled.contains(.workerReady(Self.id(1, 0))))
    }

    // MARK: - delay

    @Test func delayReadinessSetsATimerPerWorker() {
        var h = SupervisorHarness(workers: 2, readiness: .delay(.milliseconds(300)))
        let actions = h.drive(.start)
        #expect(actions.timersSet[.readyDelay(Self.id(1, 0))] == h.now + .milliseconds(300))
        #expect(actions.timersSet[.readyDelay(Self.id(1, 1))] == h.now + .milliseconds(300))
        #expect(h.worker(1, 0)?.isReady == false)
    }

    @Test func delayPassedMakesTheWorkerReadyAndTheLastOnePromotes() {
        var h = SupervisorHarness(workers: 2, readiness: .delay(.milliseconds(300)))
        _ = h.drive(.start)
        h.advance(by: .milliseconds(300))
        _ = h.fire(.readyDelay(Self.id(1, 0)))
        #expect(h.worker(1, 0)?.isReady == true)
        #expect(h.machine.phase == .starting)
        let last = h.fire(.readyDelay(Self.id(1, 1)))
        #expect(last.log(containing: "gen=1 worker=1 pid=102 ready in 300ms") != nil)
        #expect(h.machine.phase == .running)
    }

    @Test func zeroDelayIsReadyAtSpawn() {
        var h = SupervisorHarness(workers: 1, readiness: .delay(.zero))
        _ = h.drive(.start)
        #expect(h.machine.phase == .running)
    }

    @Test func delayTimerOfAWorkerThatExitedIsCancelledAndIgnored() {
        var h = SupervisorHarness(workers: 1, readiness: .delay(.seconds(1)))
        _ = h.drive(.start)
        h.advance(by: .seconds(1))
        _ = h.fire(.readyDelay(Self.id(1, 0)))
        #expect(h.machine.servingGeneration?.number == 1)
        h.advance(by: .seconds(1))
        _ = h.exit(1, 0, .exited(1))
        h.advance(by: .milliseconds(100))
        _ = h.fire(.respawn(Self.id(1, 0)))
        // The replacement crashes before its delay passed: its timer goes with it.
        let crashed = h.exit(1, 0, .exited(1))
        #expect(crashed.timersCancelled.contains(.readyDelay(Self.id(1, 0))))
        #expect(h.fire(.readyDelay(Self.id(1, 0))).isEmpty)
        #expect(h.worker(1, 0)?.isReady == false)
    }

    @Test func delayIsStillBoundedByTheReadyTimeout() {
        var h = SupervisorHarness(workers: 1, readyTimeout: .seconds(1), readiness: .delay(.seconds(5)))
        _ = h.drive(.start)
        h.advance(by: .seconds(1))
        let failed = h.fire(.generationReady(generation: 1))
        #expect(failed.log(containing: "gen=1 failed: not ready within 1s: 0/1 workers ready") != nil)
        #expect(failed.timersCancelled.contains(.readyDelay(Self.id(1, 0))))
        #expect(failed.exitCodes.isEmpty)  // exits once the worker is gone
    }

    // MARK: - READY=1

    @Test func readyMessageIsIgnoredUnlessReadinessIsNotify() {
        var h = SupervisorHarness(workers: 1, readiness: .delay(.seconds(5)))
        _ = h.drive(.start)
        let actions = h.ready(1, 0)
        #expect(actions == [.log(LogRecord(.debug, "gen=1 worker=0 pid=101 sent READY=1: ignored, readiness is delay"))])
        #expect(h.worker(1, 0)?.isReady == false)
    }

    // MARK: - exec

    @Test func execReadinessProbesAtOnce() {
        var h = SupervisorHarness(workers: 2, readiness: .exec(interval: .milliseconds(500)))
        let actions = h.drive(.start)
        #expect(actions.probesRun == [.runProbe(Self.id(1, 0), pid: 101), .runProbe(Self.id(1, 1), pid: 102)])
    }

    @Test func successfulProbeMakesTheWorkerReady() {
        var h = SupervisorHarness(workers: 1, readiness: .exec(interval: .milliseconds(500)))
        _ = h.drive(.start)
        h.advance(by: .milliseconds(40))
        let actions = h.drive(.probeExited(Self.id(1, 0), pid: 101, .exited(0)))
        #expect(actions.log(containing: "gen=1 worker=0 pid=101 ready in 40ms") != nil)
        #expect(actions.probesStopped.isEmpty)  // the probe that said so has already ended
        #expect(h.machine.phase == .running)
    }

    @Test func failedProbeRunsAgainAfterTheInterval() {
        var h = SupervisorHarness(workers: 1, readiness: .exec(interval: .milliseconds(500)))
        _ = h.drive(.start)
        h.advance(by: .milliseconds(20))
        let failed = h.drive(.probeExited(Self.id(1, 0), pid: 101, .exited(1)))
        #expect(failed.timersSet == [.probe(Self.id(1, 0)): h.now + .milliseconds(500)])
        #expect(failed.log(containing: "not ready yet: probe exited with status 1; next in 500ms")?.level == .debug)
        #expect(h.worker(1, 0)?.isReady == false)
        h.advance(by: .milliseconds(500))
        #expect(h.fire(.probe(Self.id(1, 0))) == [.runProbe(Self.id(1, 0), pid: 101)])
    }

    @Test func probesThatNeverSucceedFailTheGenerationAtTheReadyTimeout() {
        var h = SupervisorHarness(workers: 1, readyTimeout: .seconds(2), readiness: .exec(interval: .milliseconds(500)))
        _ = h.drive(.start)
        _ = h.drive(.probeExited(Self.id(1, 0), pid: 101, .exited(1)))
        h.advance(by: .seconds(2))
        let failed = h.fire(.generationReady(generation: 1))
        #expect(failed.log(containing: "not ready within 2s: 0/1 workers ready (worker=0 pid=101)") != nil)
        #expect(failed.timersCancelled.contains(.probe(Self.id(1, 0))))
        #expect(failed.probesStopped == [Self.id(1, 0)])
        // A probe result that arrives afterwards changes nothing.
        #expect(h.drive(.probeExited(Self.id(1, 0), pid: 101, .exited(0))).isEmpty)
        #expect(h.worker(1, 0)?.state == .draining(pid: 101))
    }

    @Test func probeOfAnEarlierProcessOfTheSlotIsIgnored() {
        var h = SupervisorHarness(workers: 1, readiness: .exec(interval: .milliseconds(500)))
        h.startServingWithProbes()
        _ = h.exit(1, 0, .exited(1))
        h.advance(by: .milliseconds(100))
        _ = h.fire(.respawn(Self.id(1, 0)))
        #expect(h.drive(.probeExited(Self.id(1, 0), pid: 101, .exited(0))).isEmpty)
        #expect(h.worker(1, 0)?.isReady == false)
        _ = h.drive(.probeExited(Self.id(1, 0), pid: h.pid(1, 0), .exited(0)))
        #expect(h.worker(1, 0)?.isReady == true)
    }

    @Test func workerThatExitsWhileProbedStopsItsProbe() {
        var h = SupervisorHarness(workers: 2, readiness: .exec(interval: .milliseconds(500)))
        _ = h.drive(.start)
        let exited = h.exit(1, 0, .exited(3))
        #expect(exited.probesStopped.contains(Self.id(1, 0)))
        #expect(exited.log(containing: "worker=0 pid=101 exited with status 3 before ready") != nil)
    }

    @Test func probeThatCannotRunFailsTheStartingGenerationAtOnce() {
        var h = SupervisorHarness(workers: 1, readiness: .exec(interval: .milliseconds(500)))
        _ = h.drive(.start)
        let failed = h.drive(.probeSpawnFailed(Self.id(1, 0), pid: 101, reason: "cannot execute \"/nope\": No such file or directory"))
        #expect(failed.log(containing: "gen=1 failed: worker=0 pid=101: ready_command cannot run: cannot execute \"/nope\"") != nil)
        #expect(h.generation(1)?.state == .failed(since: h.now))
    }

    @Test func probeThatCannotRunForAReplacementKillsIt() {
        var h = SupervisorHarness(workers: 1, readiness: .exec(interval: .milliseconds(500)))
        h.startServingWithProbes()
        _ = h.exit(1, 0, .exited(1))
        h.advance(by: .milliseconds(100))
        _ = h.fire(.respawn(Self.id(1, 0)))
        let replacement = h.pid(1, 0)
        let actions = h.drive(.probeSpawnFailed(Self.id(1, 0), pid: replacement, reason: "no such file"))
        #expect(actions.signalsSent == [.signal(pid: replacement, signal: 9, group: true)])
        #expect(h.machine.servingGeneration?.number == 1)
    }

    @Test func drainingAStartingWorkerStopsItsProbe() {
        var h = SupervisorHarness(workers: 1, readiness: .exec(interval: .milliseconds(500)))
        _ = h.drive(.start)
        let stopping = h.drive(.stopRequested(.graceful))
        #expect(stopping.probesStopped == [Self.id(1, 0)])
        #expect(stopping.timersCancelled.contains(.probe(Self.id(1, 0))))
    }
}

extension SupervisorHarness {
    /// Like `startServing()` for `ready = "exec"`: every first probe of generation 1 succeeds.
    mutating func startServingWithProbes() {
        let started = drive(.start)
        for case .runProbe(let id, let pid) in started {
            _ = drive(.probeExited(id, pid: pid, .exited(0)))
        }
    }
}
