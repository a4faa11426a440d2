import BatonTestSupport
import Foundation
import Synchronization
import Testing

extension IntegrationTests {
    /// How an old generation leaves: in-flight work completes, stubborn workers are killed at the
    /// deadline, and shell-wrapped servers hear the drain through their process group.
    @Suite struct Drain {
        @Test func slowRequestInFlightCompletesAfterReload() throws {
            let baton = try BatonFixture(workers: 1, workerArguments: ["--ready-delay", "300"])
            defer { baton.cleanup() }
            let result = Mutex<Result<HTTPResponse, HTTPClientError>?>(nil)
            let done = DispatchSemaphore(value: 0)
            let port = baton.port
            Thread.detachNewThread {
                let outcome: Result<HTTPResponse, HTTPClientError>
                do throws(HTTPClientError) {
                    outcome = .success(try HTTPClient.get(port: port, path: "/slow?ms=2500"))
                } catch {
                    outcome = .failure(error)
                }
                result.withLock { $0 = outcome }
                done.signal()
            }
            // gen 2 needs 300 ms to get ready, long after gen 1 accepted the slow request.
            let mark = baton.process.mark()
            baton.process.signal(SIGHUP)
            try baton.process.waitForLine(after: mark, containing: "gen=1 draining")
            #expect(result.withLock { $0 } == nil, "the slow request finished before the drain began")
            #expect(done.wait(timeout: .now() + 30) == .success)
            let response = try #require(try result.withLock { $0 }?.get())
            #expect(response.status == 200)
            #expect(response.generation == "1")
            try baton.process.waitForLine(after: mark, containing: "gen=1 exited")
        }

        @Test func workerIgnoringTheDrainIsKilledAtTheDeadline() throws {
            let baton = try BatonFixture(
                workers: 1, batonArguments: ["--drain-timeout", "1s"],
                workerArguments: ["--ready-delay", "20", "--ignore-drain"])
            defer { baton.cleanup() }
            let old = try #require(baton.workerPIDs(generation: 1).first)
            let clock = ContinuousClock()
            let start = clock.now
            let mark = baton.process.mark()
            baton.process.signal(SIGHUP)
            try baton.process.waitForLine(after: mark, containing: "gen=1 drain timeout (1s): killing 1 worker(s)")
            try baton.process.waitForLine(after: mark, containing: "gen=1 worker=0 pid=\(old) killed by SIGKILL")
            #expect(clock.now - start >= .seconds(1))
            #expect(waitUntilGone(old, timeout: .seconds(10)))
            #expect(try baton.get().generation == "2")
        }

        @Test func shellWrappedWorkerDrainsThroughItsProcessGroup() throws {
            let worker = try Binaries.testWorker()
            let directory = try TemporaryDirectory()
            defer { directory.cleanup() }
            // The shell is the worker's main process; the server is its child, in its group.
            let script = "\(worker) --listen-pid-parent --ready-delay 20 --drain-delay 300; exit $?"
            let baton = try BatonFixture(workers: 1, command: ["/bin/sh", "-c", script])
            defer { baton.cleanup() }
            let first = try baton.get()
            let serverPID = try #require(first.pid)
            let shellPID = try #require(baton.workerPIDs(generation: 1).first)
            #expect(serverPID != shellPID)
            let mark = baton.process.mark()
            try baton.reload(to: 2)
            // The server (not only the shell) heard the drain signal and drained.
            try baton.process.waitForLine(after: mark) { $0.contains("gen=1 pid=\(shellPID)]") && $0.hasSuffix("drained") }
            // The shell itself dies of the SIGTERM at once; the generation ends when its group is empty.
            try baton.process.waitForLine(after: mark, containing: "gen=1 worker=0 pid=\(shellPID) killed by SIGTERM")
            #expect(waitUntilGone(serverPID, timeout: .seconds(10)))
            #expect(!baton.process.lines.contains { $0.contains("drain timeout") }, "the generation ended only by force")
            #expect(try baton.get().generation == "2")
        }
    }
}
