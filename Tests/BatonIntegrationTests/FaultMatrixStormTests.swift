import BatonTestSupport
import Foundation
import Synchronization
import Testing

extension IntegrationTests.FaultMatrix {
    // MARK: - Bursts of requests

    /// 1,000 SIGHUPs within a second: reloads that arrive during a reload are coalesced into one
    /// follow-up, so only a handful of generations start, and afterwards exactly one serves.
    @Test func thousandSIGHUPsWithinASecond() throws {
        let baton = try BatonFixture(workers: 2, batonArguments: ["--max-draining", "1000"])
        defer { baton.cleanup() }
        let load = LoadGenerator.start(port: baton.port, shortClients: 2, keepAliveClients: 4)
        defer { _ = load.stop() }
        try Self.awaitTraffic(load)
        let mark = baton.process.mark()
        let clock = ContinuousClock()
        let started = clock.now
        for index in 0..<1000 {
            baton.process.signal(SIGHUP)
            // Spread over about 0.8 s, so reloads start and finish while the signals arrive.
            if index % 50 == 49 { Thread.sleep(forTimeInterval: 0.04) }
        }
        let sending = clock.now - started
        #expect(sending < .seconds(1), "sending took \(sending)")

        // A reload requested now is covered by the last reload: once it is done, all are.
        let result = try baton.client(["reload", "--wait"])
        #expect(result.status == .exited(0), "\(result.output)")
        let last = try #require(result.output.split(separator: "\n").last { $0.hasPrefix("reload ok: gen=") })
        let final = try #require(Int(last.dropFirst("reload ok: gen=".count).prefix { $0.isNumber }))
        for number in 1..<final {
            try baton.process.waitForLine(after: 0, timeout: .seconds(60), containing: "gen=\(number) exited")
        }

        let lines = baton.process.lines[mark...]
        let signals = lines.filter { $0.hasSuffix("SIGHUP: reload") }.count
        let reloads = lines.filter { $0.contains("reload: gen=") && $0.hasSuffix(" starting") }.count
        #expect(signals >= 1 && signals <= 1000)
        #expect(reloads == final - 1)
        // Coalesced: far fewer reloads than signals, and the log says so.
        #expect(reloads < 100, "\(reloads) reloads for \(signals) signals")
        #expect(lines.contains { $0.contains("coalesced into one follow-up reload") })
        #expect(!lines.contains { $0.contains("reload failed") || $0.contains("killed: more than") })

        let status = try FaultClient.status(controlPath: baton.controlPath)
        let generations = status["generations"] as? [[String: Any]] ?? []
        #expect(FaultClient.generations(status).map(\.number) == [final])
        #expect(FaultClient.generations(status).map(\.state) == ["serving"])
        let workers = generations.first?["workers"] as? [[String: Any]] ?? []
        #expect(workers.count == 2 && workers.allSatisfy { $0["state"] as? String == "ready" })
        #expect(Set(workers.compactMap { $0["pid"] as? Int }) == Set(baton.workerPIDs(generation: final).map(Int.init)))
        #expect((status["last_reload"] as? [String: Any])?["ok"] as? Bool == true)
        #expect(ProcFacts.zombieChildren(of: baton.process.pid).isEmpty)

        let report = load.stop()
        Self.expectNoFailures(report)
    }

    /// 100 `reload --wait` clients at once: every one gets an outcome (the reload covering its
    /// request), all of them success.
    @Test func hundredReloadWaitClientsAtOnce() throws {
        let baton = try BatonFixture(workers: 2, batonArguments: ["--max-draining", "200"])
        defer { baton.cleanup() }
        let load = LoadGenerator.start(port: baton.port, shortClients: 2, keepAliveClients: 4)
        defer { _ = load.stop() }
        try Self.awaitTraffic(load)
        let executable = try Binaries.baton()
        let clients = try (0..<100).map { _ in
            try SupervisedProcess(executable: executable, arguments: ["reload", "--wait", "--control", baton.controlPath])
        }
        defer { clients.forEach { $0.cleanup(reportedGroups: false) } }
        var generations: Set<Int> = []
        for client in clients {
            let status = try client.waitForExit(timeout: .seconds(120))
            let line = try client.waitForLine(timeout: .seconds(5)) { $0.hasPrefix("reload ok: gen=") || $0.hasPrefix("baton: ") }
            #expect(status == .exited(0), "\(client.lines)")
            #expect(line.hasPrefix("reload ok: gen="), "\(line)")
            if let number = Int(line.dropFirst("reload ok: gen=".count).prefix { $0.isNumber }) { generations.insert(number) }
        }
        // Requests that arrived while a reload ran shared the follow-up.
        #expect(generations.count < 100 && generations.min() == 2, "\(generations.sorted())")
        let final = try #require(generations.max())
        try baton.process.waitForLine(timeout: .seconds(60), containing: "gen=\(final) serving")
        #expect(try baton.get().generation == String(final))
        let report = load.stop()
        Self.expectNoFailures(report)
    }

    /// Workers that take a long time to drain pile up; beyond `max_draining` the oldest draining
    /// generation is SIGKILLed, and the log says why.
    @Test func moreGenerationsDrainingThanMaxDraining() throws {
        let baton = try BatonFixture(
            workers: 2, batonArguments: ["--max-draining", "1", "--drain-timeout", "60s"],
            workerArguments: ["--ready-delay", "50", "--drain-delay", "60000"])
        defer { baton.cleanup() }
        let clients = (short: 2, keepAlive: 4)
        let load = LoadGenerator.start(port: baton.port, shortClients: clients.short, keepAliveClients: clients.keepAlive)
        defer { _ = load.stop() }
        try Self.awaitTraffic(load)
        Self.expectReloadOK(try baton.client(["reload", "--wait"]), generation: 2)
        let oldest = baton.workerPIDs(generation: 1)
        let mark = baton.process.mark()
        Self.expectReloadOK(try baton.client(["reload", "--wait"]), generation: 3)

        let killed = try baton.process.waitForLine(after: mark, containing: "gen=1 killed")
        #expect(Self.message(killed) == "gen=1 killed: more than 1 generations draining")
        #expect(Self.level(killed) == "WARNING")
        for pid in oldest {
            let line = try baton.process.waitForLine(after: mark, containing: "pid=\(pid) killed by")
            #expect(Self.message(line) == "gen=1 worker=\(baton.workerPIDs(generation: 1).firstIndex(of: pid) ?? -1) pid=\(pid) killed by SIGKILL")
        }
        try baton.process.waitForLine(after: mark, containing: "gen=1 exited")
        let status = try FaultClient.status(controlPath: baton.controlPath)
        #expect(FaultClient.generations(status).map(\.number) == [2, 3])
        #expect(FaultClient.generations(status).map(\.state) == ["draining", "serving"])
        #expect(!baton.process.lines[mark...].contains { $0.contains("gen=2 killed") })
        try load.waitForReport { $0.perGeneration["3", default: 0] >= 20 }

        let report = load.stop()
        // Only connections the killed workers still held may fail: at most one per client.
        #expect(report.failed <= clients.short + clients.keepAlive, "\(report)")
        #expect(report.failures.allSatisfy { $0.kind != .refused }, "\(report)")
    }

    // MARK: - The master dies

    /// SIGKILL the master: every worker hears its parent-death signal (the drain signal), finishes
    /// the request it holds and exits; once they are gone, a new master binds the same address.
    @Test func masterSIGKILLedWorkersDrainAndANewMasterTakesOver() throws {
        let baton = try BatonFixture(workers: 2)
        defer { baton.cleanup() }
        let port = baton.port
        let load = LoadGenerator.start(port: port, shortClients: 2, keepAliveClients: 4)
        defer { _ = load.stop() }
        try Self.awaitTraffic(load)
        let workers = baton.workerPIDs(generation: 1)
        try #require(workers.count == 2)
        // A request in progress on a worker when the master dies (the first request makes sure
        // a worker has accepted the connection).
        let inFlight = try KeepAliveConnection(port: port, timeout: .seconds(30))
        defer { inFlight.close() }
        #expect(try inFlight.get("/").status == 200)
        try inFlight.send(inFlight.request("/slow?ms=1500"))
        let report = load.stop()
        Self.expectNoFailures(report)

        baton.process.signal(SIGKILL)
        #expect(try baton.process.waitForExit() == .signaled(SIGKILL))
        let answer = try inFlight.readResponse()
        #expect(answer.status == 200, "the drained worker finishes its request")
        #expect(answer.connectionClose, "and closes its connection: it drains")
        for pid in workers {
            #expect(waitUntilGone(pid, timeout: .seconds(30)), "worker \(pid) outlived its master")
        }

        let successor = try BatonFixture(workers: 2, listen: ["http=tcp://127.0.0.1:\(port)"])
        defer { successor.cleanup() }
        #expect(successor.port == port)
        let again = LoadGenerator.start(port: port, shortClients: 2, keepAliveClients: 4)
        defer { _ = again.stop() }
        try again.waitForReport { $0.served >= 50 }
        Self.expectReloadOK(try successor.client(["reload", "--wait"]), generation: 2)
        let second = again.stop()
        Self.expectNoFailures(second)
        #expect(second.perGeneration["1", default: 0] > 0)
    }
}
