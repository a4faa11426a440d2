import ArgumentParser
import BatonConfig
import BatonCore
import Foundation

/// Reads a baton configuration file (TOML) and prints it as JSON.
///
/// The master runs this in a child process, at start and on every reload whose file changed, so
/// that the TOML parser (TOMLKit over C++ toml++, with Foundation) never lives in the master: a
/// parser that aborts on a malformed file (toml++ does, on its own assertions) costs a refused
/// reload, not the master, and the master's own memory holds neither Foundation nor the parser.
@main
struct BatonConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "baton-config",
        abstract: "Read a baton configuration file and print it as JSON (used by baton itself).",
        discussion: """
            Exit status 0 with the configuration as JSON on stdout; 2 with the error (file, line, key) on stdout.
            The file alone: command-line flags of `baton run` are applied by baton afterwards.
            """
    )

    @Argument(help: ArgumentHelp("The configuration file to read.", valueName: "file"))
    var path: String

    @Option(help: ArgumentHelp("The file's name in error messages (when <file> is another way to it, such as /dev/fd/3).", valueName: "name"))
    var name: String?

    func run() throws {
        let configuration: Configuration
        do {
            configuration = try ConfigLoader.load(path: path, reportingAs: name ?? path)
        } catch {
            print(error.description)
            throw ExitCode(2)
        }
        // The coder the master reads with, so both ends agree on every value's form.
        var bytes = try JSONCoding.encode(configuration)
        bytes.append(UInt8(ascii: "\n"))
        FileHandle.standardOutput.write(Data(bytes))
    }
}
