import ArgumentParser
import BatonCore
import BatonRuntime

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate a configuration and print a summary (exit 2 with the errors).",
        discussion: "Suits ExecStartPre=: baton check --config /etc/baton/web.toml"
    )

    @OptionGroup var options: ConfigurationOptions

    func run() throws {
        let configuration: Configuration
        do {
            // As `run` reads it: a file that crashes the TOML parser is refused, not a crash here.
            configuration = try options.reloader().resolve()
        } catch {
            ErrorOutput.print("baton: \(error)")
            throw ExitCode(ExitStatus.usage)
        }
        let program = configuration.program
        var lines = [
            "configuration ok",
            "program \(program.name): \(program.command.joined(separator: " "))",
            "  workers \(program.workers), handoff \(program.handoff.rawValue), ready \(program.ready.rawValue) within \(DurationText.format(program.readyTimeout)), drain \(SignalName.name(program.drainSignal)) within \(DurationText.format(program.drainTimeout))",
        ]
        for listener in configuration.listeners {
            lines.append("listener \(listener.name): \(listener.addresses.map(\.description).joined(separator: ", ")) (backlog \(listener.backlog))")
        }
        FileOutput.standardOutput(lines.joined(separator: "\n"))
    }
}
