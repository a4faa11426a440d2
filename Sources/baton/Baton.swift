import ArgumentParser
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

/// Exit codes shared by every subcommand (docs/OPERATIONS.md).
enum ExitStatus {
    static let ok: Int32 = 0
    static let failed: Int32 = 1
    static let usage: Int32 = 2
    static let unreachable: Int32 = 3
    static let timedOut: Int32 = 4
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

/// Plain writes to the process's own stdout/stderr, for command output (not logs).
enum FileOutput {
    static func standardOutput(_ text: String) { write(1, text) }
    static func standardError(_ text: String) { write(2, text) }

    private static func write(_ fd: CInt, _ text: String) {
        var bytes = Array(text.utf8)
        if bytes.last != UInt8(ascii: "\n") { bytes.append(UInt8(ascii: "\n")) }
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if written <= 0 {
                if written < 0 && errno == EINTR { continue }
                return
            }
            offset += written
        }
    }
}
