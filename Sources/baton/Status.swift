import ArgumentParser
import BatonCore
import BatonRuntime

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the master's listeners, generations and workers, and the last reload.",
        discussion: "Exit codes: 0 ok, 1 failed, 2 usage or config error, 3 no master reachable, 4 timed out."
    )

    @Flag(help: "Print the report as JSON (the control protocol's StatusReport).")
    var json = false

    @OptionGroup var control: ControlOptions

    func run() throws {
        let reply = try ControlCommandRunner.call(.status, options: control, timeout: ControlCommandRunner.replyTimeout)
        guard reply.ok else { throw ControlCommandRunner.fail("status", reply) }
        guard let report = reply.status else {
            FileOutput.standardError("baton: the master's reply carries no status")
            throw ExitCode(ExitStatus.failed)
        }
        FileOutput.standardOutput(json ? ControlCodec.encodePretty(report) : StatusTable.render(report))
    }
}

/// The status report for people: a header, the listeners, one row per worker, the last reload.
enum StatusTable {
    static func render(_ report: StatusReport) -> String {
        var lines: [String] = []
        var header = "master pid \(report.masterPID), \(report.phase), up \(age(report.uptimeSeconds)); program \(report.program)"
        if let config = report.configPath { header += "; config \(config)" }
        lines.append(header)
        if report.listeners.isEmpty {
            lines.append("no listeners")
        } else {
            lines += align(report.listeners.map { ["listener \($0.name)", $0.address, "fd \($0.fd)"] })
        }
        lines.append("")
        if report.generations.isEmpty {
            lines.append("no generations")
        } else {
            var rows = [["GEN", "STATE", "AGE", "WORKER", "PID", "STATE", "UPTIME", "RESTARTS"]]
            for generation in report.generations {
                let head = ["\(generation.number)", generation.state, age(generation.ageSeconds)]
                if generation.workers.isEmpty { rows.append(head + ["-", "-", "-", "-", "-"]) }
                for (offset, worker) in generation.workers.enumerated() {
                    rows.append(
                        (offset == 0 ? head : ["", "", ""]) + [
                            "\(worker.index)", worker.pid.map(String.init) ?? "-", worker.state,
                            worker.uptimeSeconds.map(age) ?? "-", "\(worker.restarts)",
                        ])
                }
            }
            lines += align(rows)
        }
        if let reload = report.lastReload {
            let generation = reload.generation.map { "gen=\($0) " } ?? ""
            let when = "\(age(reload.secondsAgo)) ago"
            if reload.ok {
                let took = reload.durationMilliseconds.map { " in \(DurationText.format(.milliseconds($0)))" } ?? ""
                lines.append("last reload: ok, \(generation)serving\(took), \(when)")
            } else {
                lines.append("last reload: failed, \(generation)\(reload.error ?? "no reason given"), \(when)")
            }
        } else {
            lines.append("last reload: none")
        }
        return lines.joined(separator: "\n")
    }

    /// Columns padded to their widest cell, two spaces apart; the last column is not padded.
    static func align(_ rows: [[String]]) -> [String] {
        let columns = rows.map(\.count).max() ?? 0
        let widths = (0..<columns).map { column in rows.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0 }
        return rows.map { row in
            var line = ""
            for (column, cell) in row.enumerated() {
                line += cell
                if column < row.count - 1 { line += String(repeating: " ", count: widths[column] - cell.count + 2) }
            }
            while line.hasSuffix(" ") { line.removeLast() }
            return line
        }
    }

    /// `850ms`, `42s`, `3m12s`, `5h3m`, `2d4h`.
    static func age(_ seconds: Double) -> String {
        if seconds < 1 { return "\(Int(max(seconds, 0) * 1000))ms" }
        let whole = Int(seconds)
        if whole < 60 { return "\(whole)s" }
        if whole < 3600 { return whole % 60 == 0 ? "\(whole / 60)m" : "\(whole / 60)m\(whole % 60)s" }
        if whole < 86400 { return "\(whole / 3600)h\((whole % 3600) / 60)m" }
        return "\(whole / 86400)d\((whole % 86400) / 3600)h"
    }
}
