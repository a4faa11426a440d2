import ArgumentParser
import BatonCLI
import BatonCore
import BatonRuntime

struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start a new generation; the serving one drains once every new worker is ready.",
        discussion: """
            Without --wait, returns once the master has taken the request. With --wait, prints the \
            reload's progress and exits 0 once the new generation serves, 1 if the reload failed \
            (with the reason and the failing worker's last lines of output; the old generation \
            keeps serving), 4 when --timeout passes first (the reload goes on).
            Exit codes: 0 ok, 1 failed, 2 usage or config error, 3 no master reachable, 4 timed out.
            """
    )

    @Flag(help: "Wait until the new generation serves or the reload fails, printing its progress.")
    var wait = false

    @Option(help: ArgumentHelp("Stop waiting after this long (exit 4; the reload goes on), e.g. 2m.", valueName: "duration"))
    var timeout: String?

    @OptionGroup var control: ControlOptions

    func run() throws {
        let limit = try ControlCommandRunner.duration(timeout, flag: "--timeout")
        var progress = ReloadProgress(style: TerminalStyle.of(fd: 1, environment: CLIEnvironment.current))
        let reply: ControlReply
        do {
            reply = try ControlCommandRunner.call(
                .reload(wait: wait), options: control, timeout: limit ?? (wait ? nil : ControlCommandRunner.replyTimeout),
                tick: progress.style.live ? .milliseconds(100) : nil,
                onTick: { FileOutput.standardOutputAsIs(progress.redraw()) }
            ) { event in
                FileOutput.standardOutputAsIs(progress.record(event))
            }
        } catch {
            FileOutput.standardOutputAsIs(progress.finish())
            throw error
        }
        FileOutput.standardOutputAsIs(progress.finish())
        guard reply.ok else { throw ControlCommandRunner.fail("reload", reply) }
        if wait {
            var text = progress.style.paint("reload ok", .green)
            if let generation = reply.generation { text += ": gen=\(generation) serving" }
            if let milliseconds = reply.durationMilliseconds {
                text += " in \(DurationText.format(.milliseconds(milliseconds)))"
            }
            FileOutput.standardOutput(text)
        } else {
            FileOutput.standardOutput(reply.message ?? "reload started")
        }
    }
}
