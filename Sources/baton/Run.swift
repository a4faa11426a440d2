import ArgumentParser
import BatonCore
import BatonRuntime
import Glibc

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the master: bind the listeners and supervise generations of workers.",
        discussion: """
            Signals: HUP reloads; TERM and INT stop gracefully (a second INT stops at once); \
            QUIT stops at once.
            Example: baton run --listen http=tcp://127.0.0.1:8080 --workers 2 -- ./server
            """
    )

    @OptionGroup var options: ConfigurationOptions

    func run() throws {
        let reloader: ConfigurationReloader
        let configuration: Configuration
        do {
            reloader = try options.reloader()
            configuration = try reloader.resolve()
        } catch {
            ErrorOutput.print("baton: \(error)")
            throw ExitCode(ExitStatus.usage)
        }
        // The master is another executable, without the argument parser and Foundation; it
        // becomes this process (same pid, same inherited sockets).
        let launch = MasterLaunch(
            configPath: options.config, overrides: reloader.overrides, configuration: configuration,
            fileText: reloader.remembered.flatMap { String(validating: $0.bytes, as: UTF8.self) })
        let failure = launch.exec(arguments: CommandLine.arguments)
        ErrorOutput.print("baton: \(failure)")
        throw ExitCode(ExitStatus.failed)
    }
}
