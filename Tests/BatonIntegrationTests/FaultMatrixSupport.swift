import BatonTestSupport
import Foundation
import Testing

/// What /proc says about a process: its children, open fds, anonymous memory.
enum ProcFacts {
    /// One process as `/proc/PID/stat` describes it.
    struct Entry: CustomStringConvertible {
        var pid: pid_t
        var command: String
        /// R, S, D, Z, X, ...
        var state: Character
        var parent: pid_t
        var group: pid_t

        var description: String { "pid=\(pid) (\(command)) state=\(state) ppid=\(parent) pgid=\(group)" }
    }

    /// `/proc/PID/stat`, or nil once the process is gone.
    static func entry(_ pid: pid_t) -> Entry? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")")
        else { return nil }
        // The command may hold spaces and parentheses; the fields after the last ')' do not.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 3, let state = fields[0].first, let parent = pid_t(fields[1]), let group = pid_t(fields[2])
        else { return nil }
        return Entry(
            pid: pid, command: String(stat[stat.index(after: open)..<close]), state: state, parent: parent, group: group)
    }

    /// Every process whose parent is `parent`.
    static func children(of parent: pid_t) -> [Entry] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return names.compactMap { pid_t($0) }.compactMap(entry).filter { $0.parent == parent }
    }

    /// Children of `parent` that exited and were not reaped.
    static func zombieChildren(of parent: pid_t) -> [Entry] {
        children(of: parent).filter { $0.state == "Z" || $0.state == "X" }
    }

    /// The process's open fds and what they point to.
    static func openFDs(of pid: pid_t) -> [Int32: String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
        var result: [Int32: String] = [:]
        for name in names {
            guard let fd = Int32(name) else { continue }
            result[fd] = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(name)")) ?? "?"
        }
        return result
    }

    /// A `kB` field of `/proc/PID/status`, e.g. `RssAnon` or `VmHWM`.
    static func statusKiB(_ field: String, of pid: pid_t) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field + ":") }) else { return nil }
        return line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first.flatMap { Int($0) }
    }
}

/// A `baton run` master started like `BatonFixture` does, but through a launcher (`setpriv` to run
/// it as another user, `sh` to point its stdout somewhere else) and always on a configuration file
/// in its own directory. `cleanup()` (also on deinit) kills it and every worker group it reported.
final class LaunchedMaster {
    let directory: TemporaryDirectory
    let process: SupervisedProcess
    /// Port of the first TCP listener, as the master reported it after binding.
    let port: Int
    let configPath: String
    let controlPath: String
    let switchesFile: String

    /// - Parameters:
    ///   - config: the configuration text; `@WORKER@` stands for the test worker's command (with
    ///     `--switches-file` in the directory) as a TOML array.
    ///   - launcher: words put before `baton run …`, e.g. `setpriv --reuid=65534 …`.
    ///   - standardOutput: a path the master's stdout is redirected to (its stderr, where the log
    ///     goes, stays with `process`).
    ///   - owner: the uid that gets the directory (made 0755) and the control socket's directory.
    init(
        config: String, workerArguments: [String] = ["--ready-delay", "50"], launcher: [String] = [],
        standardOutput: String? = nil, owner: uid_t? = nil, directory: TemporaryDirectory? = nil
    ) throws {
        let directory = try directory ?? TemporaryDirectory()
        self.directory = directory
        switchesFile = directory.file("switches")
        controlPath = directory.file("control/baton.sock")
        let worker = try Binaries.testWorker()
        let command = ([worker, "--switches-file", switchesFile] + workerArguments).map { "\"\($0)\"" }
        configPath = try directory.write("baton.toml", config.replacingOccurrences(of: "@WORKER@", with: "[\(command.joined(separator: ", "))]"))
        if let owner {
            chmod(directory.path, 0o755)
            mkdir(directory.file("control"), 0o700)
            chown(directory.file("control"), owner, gid_t(owner))
        }
        var words = launcher + [try Binaries.baton(), "run", "--config", configPath, "--control", controlPath]
        if let standardOutput {
            words = ["/bin/sh", "-c", "exec \"$@\" >'\(standardOutput)'", "sh"] + words
        }
        process = try SupervisedProcess(executable: words[0], arguments: Array(words.dropFirst()))
        let bound = try process.waitForLine(containing: "address=tcp://")
        port = BatonFixture.port(in: bound) ?? 0
        try process.waitForLine(containing: "gen=1 serving")
    }

    deinit { cleanup() }

    func cleanup() {
        process.cleanup()
        directory.cleanup()
    }

    /// Makes the next generation's workers behave differently (read by each worker at start-up).
    func setNextGenerationSwitches(_ switches: String) throws {
        _ = try directory.write("switches", switches)
    }

    /// Runs a `baton` client subcommand against this master; returns its exit status and output.
    func client(_ arguments: [String], timeout: Duration = .seconds(60)) throws -> (status: BatonTestSupport.ExitStatus, output: String) {
        try FaultClient.run(arguments + ["--control", controlPath], timeout: timeout)
    }

    /// Worker pids of a generation, from the master's `gen=N worker=I pid=P spawned` lines.
    func workerPIDs(generation: Int) -> [pid_t] {
        FaultClient.workerPIDs(in: process.lines, generation: generation)
    }
}

/// Shared plumbing of the fault-matrix tests.
enum FaultClient {
    /// Runs `baton ARGUMENTS`; returns its exit status and its whole output once it has exited.
    static func run(_ arguments: [String], timeout: Duration = .seconds(60)) throws -> (status: BatonTestSupport.ExitStatus, output: String) {
        try SupervisedProcess.run(try Binaries.baton(), arguments, timeout: timeout)
    }

    /// Worker pids of a generation, from `gen=N worker=I pid=P spawned` lines.
    static func workerPIDs(in lines: [String], generation: Int) -> [pid_t] {
        lines.compactMap { line -> pid_t? in
            guard line.contains("gen=\(generation) worker="), line.hasSuffix(" spawned"),
                let range = line.range(of: " pid=")
            else { return nil }
            return pid_t(line[range.upperBound...].prefix { $0.isNumber })
        }
    }

    /// The text after `key=` up to the next space, e.g. the pid in `pid=123 `.
    static func value(of key: String, in line: String) -> String? {
        guard let range = line.range(of: " \(key)=") ?? (line.hasPrefix("\(key)=") ? line.range(of: "\(key)=") : nil)
        else { return nil }
        return String(line[range.upperBound...].prefix { !$0.isWhitespace && $0 != ":" && $0 != ";" })
    }

    /// `status --json` of the master at `controlPath`, decoded.
    static func status(controlPath: String) throws -> [String: Any] {
        let result = try run(["status", "--json", "--control", controlPath])
        #expect(result.status == .exited(0), "\(result.output)")
        let data = try #require(result.output.data(using: .utf8))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any], "\(result.output)")
    }

    /// `(number, state)` of each generation in a decoded status.
    static func generations(_ status: [String: Any]) -> [(number: Int, state: String)] {
        let list = status["generations"] as? [[String: Any]] ?? []
        return list.map { ($0["number"] as? Int ?? -1, $0["state"] as? String ?? "?") }
    }
}

/// A FIFO in a test directory, opened for reading without ever blocking, so a process can write
/// to it as its stdout while the test decides when (and whether) to read.
final class SlowReader {
    let path: String
    /// The read end.
    let descriptor: Int32

    init(in directory: TemporaryDirectory, name: String = "stdout.fifo") throws {
        path = directory.file(name)
        guard mkfifo(path, 0o666) == 0 else { throw TestSupportError("mkfifo \(path): \(String(cString: strerror(errno)))") }
        // O_NONBLOCK: the open does not wait for a writer, and reads never block.
        descriptor = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard descriptor >= 0 else { throw TestSupportError("open \(path): \(String(cString: strerror(errno)))") }
    }

    deinit { close(descriptor) }

    /// Everything the FIFO holds now.
    func readAvailable() -> String {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress!, $0.count) }
            if count > 0 {
                bytes += buffer[..<count]
            } else if count < 0 && errno == EINTR {
                continue
            } else {
                break
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
