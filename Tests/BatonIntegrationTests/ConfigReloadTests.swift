import BatonTestSupport
import Foundation
import Testing

extension IntegrationTests {
    /// A reload re-reads the configuration file: bad files change nothing, listeners and the
    /// worker count follow the file.
    @Suite struct ConfigReload {
        /// A configuration for the test worker with the given listeners (name → address).
        static func config(workers: Int, listeners: [(String, String)]) throws -> String {
            var text = ""
            for (name, address) in listeners {
                text += "[[listener]]\nname = \"\(name)\"\naddress = \"\(address)\"\n\n"
            }
            text += """
                [program]
                name = "web"
                command = ["\(try Binaries.testWorker())", "--ready-delay", "20"]
                workers = \(workers)
                ready_timeout = "10s"
                drain_timeout = "10s"

                """
            return text
        }

        /// Starts baton on a configuration file; the file lives as long as the returned directory.
        static func start(_ text: String) throws -> (BatonFixture, String, TemporaryDirectory) {
            let directory = try TemporaryDirectory()
            let path = try directory.write("web.toml", text)
            let baton = try BatonFixture(
                workers: nil, batonArguments: ["--config", path], listen: [], command: [])
            return (baton, path, directory)
        }

        @Test func invalidFileKeepsTheServingGeneration() throws {
            let (baton, path, directory) = try Self.start(try Self.config(workers: 1, listeners: [("http", "tcp://127.0.0.1:0")]))
            defer { baton.cleanup(); directory.cleanup() }
            let load = LoadGenerator.start(port: baton.port, shortClients: 2, keepAliveClients: 2)
            try Self.config(workers: 1, listeners: [("http", "tcp://127.0.0.1:0")])
                .replacingOccurrences(of: "workers = 1", with: "wrokers = 1")
                .write(toFile: path, atomically: true, encoding: .utf8)
            let result = try baton.client(["reload", "--wait"])
            #expect(result.status == .exited(1))
            #expect(result.output.contains("web.toml:"), "\(result.output)")
            #expect(result.output.contains("unknown key \"wrokers\""), "\(result.output)")
            #expect(try baton.get().generation == "1")
            let report = load.stop()
            #expect(report.failed == 0, "failures: \(report.failures)")
        }

        @Test func commandAndEnvironmentChangesTakeEffectInTheNewGeneration() throws {
            let base = try Self.config(workers: 1, listeners: [("http", "tcp://127.0.0.1:0")])
            let first = base.replacingOccurrences(of: "workers = 1", with: "workers = 1\nenv = { GREETING = \"one\" }")
            let (baton, path, directory) = try Self.start(first)
            defer { baton.cleanup(); directory.cleanup() }
            let old = try #require(baton.workerPIDs(generation: 1).first)
            #expect(try Self.environment(of: old)["GREETING"] == "one")

            // A new argument and a new value: the next generation runs them; gen 1 drains.
            try base.replacingOccurrences(of: "\"--ready-delay\", \"20\"", with: "\"--ready-delay\", \"20\", \"--idle-grace\", \"500\"")
                .replacingOccurrences(of: "workers = 1", with: "workers = 1\nenv = { GREETING = \"two\", EXTRA = \"x\" }")
                .write(toFile: path, atomically: true, encoding: .utf8)
            let result = try baton.client(["reload", "--wait"])
            #expect(result.status == .exited(0), "\(result.output)")
            let new = try #require(baton.workerPIDs(generation: 2).first)
            let environment = try Self.environment(of: new)
            #expect(environment["GREETING"] == "two")
            #expect(environment["EXTRA"] == "x")
            #expect(try Self.arguments(of: new).suffix(2) == ["--idle-grace", "500"])
            #expect(try baton.get().generation == "2")
            // What clients reach now is the new worker, as it reports its environment itself.
            #expect(try baton.get("/env").body.split(separator: "\n").contains("GREETING=two"))
            // The old worker drained and exited on its own, as it was started.
            try baton.process.waitForLine(containing: "gen=1 exited")
            #expect(baton.process.lines.contains { $0.hasSuffix("pid=\(old)] drained") }, "\(baton.process.lines.suffix(10))")
            #expect(baton.process.lines.contains { $0.hasSuffix("pid=\(old) exited with status 0") })
        }

        static func environment(of pid: pid_t) throws -> [String: String] {
            let raw = try String(contentsOfFile: "/proc/\(pid)/environ", encoding: .utf8)
            var variables: [String: String] = [:]
            for entry in raw.split(separator: "\0") {
                guard let equals = entry.firstIndex(of: "=") else { continue }
                variables[String(entry[..<equals])] = String(entry[entry.index(after: equals)...])
            }
            return variables
        }

        static func arguments(of pid: pid_t) throws -> [String] {
            try String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8).split(separator: "\0").map(String.init)
        }

        @Test func listenersAddedAndRemovedAndWorkerCountChanged() throws {
            let (baton, path, directory) = try Self.start(try Self.config(workers: 1, listeners: [("http", "tcp://127.0.0.1:0")]))
            defer { baton.cleanup(); directory.cleanup() }
            // Add a listener and a worker.
            try Self.config(workers: 2, listeners: [("http", "tcp://127.0.0.1:0"), ("admin", "tcp://127.0.0.1:0")])
                .write(toFile: path, atomically: true, encoding: .utf8)
            let mark = baton.process.mark()
            #expect(try baton.client(["reload", "--wait"]).status == .exited(0))
            let bound = try baton.process.waitForLine(after: mark, containing: "listener=admin address=tcp://")
            let adminPort = try #require(BatonFixture.port(in: bound))
            #expect(baton.workerPIDs(generation: 2).count == 2)
            let listing = try baton.get("/listeners").body
            #expect(listing.contains("http ipv4 127.0.0.1:\(baton.port)"))
            #expect(listing.contains("admin ipv4 127.0.0.1:\(adminPort)"))
            #expect(try HTTPClient.get(port: adminPort).generation == "2")

            // Remove it again: closed once no generation holds it.
            try Self.config(workers: 2, listeners: [("http", "tcp://127.0.0.1:0")])
                .write(toFile: path, atomically: true, encoding: .utf8)
            let again = baton.process.mark()
            #expect(try baton.client(["reload", "--wait"]).status == .exited(0))
            try baton.process.waitForLine(after: again, containing: "listener=admin address=tcp://127.0.0.1:\(adminPort) closed")
            #expect(try baton.get("/listeners").body == "http ipv4 127.0.0.1:\(baton.port)\n")
            #expect(throws: HTTPClientError.self) { try HTTPClient.get(port: adminPort) }
        }

        @Test func changedAddressIsARemovalPlusAnAddition() throws {
            let (baton, path, directory) = try Self.start(try Self.config(workers: 1, listeners: [("http", "tcp://127.0.0.1:0"), ("admin", "unix:@baton-cfg-\(getpid())-a")]))
            defer { baton.cleanup(); directory.cleanup() }
            try Self.config(workers: 1, listeners: [("http", "tcp://127.0.0.1:0"), ("admin", "unix:@baton-cfg-\(getpid())-b")])
                .write(toFile: path, atomically: true, encoding: .utf8)
            let mark = baton.process.mark()
            #expect(try baton.client(["reload", "--wait"]).status == .exited(0))
            try baton.process.waitForLine(after: mark, containing: "listener=admin address=unix:@baton-cfg-\(getpid())-b bound")
            try baton.process.waitForLine(after: mark, containing: "listener=admin address=unix:@baton-cfg-\(getpid())-a closed")
            #expect(try baton.get().generation == "2")
        }
    }
}
