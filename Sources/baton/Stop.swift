import ArgumentParser
import BatonRuntime

struct Stop: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stop the master: drain every generation (or kill every worker with --now), then exit.",
        discussion: """
            Returns once the master has taken the request.
            Exit codes: 0 ok, 1 failed, 2 usage or config error, 3 no master reachable, 4 timed out.
            """
    )

    @Flag(help: "Kill every worker at once instead of draining.")
    var now = false

    @OptionGroup var control: ControlOptions

    func run() throws {
        let reply = try ControlCommandRunner.call(.stop(now: now), options: control, timeout: ControlCommandRunner.replyTimeout)
        guard reply.ok else { throw ControlCommandRunner.fail("stop", reply) }
        FileOutput.standardOutput(reply.message ?? (now ? "stopping now" : "stopping"))
    }
}
