import BatonTestSupport
import Foundation
import Testing

extension IntegrationTests {
    /// A short soak (the long one, 10,000 reloads, belongs to the benchmarks): hundreds of reloads
    /// under load, then the master must hold exactly the fds it held before, its anonymous memory
    /// must not have grown by more than 1 MiB since the 50th reload, and no child may be left a
    /// zombie. Each run takes about 12 s here.
    @Suite struct Soak {
        static let reloads = 500
        static let rssReference = 50
        /// Anonymous memory may move by allocator noise, not by a leak per reload.
        static let rssToleranceKiB = 1024
        static let workerArguments = ["--ready-delay", "0", "--idle-grace", "300"]

        /// The master as started from flags: a reload re-reads nothing from disk, so this measures
        /// the supervisor and runtime alone.
        @Test func reloadsConfiguredByFlags() throws {
            let baton = try BatonFixture(
                workers: 2, batonArguments: ["--max-draining", "64"], workerArguments: Self.workerArguments)
            defer { baton.cleanup() }
            let measured = try Self.soak(baton.process, port: baton.port, workerPIDs: baton.workerPIDs)
            Self.expectBoundedMemory(measured, master: baton.process.pid)
        }

        /// The master as deployed, on a configuration file that every reload reads again. (An
        /// unchanged file is not parsed again: TOMLKit 0.6 keeps about 2.3 kB of every parse, so
        /// only reloads that change the file cost memory; see ConfigurationReloader.)
        @Test func reloadsConfiguredByAFile() throws {
            let config = IntegrationTests.FaultMatrix.workerConfig(workers: 2, program: "max_draining = 64")
            let master = try LaunchedMaster(config: config, workerArguments: Self.workerArguments)
            defer { master.cleanup() }
            let measured = try Self.soak(master.process, port: master.port, workerPIDs: master.workerPIDs)
            Self.expectBoundedMemory(measured, master: master.process.pid)
        }

        /// Anonymous memory within the tolerance, unless the master runs under AddressSanitizer or
        /// ThreadSanitizer (`make sanitize`): their allocators hold freed memory back on purpose
        /// (ASan's quarantine alone is 256 MB), so growth there says nothing about leaks; LeakSanitizer
        /// reports those instead. Such a master is known by its shadow memory: terabytes of VmSize.
        static func expectBoundedMemory(_ measured: Measured, master: pid_t, sourceLocation: SourceLocation = #_sourceLocation) {
            let sanitized = (ProcFacts.statusKiB("VmSize", of: master) ?? 0) > 1 << 30
            if sanitized { return }
            #expect(measured.rssGrowthKiB <= rssToleranceKiB, "\(measured)", sourceLocation: sourceLocation)
        }

        struct Measured: CustomStringConvertible {
            var reloads: Int
            var took: Duration
            var rssAtReferenceKiB: Int
            var rssAtEndKiB: Int
            var fds: Int
            var rssGrowthKiB: Int { rssAtEndKiB - rssAtReferenceKiB }

            var description: String {
                "\(reloads) reloads in \(took): RssAnon \(rssAtReferenceKiB) kB after \(IntegrationTests.Soak.rssReference), \(rssAtEndKiB) kB at the end; \(fds) fds"
            }
        }

        /// Reloads `reloads` times by SIGHUP under load and checks fds, zombies and the load;
        /// returns the memory figures for the caller to judge.
        static func soak(_ process: SupervisedProcess, port: Int, workerPIDs: (Int) -> [pid_t]) throws -> Measured {
            let master = process.pid
            // A keep-alive client's next request must come within a draining worker's idle grace
            // (or it races the close, as with any HTTP server): a 20 ms gap against 300 ms.
            let load = LoadGenerator.start(port: port, shortClients: 1, keepAliveClients: 2, keepAliveGap: .milliseconds(20))
            defer { _ = load.stop() }
            try load.waitForReport { $0.served >= 10 }
            let before = ProcFacts.openFDs(of: master)
            var rssAtReference: Int?
            let clock = ContinuousClock()
            let started = clock.now
            for generation in 2...(reloads + 1) {
                let mark = process.mark()
                process.signal(SIGHUP)
                try process.waitForLine(after: mark, containing: "gen=\(generation) serving")
                if generation == rssReference + 1 {
                    try settle(process, serving: generation)
                    rssAtReference = ProcFacts.statusKiB("RssAnon", of: master)
                }
            }
            let final = reloads + 1
            try settle(process, serving: final)
            let took = clock.now - started

            let after = ProcFacts.openFDs(of: master)
            #expect(after.count == before.count, "fds before: \(before.sorted { $0.key < $1.key })\nafter: \(after.sorted { $0.key < $1.key })")
            // Everything but the current workers' output pipes is the very same object.
            let lasting = { (fds: [Int32: String]) in fds.filter { !$0.value.hasPrefix("pipe:") } }
            #expect(lasting(after) == lasting(before))
            #expect(ProcFacts.zombieChildren(of: master).isEmpty, "\(ProcFacts.zombieChildren(of: master))")
            #expect(Set(ProcFacts.children(of: master).map(\.pid)) == Set(workerPIDs(final)))
            #expect(!process.lines.contains { $0.contains("reload failed") || $0.contains(" killed") })

            let report = load.stop()
            #expect(report.failed == 0, "\(report)")
            #expect(report.perGeneration.count > reloads / 2, "load reached only \(report.perGeneration.count) generations")
            let measured = Measured(
                reloads: reloads, took: took, rssAtReferenceKiB: try #require(rssAtReference),
                rssAtEndKiB: try #require(ProcFacts.statusKiB("RssAnon", of: master)), fds: after.count)
            print("soak: \(measured)")
            return measured
        }

        /// Waits until every generation before `serving` has exited, so the master holds only what
        /// one serving generation needs.
        static func settle(_ process: SupervisedProcess, serving: Int) throws {
            for number in 1..<serving {
                try process.waitForLine(timeout: .seconds(30), containing: "gen=\(number) exited")
            }
        }
    }
}
