import BatonTestSupport
import Foundation
import Testing

/// A real `baton run` master started for one test, in its own temporary directory, with the test
/// worker as its program. `cleanup()` (also on deinit) kills the master and every worker process
/// group it reported.
final class BatonFixture {
    let directory: TemporaryDirectory
    let process: SupervisedProcess
    /// Port of the first TCP listener, as the master reported it after binding.
    let port: Int
    let switchesFile: String
    /// The master's control socket, in the test's own directory.
    let controlPath: String

    /// Starts `baton run` with `--listen http=tcp://127.0.0.1:0` (unless `listen` says otherwise)
    /// and the test worker with `--switches-file` in the temporary directory, then waits for
    /// `gen=1 serving` (unless `waitForServing` is false).
    init(
        workers: Int? = 2,
        batonArguments: [String] = [],
        listen: [String] = ["http=tcp://127.0.0.1:0"],
        workerArguments: [String] = ["--ready-delay", "50"],
        command: [String]? = nil,
        environment: [String: String] = [:],
        waitForServing: Bool = true
    ) throws {
        directory = try TemporaryDirectory()
        switchesFile = directory.file("switches")
        controlPath = directory.file("control/baton.sock")
        let worker = try Binaries.testWorker()
        let program = command ?? ([worker, "--switches-file", switchesFile] + workerArguments)
        var arguments = ["run", "--control", controlPath]
        if let workers { arguments += ["--workers", String(workers)] }
        for entry in listen { arguments += ["--listen", entry] }
        arguments += batonArguments + ["--"] + program
        process = try SupervisedProcess(
            executable: try Binaries.baton(), arguments: arguments,
            environment: SupervisedProcess.cleanEnvironment().merging(environment) { $1 })
        let bound = try process.waitForLine(containing: "address=tcp://")
        port = Self.port(in: bound) ?? 0
        if waitForServing {
            try process.waitForLine(containing: "gen=1 serving")
        }
    }

    deinit { cleanup() }

    func cleanup() {
        process.cleanup()
        directory.cleanup()
    }

    /// Makes the next generation's workers behave differently (read by the worker at start-up).
    func setNextGenerationSwitches(_ switches: String) throws {
        _ = try directory.write("switches", switches)
    }

    /// Sends SIGHUP and waits until generation `generation` serves and, unless told otherwise, the
    /// previous generation has exited. Returns the times from the signal to each.
    @discardableResult
    func reload(
        to generation: Int, replacing previous: Int? = nil, waitForOldToExit: Bool = true,
        timeout: Duration = .seconds(60)
    ) throws
        -> (serving: Duration, oldGone: Duration?)
    {
        let mark = process.mark()
        let clock = ContinuousClock()
        let start = clock.now
        process.signal(SIGHUP)
        try process.waitForLine(after: mark, timeout: timeout, containing: "gen=\(generation) serving")
        let serving = clock.now - start
        guard waitForOldToExit else { return (serving, nil) }
        try process.waitForLine(after: mark, timeout: timeout, containing: "gen=\(previous ?? generation - 1) exited")
        return (serving, clock.now - start)
    }

    /// Worker pids of a generation, from the master's `gen=N worker=I pid=P spawned` lines.
    func workerPIDs(generation: Int) -> [pid_t] {
        process.lines.compactMap { line -> pid_t? in
            guard line.contains("gen=\(generation) worker="), line.hasSuffix(" spawned"),
                let range = line.range(of: " pid=")
            else { return nil }
            return pid_t(line[range.upperBound...].prefix { $0.isNumber })
        }
    }

    /// Runs a `baton` client subcommand against this master; returns its exit status and output.
    func client(_ arguments: [String], timeout: Duration = .seconds(60)) throws -> (status: BatonTestSupport.ExitStatus, output: String) {
        let child = try SupervisedProcess(executable: try Binaries.baton(), arguments: arguments + ["--control", controlPath])
        // The client quotes the master's worker pids: those groups are not the client's to kill.
        defer { child.cleanup(reportedGroups: false) }
        let status = try child.waitForExit(timeout: timeout)
        // Returns (by throwing) once the exited client's output has been read to its end.
        _ = try? child.waitForLine(after: child.mark(), timeout: .seconds(5)) { _ in false }
        return (status, child.lines.joined(separator: "\n"))
    }

    /// GET / on the first listener.
    func get(_ path: String = "/") throws -> HTTPResponse {
        try HTTPClient.get(port: port, path: path)
    }

    static func port(in line: String) -> Int? {
        guard let range = line.range(of: "address=tcp://") else { return nil }
        let address = line[range.upperBound...].prefix { !$0.isWhitespace }
        return address.split(separator: ":").last.flatMap { Int($0) }
    }
}
