import BatonCore
import Testing

/// Successful reloads and the coalescing of reload requests ("Reload, step by step" in DESIGN.md).
@Suite struct SupervisorReloadTests {
    static func id(_ generation: Int, _ index: Int) -> WorkerID { WorkerID(generation: generation, index: index) }

    /// A master whose generation 1 (pids 101 and 102) serves since 1s ago.
    static func serving(workers: Int = 2) -> SupervisorHarness {
        var h = SupervisorHarness(workers: workers)
        h.startServing()
        h.advance(by: .seconds(1))
        return h
    }

    // MARK: - One reload

    @Test func reloadNotifiesSystemdAndPreparesTheNextGeneration() {
        var h = Self.serving()
        #expect(
            h.handle(.reloadRequested(ReloadRequester(id: 7))) == [
                .notifySystemd(.reloading(status: "reloading")),
                .log(LogRecord(.info, "reload: gen=2 starting")),
                .prepareGeneration(2),
            ])
        #expect(h.generation(2)?.state == .preparing)
        #expect(h.machine.servingGeneration?.number == 1)
    }

    @Test func preparedGenerationIsSpawnedBesideTheServingOne() {
        var h = Self.serving()
        _ = h.handle(.reloadRequested(ReloadRequester(id: 7)))
        #expect(
            h.handle(.generationPrepared(generation: 2, h.settings)) == [
                .setTimer(.generationReady(generation: 2), deadline: h.now + .seconds(60)),
                .spawn(Self.id(2, 0)),
                .spawn(Self.id(2, 1)),
            ])
        #expect(h.generation(1)?.state == .serving)
        #expect(h.generation(2)?.state == .starting)
    }

    @Test func oldGenerationKeepsServingWhileSomeNewWorkersAreNotReady() {
        var h = Self.serving(workers: 3)
        _ = h.reload(id: 7)
        _ = h.ready(2, 0)
        h.advance(by: .milliseconds(300))
        #expect(h.ready(2, 2) == [.log(LogRecord(.info, "gen=2 worker=2 pid=106 ready in 300ms"))])
        #expect(h.machine.servingGeneration?.number == 1)
        #expect(h.generation(1)?.workers.allSatisfy(\.isReady) == true)
        #expect(h.generation(2)?.state == .starting)
    }

    @Test func lastNewWorkerReadyDrainsTheOldGenerationAndAnswersTheWaiter() {
        var h = Self.serving()
        _ = h.reload(id: 7)
        h.advance(by: .milliseconds(100))
        _ = h.ready(2, 0)
        h.advance(by: .milliseconds(112))
        // Cancelling the old workers' own timers is bookkeeping, not the point here.
        let actions = h.ready(2, 1).filter {
            if case .cancelTimer(.respawn) = $0 { return false }
            if case .cancelTimer(.workerReady) = $0 { return false }
            return true
        }
        #expect(
            actions == [
                .log(LogRecord(.info, "gen=2 worker=1 pid=104 ready in 212ms")),
                .cancelTimer(.generationReady(generation: 2)),
                .log(LogRecord(.info, "gen=2 serving: 2/2 ready in 212ms")),
                .drain(pid: 101, signal: 15, group: true, timeout: .seconds(30)),
                .drain(pid: 102, signal: 15, group: true, timeout: .seconds(30)),
                .log(LogRecord(.info, "gen=1 draining (replaced by gen=2)")),
                .setTimer(.drain(generation: 1), deadline: h.now + .seconds(30)),
                .log(LogRecord(.notice, "reload ok: gen=2 serving in 212ms")),
                .notifySystemd(.ready(status: "gen 2 serving: 2/2 ready; last reload ok in 212ms")),
                .reloadFinished(requests: [7], .succeeded(generation: 2, duration: .milliseconds(212))),
            ])
        #expect(h.generation(1)?.state == .draining(since: h.now))
        #expect(h.generation(1)?.workers.map(\.state) == [.draining(pid: 101), .draining(pid: 102)])
        #expect(h.machine.servingGeneration?.number == 2)
        #expect(h.machine.phase == .running)
    }

    @Test func successfulReloadIsRecordedForStatus() {
        var h = Self.serving()
        _ = h.reload(id: 7)
        h.advance(by: .milliseconds(1500))
        _ = h.readyAll(2)
        #expect(h.machine.lastReload?.outcome == .succeeded(generation: 2, duration: .milliseconds(1500)))
        #expect(h.machine.lastReload?.finishedAt == h.now)
        #expect(h.machine.servingStatus() == "gen 2 serving: 2/2 ready; last reload ok in 1.5s")
    }

    @Test func reloadBySignalAnswersNoControlRequest() {
        var h = Self.serving()
        let actions = h.reloadServing(id: nil)
        #expect(actions.reloadReplies.isEmpty)
        #expect(
            actions.notifications == [
                .reloading(status: "reloading"), .ready(status: "gen 2 serving: 2/2 ready; last reload ok in 0ms"),
            ])
        #expect(h.machine.servingGeneration?.number == 2)
    }

    @Test func eachReloadStartsTheNextGenerationNumber() {
        var h = Self.serving(workers: 1)
        for expected in 2...5 {
            let actions = h.reloadServing(id: UInt64(expected))
            #expect(actions.preparedGenerations == [expected])
            #expect(actions.outcome(of: UInt64(expected)) == .succeeded(generation: expected, duration: .zero))
            #expect(h.machine.servingGeneration?.number == expected)
        }
    }

    @Test func newGenerationTakesItsOwnSettings() {
        var h = Self.serving()
        h.settingsByGeneration[2] = GenerationSettings(workers: 3, readyTimeout: .seconds(5))
        let actions = h.reload(id: 1)
        #expect(actions.spawnedIDs == [Self.id(2, 0), Self.id(2, 1), Self.id(2, 2)])
        #expect(actions.timersSet[.generationReady(generation: 2)] == h.now + .seconds(5))
        _ = h.ready(2, 0)
        _ = h.ready(2, 1)
        #expect(h.machine.servingGeneration?.number == 1)
        #expect(h.ready(2, 2).outcome(of: 1) == .succeeded(generation: 2, duration: .zero))
    }

    // MARK: - Coalescing

    @Test func reloadDuringAReloadIsQueued() {
        var h = Self.serving()
        _ = h.reload(id: 1)
        #expect(
            h.handle(.reloadRequested(ReloadRequester(id: 2))) == [
                .notifySystemd(.reloading(status: "reloading")),
                .log(LogRecord(.info, "reload requested while gen=2 starts: coalesced into one follow-up reload")),
            ])
        #expect(h.machine.generations.map(\.number) == [1, 2])
    }

    @Test func reloadsDuringAReloadShareExactlyOneFollowUpGeneration() {
        var h = Self.serving()
        _ = h.reload(id: 1)
        h.advance(by: .milliseconds(50))
        #expect(h.reload(id: 2).preparedGenerations.isEmpty)
        #expect(h.reload(id: 3).preparedGenerations.isEmpty)
        #expect(h.reload(id: nil).preparedGenerations.isEmpty)
        h.advance(by: .milliseconds(50))

        let second = h.readyAll(2)
        #expect(second.reloadReplies == [.reloadFinished(requests: [1], .succeeded(generation: 2, duration: .milliseconds(100)))])
        #expect(second.preparedGenerations == [3])
        #expect(second.spawnedIDs == [Self.id(3, 0), Self.id(3, 1)])

        h.advance(by: .milliseconds(20))
        let third = h.readyAll(3)
        #expect(third.reloadReplies == [.reloadFinished(requests: [2, 3], .succeeded(generation: 3, duration: .milliseconds(20)))])
        #expect(third.preparedGenerations.isEmpty)
        #expect(third.signalledPIDs == [h.pid(2, 0), h.pid(2, 1)])
        #expect(h.machine.generations.map(\.number) == [1, 2, 3])
        #expect(h.machine.servingGeneration?.number == 3)
    }

    @Test func followUpReloadWaitsForTheActiveOneToFail() {
        var h = Self.serving()
        _ = h.reload(id: 1)
        _ = h.reload(id: 2)
        _ = h.reload(id: 3)
        let failed = h.exit(2, 0, .exited(1))
        #expect(failed.outcome(of: 1) != nil)
        if case .failed(let generation, _, _)? = failed.outcome(of: 1) { #expect(generation == 2) } else {
            Issue.record("request 1 should fail with generation 2, got \(String(describing: failed.outcome(of: 1)))")
        }
        #expect(failed.outcome(of: 2) == nil)
        #expect(failed.preparedGenerations == [3])
        let third = h.readyAll(3)
        #expect(third.reloadReplies == [.reloadFinished(requests: [2, 3], .succeeded(generation: 3, duration: .zero))])
        #expect(third.preparedGenerations.isEmpty)
        // The follow-up replaced generation 1, which served all along.
        #expect(third.signalledPIDs == [101, 102])
    }

    @Test func reloadDuringStartUpWaitsForTheFirstGeneration() {
        var h = SupervisorHarness()
        _ = h.drive(.start)
        #expect(
            h.handle(.reloadRequested(ReloadRequester(id: 5))) == [
                .log(LogRecord(.info, "reload requested during start-up: it follows once the first generation serves"))
            ])
        #expect(h.machine.generations.map(\.number) == [1])
        _ = h.ready(1, 0)
        let serving = h.ready(1, 1)
        #expect(serving.notifications.first == .ready(status: "gen 1 serving: 2/2 ready"))
        #expect(serving.preparedGenerations == [2])
        #expect(serving.reloadReplies.isEmpty)
        #expect(h.machine.phase == .running)

        let reloaded = h.readyAll(2)
        #expect(reloaded.reloadReplies == [.reloadFinished(requests: [5], .succeeded(generation: 2, duration: .zero))])
        #expect(reloaded.signalledPIDs == [101, 102])
    }

    @Test func reloadsDuringStartUpShareOneFollowUpGeneration() {
        var h = SupervisorHarness()
        _ = h.drive(.start)
        _ = h.reload(id: 5)
        _ = h.reload(id: nil)
        _ = h.reload(id: 6)
        let serving = h.readyAll(1)
        #expect(serving.preparedGenerations == [2])
        let reloaded = h.readyAll(2)
        #expect(reloaded.reloadReplies == [.reloadFinished(requests: [5, 6], .succeeded(generation: 2, duration: .zero))])
        #expect(reloaded.preparedGenerations.isEmpty)
    }
}
