import BatonCore
import Testing

/// Replaced generations drain: the drain signal, the drain deadline, SIGKILL at the deadline, the
/// end of a generation, `kill_mode` and `max_draining`.
@Suite struct SupervisorDrainTests {
    static func id(_ generation: Int, _ index: Int) -> WorkerID { WorkerID(generation: generation, index: index) }

    /// Generation 2 (pids 103 and 104) serves; generation 1 (pids 101 and 102) drains since now.
    static func draining(_ h: inout SupervisorHarness) {
        h.startServing()
        h.advance(by: .seconds(1))
        h.reloadServing(id: 1)
    }

    @Test func drainingWorkerExitingIsLoggedAndItsGroupWatched() {
        var h = SupervisorHarness()
        Self.draining(&h)
        h.advance(by: .milliseconds(500))
        // No SIGKILL: the rest of its group (a shell wrapper's server) may still be draining.
        #expect(
            h.exit(1, 0) == [
                .log(LogRecord(.info, "gen=1 worker=0 pid=101 exited with status 0")),
                .watchGroup(pgid: 101),
            ])
        #expect(h.worker(1, 0)?.state == .gone)
        #expect(h.generation(1)?.isDraining == true)
    }

    @Test func lastDrainingWorkerExitingEndsTheGeneration() {
        var h = SupervisorHarness()
        Self.draining(&h)
        h.advance(by: .milliseconds(500))
        _ = h.exit(1, 0)
        h.advance(by: .seconds(1))
        #expect(
            h.exit(1, 1) == [
                .log(LogRecord(.info, "gen=1 worker=1 pid=102 exited with status 0")),
                .watchGroup(pgid: 102),
                .cancelTimer(.drain(generation: 1)),
                .log(LogRecord(.info, "gen=1 exited, drained in 1.5s")),
                .forgetGeneration(1),
            ])
        #expect(h.machine.generations.map(\.number) == [2])
        #expect(h.fire(.drain(generation: 1)) == [])
    }

    @Test func uncleanExitWhileDrainingIsAWarningThatQuotesTheOutput() {
        var h = SupervisorHarness()
        Self.draining(&h)
        let actions = h.exit(1, 0, .exited(2))
        #expect(actions.logRecords == [LogRecord(.warning, "gen=1 worker=0 pid=101 exited with status 2", outputOf: 101)])
        #expect(actions.timersSet.isEmpty)
    }

    @Test func drainTimeoutKillsTheRemainingWorkersProcessGroups() {
        var h = SupervisorHarness()
        Self.draining(&h)
        _ = h.exit(1, 0)
        h.advance(by: .seconds(30))
        let actions = h.fire(.drain(generation: 1))
        #expect(actions.logRecords == [LogRecord(.warning, "gen=1 drain timeout (30s): killing 1 worker(s)")])
        #expect(actions.signalsSent == [.signal(pid: 102, signal: 9, group: true)])
        #expect(h.worker(1, 1)?.state == .killed(pid: 102))

        let gone = h.exit(1, 1, .signaled(9))
        #expect(gone.log(containing: "gen=1 exited") == LogRecord(.info, "gen=1 exited, drained in 30s"))
        #expect(gone.forgottenGenerations == [1])
    }

    @Test func drainTimeoutLeavesTheServingGenerationAlone() {
        var h = SupervisorHarness()
        Self.draining(&h)
        h.advance(by: .seconds(30))
        let actions = h.fire(.drain(generation: 1))
        #expect(actions.signalledPIDs == [101, 102])
        #expect(h.generation(2)?.workers.allSatisfy(\.isReady) == true)
    }

    @Test func drainUsesTheConfiguredSignal() {
        var h = SupervisorHarness(drainSignal: 12)
        h.startServing()
        let actions = h.reloadServing()
        #expect(actions.signalsSent == [.signal(pid: 101, signal: 12, group: true), .signal(pid: 102, signal: 12, group: true)])
    }

    @Test func oldGenerationDrainsWithItsOwnSettings() {
        var h = SupervisorHarness()
        h.settingsByGeneration[1] = GenerationSettings(workers: 2, drainTimeout: .seconds(5), drainSignal: 3)
        h.startServing()
        let actions = h.reloadServing()
        #expect(actions.signalsSent == [.signal(pid: 101, signal: 3, group: true), .signal(pid: 102, signal: 3, group: true)])
        #expect(actions.timersSet[.drain(generation: 1)] == h.now + .seconds(5))
        h.advance(by: .seconds(5))
        #expect(h.fire(.drain(generation: 1)).log(containing: "drain timeout (5s)") != nil)
    }

    @Test func killModeProcessSignalsOnlyTheWorkerItself() {
        var h = SupervisorHarness(killMode: .process)
        h.startServing()
        let drained = h.reloadServing()
        #expect(drained.signalsSent == [.signal(pid: 101, signal: 15, group: false), .signal(pid: 102, signal: 15, group: false)])
        // No group to clean up after an exit.
        #expect(h.exit(1, 0).signalsSent == [])
        h.advance(by: .seconds(30))
        #expect(h.fire(.drain(generation: 1)).signalsSent == [.signal(pid: 102, signal: 9, group: false)])
    }

    @Test func moreDrainingGenerationsThanMaxDrainingKillsTheOldest() {
        var h = SupervisorHarness(workers: 1, maxDraining: 1)
        h.startServing()
        h.reloadServing()
        let actions = h.reloadServing(id: 3)
        #expect(actions.log(containing: "killed") == LogRecord(.warning, "gen=1 killed: more than 1 generations draining"))
        #expect(actions.signalsSent == [.signal(pid: 102, signal: 15, group: true), .signal(pid: 101, signal: 9, group: true)])
        #expect(actions.outcome(of: 3) == .succeeded(generation: 3, duration: .zero))
        #expect(h.worker(1, 0)?.state == .killed(pid: 101))
        #expect(h.worker(2, 0)?.state == .draining(pid: 102))
        #expect(h.exit(1, 0, .signaled(9)).forgottenGenerations == [1])
    }

    @Test func fourGenerationsMayDrainByDefault() {
        var h = SupervisorHarness(workers: 1)
        h.startServing()
        for _ in 1...4 {
            #expect(!h.reloadServing().signalsSent.contains { if case .signal(_, 9, _) = $0 { true } else { false } })
        }
        #expect(h.machine.generations.filter(\.isDraining).count == 4)
        let fifth = h.reloadServing()
        #expect(fifth.signalsSent.contains(.signal(pid: 101, signal: 9, group: true)))
        #expect(fifth.signalledPIDs == [101, 105])
    }

    @Test func replacedGenerationWithASlotWaitingForRestartDrainsTheOthers() {
        var h = SupervisorHarness()
        h.startServing()
        _ = h.exit(1, 0, .exited(1))
        let actions = h.reloadServing()
        #expect(actions.signalsSent == [.signal(pid: 102, signal: 15, group: true)])
        #expect(actions.timersCancelled.contains(.respawn(Self.id(1, 0))))
        #expect(h.worker(1, 0)?.state == .gone)
        #expect(h.fire(.respawn(Self.id(1, 0))) == [])
        #expect(h.exit(1, 1).forgottenGenerations == [1])
    }

    @Test func replacedGenerationWhoseOnlyWorkerWaitsForRestartEndsAtOnce() {
        // Generation 1's only worker crashed and waits for its restart when generation 2 serves:
        // no process of generation 1 is left, so it ends there and then, as if drained.
        var h = SupervisorHarness(workers: 1)
        h.startServing()
        _ = h.exit(1, 0, .exited(1))
        let actions = h.reloadServing(id: 2)
        #expect(actions.outcome(of: 2) == .succeeded(generation: 2, duration: .zero))
        #expect(actions.forgottenGenerations == [1])
        #expect(actions.log(containing: "gen=1 exited") != nil)
        #expect(h.machine.generations.map(\.number) == [2])
    }

    @Test func lingeringGroupKeepsTheGenerationUntilItEmpties() {
        var h = SupervisorHarness()
        h.lingeringGroups = [101]
        Self.draining(&h)
        let exited = h.exit(1, 0)
        #expect(exited.contains(.watchGroup(pgid: 101)))
        #expect(h.worker(1, 0)?.state == .lingering(pgid: 101))
        _ = h.exit(1, 1)
        #expect(h.generation(1) != nil, "gen 1 ended while its first worker's group still drained")
        let emptied = h.handle(.groupEmptied(pgid: 101))
        #expect(emptied.forgottenGenerations == [1])
        #expect(h.generation(1) == nil)
    }

    @Test func drainTimeoutKillsALingeringGroup() {
        var h = SupervisorHarness()
        h.lingeringGroups = [101]
        Self.draining(&h)
        _ = h.exit(1, 0)
        _ = h.exit(1, 1)
        let fired = h.fire(.drain(generation: 1))
        #expect(fired.signalsSent == [.signal(pid: 101, signal: 9, group: true)])
    }
}
