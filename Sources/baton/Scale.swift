import ArgumentParser
import BatonRuntime

struct Scale: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run N workers per generation from now on.",
        discussion: "Exit codes: 0 ok, 1 failed, 2 usage or config error, 3 no master reachable, 4 timed out."
    )

    @Argument(help: "Workers per generation (1 to 4096).")
    var workers: Int

    @OptionGroup var control: ControlOptions

    func validate() throws {
        guard ControlProtocol.workerRange.contains(workers) else {
            throw ValidationError("workers must be \(ControlProtocol.workerRange.lowerBound) to \(ControlProtocol.workerRange.upperBound)")
        }
    }

    func run() throws {
        let reply = try ControlCommandRunner.call(
            .scale(workers: workers), options: control, timeout: ControlCommandRunner.replyTimeout)
        guard reply.ok else { throw ControlCommandRunner.fail("scale", reply) }
        FileOutput.standardOutput(reply.message ?? "workers: \(reply.workers ?? workers)")
    }
}
