import BatonTestSupport
import Foundation
import Testing

extension IntegrationTests {
    /// The CLI against a real master, once on a real pseudo-terminal (util-linux `script`) and
    /// once through a pipe: colour and the redrawn progress line only on the terminal.
    @Suite struct Terminal {
        static let escape = "\u{1B}["

        /// The test's environment without `NO_COLOR` (`swift test` sets it), plus `extra`.
        static func environment(_ extra: [String: String]) -> [String: String] {
            SupervisedProcess.cleanEnvironment().filter { $0.key != "NO_COLOR" }
                .merging(["TERM": "xterm"]) { $1 }.merging(extra) { $1 }
        }

        /// Runs `baton ARGUMENTS` with its output (stdout and stderr) in a pipe.
        static func throughAPipe(_ arguments: [String]) throws -> (status: BatonTestSupport.ExitStatus, output: String) {
            let child = try SupervisedProcess(
                executable: try Binaries.baton(), arguments: arguments, environment: environment([:]))
            defer { child.cleanup(reportedGroups: false) }
            let status = try child.waitForExit(timeout: .seconds(60))
            return (status, child.lines.joined(separator: "\n"))
        }

        static func throughAPipe(_ baton: BatonFixture, _ arguments: [String]) throws -> (status: BatonTestSupport.ExitStatus, output: String) {
            try throughAPipe(arguments + ["--control", baton.controlPath])
        }

        /// Runs `baton ARGUMENTS` on a pseudo-terminal, followed by the shell text `then` (e.g.
        /// `| cat` to give it a pipe for stdout only); returns the exit status and what the
        /// terminal showed.
        static func onTerminal(
            _ arguments: [String], then: String = "", environment: [String: String] = [:]
        ) throws -> (status: BatonTestSupport.ExitStatus, output: String) {
            let command = try ([Binaries.baton()] + arguments).map { "'\($0)'" }.joined(separator: " ") + " " + then
            let script = try SupervisedProcess(
                executable: "/usr/bin/script", arguments: ["-q", "-e", "-c", command, "/dev/null"],
                environment: Self.environment(environment))
            defer { script.cleanup(reportedGroups: false) }
            let status = try script.waitForExit(timeout: .seconds(60))
            return (status, script.lines.joined(separator: "\n"))
        }

        static func onTerminal(
            _ baton: BatonFixture, _ arguments: [String], then: String = "", environment: [String: String] = [:]
        ) throws -> (status: BatonTestSupport.ExitStatus, output: String) {
            try onTerminal(arguments + ["--control", baton.controlPath], then: then, environment: environment)
        }

        @Test func statusIsColouredOnATerminalAndPlainThroughAPipe() throws {
            let baton = try BatonFixture(workers: 2)
            defer { baton.cleanup() }
            let terminal = try Self.onTerminal(baton, ["status"])
            #expect(terminal.status == .exited(0), "\(terminal.output)")
            #expect(terminal.output.contains("\(Self.escape)32mserving\(Self.escape)0m"), "\(terminal.output)")
            #expect(terminal.output.contains("\(Self.escape)32mready\(Self.escape)0m"))
            #expect(terminal.output.contains("\(Self.escape)1mGEN\(Self.escape)0m"))

            let piped = try Self.throughAPipe(baton, ["status"])
            #expect(piped.status == .exited(0))
            #expect(piped.output.contains("serving"))
            #expect(!piped.output.contains(Self.escape), "\(piped.output)")

            let noColor = try Self.onTerminal(baton, ["status"], environment: ["NO_COLOR": "1"])
            #expect(noColor.status == .exited(0))
            #expect(noColor.output.contains("serving"))
            #expect(!noColor.output.contains(Self.escape), "\(noColor.output)")
        }

        @Test func reloadWaitRedrawsOneLineOnATerminalAndPrintsEventsThroughAPipe() throws {
            let baton = try BatonFixture(workers: 2)
            defer { baton.cleanup() }
            let terminal = try Self.onTerminal(baton, ["reload", "--wait"])
            #expect(terminal.status == .exited(0), "\(terminal.output)")
            // The status line is erased and redrawn in place; the outcome is one coloured line.
            #expect(terminal.output.contains("\r\(Self.escape)2K"), "\(terminal.output)")
            #expect(terminal.output.contains("gen=2"))
            #expect(terminal.output.contains("2/2 workers ready"), "\(terminal.output)")
            #expect(terminal.output.contains("\(Self.escape)32mreload ok\(Self.escape)0m: gen=2 serving"))
            #expect(!terminal.output.contains("gen=2 worker=0"), "no line per event on a terminal")

            let piped = try Self.throughAPipe(baton, ["reload", "--wait"])
            #expect(piped.status == .exited(0))
            #expect(!piped.output.contains(Self.escape), "\(piped.output)")
            for line in ["gen=3 reloading", "gen=3 serving", "gen=2 draining", "reload ok: gen=3 serving"] {
                #expect(piped.output.contains(line), "\(piped.output)")
            }
        }

        @Test func aFailedReloadIsRedOnTheTerminalWithTheWorkersLastWords() throws {
            let baton = try BatonFixture(workers: 1)
            defer { baton.cleanup() }
            try baton.setNextGenerationSwitches("--crash-at-start")
            let terminal = try Self.onTerminal(baton, ["reload", "--wait"])
            #expect(terminal.status == .exited(1), "\(terminal.output)")
            #expect(terminal.output.contains("\(Self.escape)31mbaton: reload failed: "), "\(terminal.output)")
            #expect(terminal.output.contains("last output of the failing worker:"))
        }

        @Test func noColorKeepsTheRedrawnLineAndADumbTerminalGetsPlainLines() throws {
            let baton = try BatonFixture(workers: 2)
            defer { baton.cleanup() }
            let erase = "\r\(Self.escape)2K"
            let noColor = try Self.onTerminal(baton, ["reload", "--wait"], environment: ["NO_COLOR": "1"])
            #expect(noColor.status == .exited(0), "\(noColor.output)")
            #expect(noColor.output.contains(erase), "\(noColor.output)")
            #expect(noColor.output.contains("reload ok: gen=2 serving"))
            #expect(!noColor.output.replacingOccurrences(of: erase, with: "").contains(Self.escape), "no colour: \(noColor.output)")

            let dumb = try Self.onTerminal(baton, ["reload", "--wait"], environment: ["TERM": "dumb"])
            #expect(dumb.status == .exited(0), "\(dumb.output)")
            #expect(!dumb.output.contains("\u{1B}"), "\(dumb.output)")
            for line in ["gen=3 reloading", "gen=3 worker=0", "gen=3 serving", "reload ok: gen=3 serving"] {
                #expect(dumb.output.contains(line), "\(dumb.output)")
            }
        }

        @Test func errorsAreRedOnATerminalAndPlainThroughAPipe() throws {
            let directory = try TemporaryDirectory()
            defer { directory.cleanup() }
            let missing = ["status", "--control", directory.file("none.sock")]
            let terminal = try Self.onTerminal(missing)
            #expect(terminal.status == .exited(3), "\(terminal.output)")
            #expect(terminal.output.contains("\(Self.escape)31mbaton: no master reachable"), "\(terminal.output)")
            let piped = try Self.throughAPipe(missing)
            #expect(piped.status == .exited(3))
            #expect(piped.output.contains("baton: no master reachable"), "\(piped.output)")
            #expect(!piped.output.contains(Self.escape), "\(piped.output)")

            let check = try Self.onTerminal(["check", "--config", directory.file("missing.toml")])
            #expect(check.status == .exited(2), "\(check.output)")
            #expect(check.output.contains("\(Self.escape)31mbaton: "), "\(check.output)")
        }

        @Test func stdoutAndStderrAreJudgedEachOnItsOwn() throws {
            let baton = try BatonFixture(workers: 1)
            defer { baton.cleanup() }
            // stdout into a pipe, stderr still on the terminal: a plain table, a red error.
            let table = try Self.onTerminal(baton, ["status"], then: "| cat")
            #expect(table.output.contains("serving"), "\(table.output)")
            #expect(!table.output.contains(Self.escape), "\(table.output)")
            let error = try Self.onTerminal(["status", "--control", baton.directory.file("none.sock")], then: "| cat")
            #expect(error.output.contains("\(Self.escape)31mbaton: no master reachable"), "\(error.output)")
        }
    }
}
