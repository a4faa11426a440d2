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

        /// Runs `baton ARGUMENTS --control PATH` with its output in a pipe.
        static func throughAPipe(_ baton: BatonFixture, _ arguments: [String]) throws -> (status: BatonTestSupport.ExitStatus, output: String) {
            let child = try SupervisedProcess(
                executable: try Binaries.baton(), arguments: arguments + ["--control", baton.controlPath],
                environment: environment([:]))
            defer { child.cleanup(reportedGroups: false) }
            let status = try child.waitForExit(timeout: .seconds(60))
            return (status, child.lines.joined(separator: "\n"))
        }

        /// Runs `baton ARGUMENTS --control PATH` on a pseudo-terminal; returns its exit status and
        /// what the terminal showed.
        static func onTerminal(
            _ baton: BatonFixture, _ arguments: [String], environment: [String: String] = [:]
        ) throws -> (status: BatonTestSupport.ExitStatus, output: String) {
            let command = try ([Binaries.baton()] + arguments + ["--control", baton.controlPath])
                .map { "'\($0)'" }.joined(separator: " ")
            let script = try SupervisedProcess(
                executable: "/usr/bin/script", arguments: ["-q", "-e", "-c", command, "/dev/null"],
                environment: Self.environment(environment))
            defer { script.cleanup(reportedGroups: false) }
            let status = try script.waitForExit(timeout: .seconds(60))
            return (status, script.lines.joined(separator: "\n"))
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
    }
}
