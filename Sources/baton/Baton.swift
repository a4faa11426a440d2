import ArgumentParser
import BatonRuntime
import Glibc

/// The `baton` command line: argument parsing and output formatting only.
struct Baton: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "baton",
        abstract: "A supervisor for network servers that never refuses a connection.",
        discussion: """
            The master holds the listening sockets and runs generations of workers. A reload \
            (SIGHUP) starts a new generation and drains the old one only once every new worker \
            is ready.
            """,
        subcommands: [Run.self, Reload.self, Status.self, Stop.self, Scale.self, Check.self],
        defaultSubcommand: nil
    )
}

@main
enum BatonMain {
    static func main() {
        do {
            var command = try Baton.parseAsRoot()
            try command.run()
        } catch let code as ExitCode {
            exit(code.rawValue)
        } catch {
            let code = Baton.exitCode(for: error)
            if code == .success {
                Baton.exit(withError: error)
            }
            // Usage and validation errors exit 2, as every baton command does.
            let message = Baton.fullMessage(for: error)
            FileOutput.standardError(message)
            exit(code == .failure ? ExitStatus.failed : ExitStatus.usage)
        }
    }
}
