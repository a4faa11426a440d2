import ArgumentParser
import BatonCLI
import BatonCore
import BatonRuntime

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the master's listeners, generations and workers, and the last reload.",
        discussion: "Exit codes: 0 ok, 1 failed, 2 usage or config error, 3 no master reachable, 4 timed out."
    )

    @Flag(help: "Print the report as JSON (the control protocol's StatusReport).")
    var json = false

    @OptionGroup var control: ControlOptions

    func run() throws {
        let reply = try ControlCommandRunner.call(.status, options: control, timeout: ControlCommandRunner.replyTimeout)
        guard reply.ok else { throw ControlCommandRunner.fail("status", reply) }
        guard let report = reply.status else {
            ErrorOutput.print("baton: the master's reply carries no status")
            throw ExitCode(ExitStatus.failed)
        }
        let style = TerminalStyle.of(fd: 1, environment: CLIEnvironment.current)
        FileOutput.standardOutput(json ? ControlCodec.encodePretty(report) : StatusTable.render(report, style: style))
    }
}
