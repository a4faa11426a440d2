import BatonTestSupport
import Foundation
import Testing

extension IntegrationTests {
    /// Readiness for programs that never notify: `ready = "exec"` (a probe command with
    /// `BATON_WORKER_PID`), `"delay"` and `"spawn"`. The workers here never send READY=1
    /// (`--never-ready`) but serve anyway (`--serve-before-ready`), so only the probe, the delay
    /// or the spawn can make them ready.
    @Suite struct ReadinessProbes {
        static func silentWorker() throws -> [String] {
            [try Binaries.testWorker(), "--never-ready", "--serve-before-ready"]
        }

        static func config(_ program: [String], workers: Int = 1) throws -> String {
            WorkerInterface.config(
                listeners: [("http", "tcp://127.0.0.1:0")], command: try silentWorker(),
                program: ["workers = \(workers)", "drain_timeout = \"10s\""] + program)
        }

        static func probe(_ script: String, interval: String = "100ms", timeout: String = "60s") -> [String] {
            [
                "ready = \"exec\"",
                "ready_command = ['/bin/sh', '-c', \(WorkerInterface.toml(script))]",
                "ready_interval = \"\(interval)\"",
                "ready_timeout = \"\(timeout)\"",
            ]
        }

        @Test func execProbeRunsUntilItSucceedsWithTheWorkersPID() throws {
            let flags = try TemporaryDirectory()
            defer { flags.cleanup() }
            let script = "echo probing $BATON_WORKER_PID; test -e \(flags.path)/ready-$BATON_WORKER_PID"
            let (baton, directory, _) = try WorkerInterface.start(
                config: try Self.config(Self.probe(script)), waitForServing: false)
            defer { baton.cleanup(); directory.cleanup() }
            let spawned = try baton.process.waitForLine(containing: "gen=1 worker=0 pid=")
            let pid = try #require(baton.workerPIDs(generation: 1).first, "\(spawned)")
            // Three probes failed: not ready, nothing serves yet.
            try baton.waitForLines(3, containing: "probe pid=", timeout: .seconds(30))
            let probed = baton.process.lines.filter { $0.contains(" probe pid=") }
            #expect(probed.allSatisfy { $0.hasPrefix("[web gen=1 worker=0 probe pid=") && $0.hasSuffix("] probing \(pid)") })
            #expect(!baton.process.lines.contains { $0.contains("gen=1 serving") })

            let mark = baton.process.mark()
            _ = try flags.write("ready-\(pid)", "")
            let ready = try baton.process.waitForLine(after: mark, containing: "gen=1 worker=0 pid=\(pid) ready in ")
            try baton.process.waitForLine(after: mark, containing: "gen=1 serving: 1/1 ready")
            #expect(BatonFixture.readyMilliseconds(in: ready).map { $0 >= 200 } == true, "\(ready)")
            #expect(try baton.get().generation == "1")
        }

        @Test func failingProbeFailsTheReloadAtTheReadyTimeoutAndTheOldGenerationServes() throws {
            let (baton, directory, path) = try WorkerInterface.start(config: try Self.config(Self.probe("exit 0")))
            defer { baton.cleanup(); directory.cleanup() }
            try Self.config(Self.probe("echo failing; exit 3", timeout: "2s"))
                .write(toFile: path, atomically: true, encoding: .utf8)
            let mark = baton.process.mark()
            let result = try baton.client(["reload", "--wait"])
            #expect(result.status == .exited(1), "\(result.output)")
            #expect(result.output.contains("gen=2 failed: not ready within 2s: 0/1 workers ready"), "\(result.output)")
            #expect(baton.process.lines[mark...].filter { $0.contains("probe pid=") && $0.hasSuffix("] failing") }.count >= 2)
            #expect(try baton.get().generation == "1")
        }

        @Test func hangingProbeIsKilledWhenTheReadyTimeoutPasses() throws {
            let (baton, directory, path) = try WorkerInterface.start(config: try Self.config(Self.probe("exit 0")))
            defer { baton.cleanup(); directory.cleanup() }
            try Self.config(Self.probe("echo hanging $$; exec sleep 600", timeout: "1s"))
                .write(toFile: path, atomically: true, encoding: .utf8)
            let mark = baton.process.mark()
            let result = try baton.client(["reload", "--wait"])
            #expect(result.status == .exited(1), "\(result.output)")
            #expect(result.output.contains("not ready within 1s"), "\(result.output)")
            let hanging = try baton.process.waitForLine(after: mark, containing: "] hanging ")
            let probePID = try #require(pid_t(hanging.split(separator: " ").last ?? ""))
            defer { kill(probePID, SIGKILL) }
            #expect(waitUntilGone(probePID, timeout: .seconds(30)), "probe pid=\(probePID) still runs")
            // One probe only: it never ended, so no second one started.
            #expect(baton.process.lines[mark...].filter { $0.contains("] hanging ") }.count == 1)
            #expect(try baton.get().generation == "1")
        }

        @Test func probeThatCannotRunFailsTheReloadAtOnce() throws {
            let (baton, directory, path) = try WorkerInterface.start(config: try Self.config(Self.probe("exit 0")))
            defer { baton.cleanup(); directory.cleanup() }
            try Self.config([
                "ready = \"exec\"", "ready_command = ['/nonexistent/probe']", "ready_timeout = \"60s\"",
            ]).write(toFile: path, atomically: true, encoding: .utf8)
            let clock = ContinuousClock()
            let started = clock.now
            let result = try baton.client(["reload", "--wait"])
            #expect(result.status == .exited(1), "\(result.output)")
            #expect(result.output.contains("ready_command cannot run: cannot execute \"/nonexistent/probe\""), "\(result.output)")
            #expect(clock.now - started < .seconds(30), "the failure waited for the ready timeout")
            #expect(try baton.get().generation == "1")
        }

        @Test func delayMakesWorkersReadyAfterTheDelay() throws {
            let (baton, directory, _) = try WorkerInterface.start(
                config: try Self.config(["ready = \"delay\"", "ready_delay = \"400ms\""], workers: 2))
            defer { baton.cleanup(); directory.cleanup() }
            let ready = baton.process.lines.filter { $0.contains("gen=1 worker=") && $0.contains(" ready in ") }
            #expect(ready.count == 2)
            for line in ready {
                let millis = try #require(BatonFixture.readyMilliseconds(in: line), "\(line)")
                #expect(millis >= 400, "\(line)")
            }
            #expect(try baton.get().generation == "1")
            try baton.reload(to: 2)
            #expect(try baton.get().generation == "2")
        }

        @Test func spawnMakesWorkersReadyOnceStarted() throws {
            let (baton, directory, _) = try WorkerInterface.start(config: try Self.config(["ready = \"spawn\""], workers: 2))
            defer { baton.cleanup(); directory.cleanup() }
            let ready = baton.process.lines.filter { $0.contains("gen=1 worker=") && $0.contains(" ready in ") }
            #expect(ready.count == 2)
            #expect(try baton.get().generation == "1")
            try baton.reload(to: 2)
            #expect(try baton.get().generation == "2")
        }
    }
}
