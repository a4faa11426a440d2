import BatonTestSupport
import Foundation
import Testing

/// The programs in `Examples/`, found from this source file.
enum Examples {
    static var directory: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Examples").path
    }

    /// Compiles `Examples/c-worker/worker.c` against libsystemd into `directory`; returns the binary.
    static func buildCWorker(into directory: TemporaryDirectory) throws -> String {
        let output = directory.file("c-worker")
        let source = Self.directory + "/c-worker/worker.c"
        let command = "cc -Wall -Wextra -Werror -O2 -o '\(output)' '\(source)' $(pkg-config --cflags --libs libsystemd)"
        let compiler = try SupervisedProcess(executable: "/bin/sh", arguments: ["-c", command])
        defer { compiler.cleanup() }
        let status = try compiler.waitForExit(timeout: .seconds(120))
        guard status == .exited(0) else {
            throw TestSupportError("\(command): \(status): \(compiler.lines.suffix(20).joined(separator: "\n"))")
        }
        return output
    }

    /// Reloads to each generation of `reloads` under 4 short and 8 keep-alive clients; after each
    /// reload, waits until the old generation exited, a fresh request reaches a new worker, and
    /// 150 more requests have been answered. Returns the report.
    static func reloadUnderLoad(_ baton: BatonFixture, reloads: ClosedRange<Int>) throws -> LoadReport {
        let load = LoadGenerator.start(
            port: baton.port, shortClients: 4, keepAliveClients: 8,
            keepAliveGap: .milliseconds(100), shortGap: .milliseconds(5), maxDuration: .seconds(300))
        for generation in reloads {
            try baton.reload(to: generation)
            let pid = try #require(try baton.get().pid)
            #expect(baton.workerPIDs(generation: generation).contains(pid), "answered by pid \(pid)")
            let served = load.snapshot().served
            _ = try load.waitForReport(timeout: .seconds(60)) { $0.served >= served + 150 }
        }
        return load.stop()
    }
}

extension IntegrationTests {
    /// `Examples/`: workers in other languages with no baton code, each reloaded under load.
    @Suite struct ExamplePrograms {
        @Test func pythonExampleServesAndReloadsUnderLoadWithoutAFailedRequest() throws {
            let python = try WorkerInterface.python()
            let baton = try BatonFixture(workers: 2, command: [python, Examples.directory + "/python-worker/worker.py"])
            defer { baton.cleanup() }
            let first = try baton.get()
            #expect(first.body.hasPrefix("hello from python worker pid="))
            let mark = baton.process.mark()
            let report = try Examples.reloadUnderLoad(baton, reloads: 2...6)
            print("python example reload under load: \(report)")
            #expect(report.failed == 0, "failures: \(report.failures)")
            #expect(report.served > 750, "too little load to prove anything: \(report.served)")
            #expect(baton.process.lines[mark...].filter { $0.hasSuffix("] drained") }.count == 10)
            #expect(!baton.process.lines.contains { $0.contains("killed by") })
        }

        @Test func cExampleBuiltAgainstLibsystemdServesAndReloadsUnderLoadWithoutAFailedRequest() throws {
            let directory = try TemporaryDirectory()
            defer { directory.cleanup() }
            let worker = try Examples.buildCWorker(into: directory)
            let baton = try BatonFixture(workers: 2, command: [worker])
            defer { baton.cleanup() }
            let first = try baton.get()
            #expect(first.body.hasPrefix("hello from c worker pid="))
            let mark = baton.process.mark()
            let report = try Examples.reloadUnderLoad(baton, reloads: 2...6)
            print("C example reload under load: \(report)")
            #expect(report.failed == 0, "failures: \(report.failures)")
            #expect(report.served > 750, "too little load to prove anything: \(report.served)")
            #expect(baton.process.lines[mark...].filter { $0.hasSuffix("] drained") }.count == 10)
            #expect(!baton.process.lines.contains { $0.contains("killed by") })
        }
    }
}
