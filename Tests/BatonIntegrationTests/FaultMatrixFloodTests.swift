import BatonTestSupport
import Foundation
import Testing

extension IntegrationTests.FaultMatrix {
    /// A configuration for the test worker (`@WORKER@`, see `LaunchedMaster`) on one listener.
    static func workerConfig(workers: Int, extraListeners: String = "", program: String = "") -> String {
        """
        [[listener]]
        name = "http"
        address = "tcp://127.0.0.1:0"
        \(extraListeners)
        [program]
        name = "web"
        command = @WORKER@
        workers = \(workers)
        ready_timeout = "20s"
        drain_timeout = "10s"
        \(program)

        """
    }

    /// Wakes the master once: a control connection that closes at once. Every wake-up ends with a
    /// flush of the master's pending output.
    static func poke(_ controlPath: String) {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in controlPath.utf8.prefix(raw.count - 1).enumerated() { raw[index] = byte }
        }
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }

    /// Gen 2 writes output as fast as it can while the master's own stdout is a pipe nobody
    /// reads. The master never blocks: requests keep flowing, `status` answers at once, a reload
    /// goes through, and the lines its stdout cannot take are dropped and counted; the count is
    /// reported on stdout once the reader catches up.
    @Test func newGenerationFloodsItsOutput() throws {
        let directory = try TemporaryDirectory()
        let stdout = try SlowReader(in: directory)
        let master = try LaunchedMaster(
            config: Self.workerConfig(workers: 2), standardOutput: stdout.path, directory: directory)
        defer { master.cleanup() }
        let load = LoadGenerator.start(port: master.port, shortClients: 2, keepAliveClients: 4)
        defer { _ = load.stop() }
        try Self.awaitTraffic(load)
        try master.setNextGenerationSwitches("--flood-output")
        Self.expectReloadOK(try master.client(["reload", "--wait"]), generation: 2)
        let flooding = master.workerPIDs(generation: 2)
        try #require(flooding.count == 2)
        try load.waitForReport { $0.perGeneration["2", default: 0] >= 50 }

        // The master keeps up with the flood and still answers at once.
        for _ in 0..<3 {
            let started = ContinuousClock.now
            let status = try FaultClient.status(controlPath: master.controlPath)
            let took = ContinuousClock.now - started
            #expect(took < .seconds(3), "status took \(took) during the flood")
            #expect(FaultClient.generations(status).last?.state == "serving")
        }
        // The flood really flowed: each worker wrote far more than the master's stdout can hold
        // (a 64 KiB pipe and 256 KiB queued).
        for pid in flooding {
            let written = try #require(Self.bytesWritten(by: pid))
            #expect(written > 512 << 10, "worker \(pid) wrote only \(written) bytes")
        }

        try master.setNextGenerationSwitches("")
        let mark = master.process.mark()
        Self.expectReloadOK(try master.client(["reload", "--wait"]), generation: 3)
        try master.process.waitForLine(after: mark, containing: "gen=2 exited")

        // Now read the master's stdout; each wake-up lets it write more of what it kept.
        var text = ""
        let deadline = ContinuousClock.now + .seconds(30)
        while !text.contains(" line(s) of output dropped"), ContinuousClock.now < deadline {
            text += stdout.readAvailable(waitingUpTo: .milliseconds(200))
            Self.poke(master.controlPath)
        }
        let notes = text.split(separator: "\n").filter { $0.hasPrefix("baton: ") && $0.contains(" line(s) of output dropped") }
        let note = try #require(notes.first, "no drop count on stdout: \(text.utf8.count) bytes, ending \(text.suffix(600))")
        #expect(note.hasSuffix(" line(s) of output dropped: the reader was too slow"), "\(note)")
        let dropped = Int(note.dropFirst("baton: ".count).prefix { $0.isNumber }) ?? 0
        #expect(dropped > 1000, "\(note)")
        // What did get through is whole, prefixed lines.
        let floodLines = text.split(separator: "\n").filter { $0.contains("] flood line ") }
        #expect(!floodLines.isEmpty)
        #expect(floodLines.allSatisfy { $0.hasPrefix("[web gen=2 pid=") && $0.hasSuffix(String(repeating: "x", count: 100)) })

        let report = load.stop()
        Self.expectNoFailures(report)
        #expect(report.perGeneration["3", default: 0] > 0 || report.perGeneration["2", default: 0] > 0)
    }

    /// `wchar` of /proc/PID/io: bytes the process has written so far.
    static func bytesWritten(by pid: pid_t) -> Int? {
        guard let io = try? String(contentsOfFile: "/proc/\(pid)/io", encoding: .utf8) else { return nil }
        return io.split(separator: "\n").first { $0.hasPrefix("wchar:") }
            .flatMap { Int($0.dropFirst("wchar:".count).trimmingCharacters(in: .whitespaces)) }
    }
}

extension SlowReader {
    /// Waits (up to `timeout`) until the FIFO has something, then reads all it holds.
    func readAvailable(waitingUpTo timeout: Duration) -> String {
        var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        _ = poll(&entry, 1, Int32(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000))
        return readAvailable()
    }
}
