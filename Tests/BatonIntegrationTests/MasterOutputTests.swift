import BatonTestSupport
import Foundation
import Testing

extension IntegrationTests {
    /// The master's own stdout and stderr never block it (lines queue, then drop, counted), and
    /// what is queued goes out as soon as the reader catches up.
    @Suite struct MasterOutput {
        /// A worker writes 200 kB at start, more than the master's output pipe (64 KiB) holds, to
        /// a reader that reads nothing yet; the master queues the rest and goes on (its control
        /// socket answers, the generation serves). Once the reader starts, the whole output
        /// arrives, the worker's last line included, with no further event in the master: it
        /// watched its stdout for writability.
        @Test func queuedOutputIsWrittenWhenTheReaderCatchesUp() throws {
            let directory = try TemporaryDirectory()
            defer { directory.cleanup() }
            let gate = directory.file("gate")
            try #require(mkfifo(gate, 0o600) == 0)
            let log = directory.file("master.log")
            let control = directory.file("ctl.sock")
            // 25 lines of 8,000 bytes, then a marker, then the test worker.
            let flood = "i=0; while [ $i -lt 25 ]; do head -c 8000 /dev/zero | tr '\\000' x; echo; i=$((i+1)); done; echo flood-done; exec \"$0\" \"$@\""
            let master = [try Binaries.baton(), "run", "--control", control, "--listen", "http=tcp://127.0.0.1:0",
                          "--workers", "1", "--", "/bin/sh", "-c", flood, try Binaries.testWorker(), "--ready-delay", "0"]
            let quoted = master.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
            // The reader waits for the gate before it reads anything.
            let pipeline = "\(quoted) 2>&1 | { read go < '\(gate)'; exec cat; } > '\(log)'"
            let shell = try SupervisedProcess(executable: "/bin/sh", arguments: ["-c", pipeline])
            defer {
                // The master is in the shell's process group; its worker leaves with it (PDEATHSIG),
                // and is killed here by its group as a last resort.
                let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                shell.cleanup()
                for group in SupervisedProcess.pids(in: text.split(separator: "\n").map(String.init)) where group > 1 {
                    _ = kill(-group, SIGKILL)
                }
            }

            // The master works while its output is stuck: its control socket says gen 1 serves.
            let deadline = ContinuousClock.now + .seconds(30)
            var serving = false
            while !serving && ContinuousClock.now < deadline {
                let status = try SupervisedProcess.run(try Binaries.baton(), ["status", "--json", "--control", control])
                serving = status.status == .exited(0) && status.output.contains("\"serving\"")
                if !serving { try Self.pause(until: .now + .milliseconds(100)) }
            }
            try #require(serving, "the master did not serve with its output stuck")
            let before = (try? FileManager.default.attributesOfItem(atPath: log)[.size] as? Int) ?? 0
            #expect(before == 0, "the reader read before the gate opened")

            // Open the gate: the reader drains the pipe; the master, woken by EPOLLOUT, writes the rest.
            try "go\n".write(toFile: gate, atomically: false, encoding: .utf8)
            var text = ""
            while ContinuousClock.now < deadline {
                text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                if text.contains("] flood-done") { break }
                try Self.pause(until: .now + .milliseconds(50))
            }
            #expect(text.contains("] flood-done"), "the queued lines never came: \(text.count) bytes")
            let floodLines = text.split(separator: "\n").filter { $0.hasSuffix(String(repeating: "x", count: 100)) }
            #expect(floodLines.count == 25, "\(floodLines.count) of 25 flood lines arrived")
            #expect(!text.contains("dropped"), "lines were dropped: \(text.suffix(500))")
        }

        /// Polling a file for the master's output: no event says that a file grew.
        static func pause(until instant: ContinuousClock.Instant) throws {
            var remaining = instant - .now
            if remaining < .zero { remaining = .zero }
            let (seconds, attoseconds) = remaining.components
            var request = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
            _ = nanosleep(&request, nil)
        }
    }
}
