import BatonTestSupport
import Foundation
import Testing

/// What `packaging/` ships beside the binary is generated from the CLI (`make completions`,
/// `make man`): these fail when a flag or subcommand changed and the files were not regenerated.
@Suite struct PackagingTests {
    static let subcommands = ["run", "reload", "status", "stop", "scale", "check"]

    static var packaging: String { IntegrationTests.SystemdUnit.repositoryRoot + "/packaging" }

    @Test(arguments: ["bash", "zsh", "fish"])
    func shippedCompletionScriptIsCurrent(shell: String) throws {
        let baton = try Binaries.baton()
        let generated = try SupervisedProcess.run(baton, ["--generate-completion-script", shell])
        #expect(generated.status == .exited(0))
        let shipped = try String(contentsOfFile: "\(Self.packaging)/completions/baton.\(shell)", encoding: .utf8)
        #expect(
            Self.lines(generated.output) == Self.lines(shipped),
            "packaging/completions/baton.\(shell) is stale: run `make completions`")
    }

    @Test func shippedManPageListsEverySubcommandWithItsOptions() throws {
        let baton = try Binaries.baton()
        let manual = try Self.manualOptions()
        for subcommand in Self.subcommands {
            let help = try SupervisedProcess.run(baton, [subcommand, "--help"])
            #expect(help.status == .exited(0), "baton \(subcommand) --help: \(help.output)")
            let fromHelp = Self.longOptions(inHelp: help.output)
            #expect(fromHelp.contains("help"), "baton \(subcommand) --help lists no options: \(help.output)")
            let documented = try #require(manual[subcommand], "packaging/man/baton.1 has no \(subcommand): run `make man`")
            #expect(fromHelp == documented, "baton \(subcommand): --help has \(fromHelp.sorted()), baton.1 has \(documented.sorted()): run `make man`")
        }
    }

    /// Lines without trailing blanks or trailing empty lines (the captured output loses those).
    static func lines(_ text: String) -> [String] {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map {
            String($0.reversed().drop { $0 == " " }.reversed())
        }
        while lines.last?.isEmpty == true { lines.removeLast() }
        return lines
    }

    /// The long options of an argument-parser help text's option lines (`  -h, --help`, `  --wait`).
    static func longOptions(inHelp text: String) -> Set<String> {
        var options: Set<String> = []
        for line in text.split(separator: "\n") {
            let trimmed = line.drop { $0 == " " }
            guard trimmed.hasPrefix("-") else { continue }
            for word in trimmed.split(separator: " ") where word.hasPrefix("--") {
                let name = word.dropFirst(2).prefix { $0.isLetter || $0.isNumber || $0 == "-" }
                if !name.isEmpty { options.insert(String(name)) }
            }
        }
        return options
    }

    /// Each subcommand's long options in the mdoc page: `.It Em reload` starts a subcommand, its
    /// options are `.It Fl -wait` or `.It Fl h , -help`.
    static func manualOptions() throws -> [String: Set<String>] {
        let page = try String(contentsOfFile: "\(packaging)/man/baton.1", encoding: .utf8)
        var options: [String: Set<String>] = [:]
        var current: String?
        for line in page.split(separator: "\n") {
            if line.hasPrefix(".It Em ") {
                let name = String(line.dropFirst(".It Em ".count))
                current = subcommands.contains(name) ? name : nil
                if let current { options[current] = [] }
            } else if let current, line.hasPrefix(".It Fl ") {
                for word in line.split(separator: " ") where word.hasPrefix("-") && word.count > 1 {
                    options[current]!.insert(String(word.dropFirst()))
                }
            }
        }
        return options
    }
}
