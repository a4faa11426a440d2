import BatonCore
import BatonRuntime

/// The status report for people: a header, the listeners, one row per worker, the last reload.
/// States are coloured when `style` says so; columns line up on the visible text either way.
public enum StatusTable {
    public static func render(_ report: StatusReport, style: TerminalStyle = .plain) -> String {
        func state(_ text: String) -> String {
            TerminalStyle.color(ofState: text).map { style.paint(text, $0) } ?? text
        }
        var lines: [String] = []
        var header = "master pid \(report.masterPID), \(state(report.phase)), up \(age(report.uptimeSeconds)); program \(report.program)"
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
            let titles = ["GEN", "STATE", "AGE", "WORKER", "PID", "STATE", "UPTIME", "RESTARTS"]
            var rows = [titles.map { style.paint($0, .bold) }]
            for generation in report.generations {
                let head = ["\(generation.number)", state(generation.state), age(generation.ageSeconds)]
                if generation.workers.isEmpty { rows.append(head + ["-", "-", "-", "-", "-"]) }
                for (offset, worker) in generation.workers.enumerated() {
                    let restarts = worker.restarts > 0 ? style.paint("\(worker.restarts)", .yellow) : "0"
                    rows.append(
                        (offset == 0 ? head : ["", "", ""]) + [
                            "\(worker.index)", worker.pid.map(String.init) ?? "-", state(worker.state),
                            worker.uptimeSeconds.map(age) ?? "-", restarts,
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
                lines.append("last reload: \(style.paint("ok", .green)), \(generation)serving\(took), \(when)")
            } else {
                lines.append("last reload: \(style.paint("failed", .red)), \(generation)\(reload.error ?? "no reason given"), \(when)")
            }
        } else {
            lines.append("last reload: none")
        }
        return lines.joined(separator: "\n")
    }

    /// Columns padded to their widest cell (as seen: colour codes take no room), two spaces
    /// apart; the last column is not padded.
    public static func align(_ rows: [[String]]) -> [String] {
        let columns = rows.map(\.count).max() ?? 0
        let widths = (0..<columns).map { column in
            rows.map { column < $0.count ? TerminalStyle.visibleWidth($0[column]) : 0 }.max() ?? 0
        }
        return rows.map { row in
            var line = ""
            for (column, cell) in row.enumerated() {
                line += cell
                if column < row.count - 1 {
                    line += String(repeating: " ", count: widths[column] - TerminalStyle.visibleWidth(cell) + 2)
                }
            }
            while line.hasSuffix(" ") { line.removeLast() }
            return line
        }
    }

    /// `850ms`, `42s`, `3m12s`, `5h3m`, `2d4h`.
    public static func age(_ seconds: Double) -> String {
        if seconds < 1 { return "\(Int(max(seconds, 0) * 1000))ms" }
        let whole = Int(seconds)
        if whole < 60 { return "\(whole)s" }
        if whole < 3600 { return whole % 60 == 0 ? "\(whole / 60)m" : "\(whole / 60)m\(whole % 60)s" }
        if whole < 86400 { return "\(whole / 3600)h\((whole % 3600) / 60)m" }
        return "\(whole / 86400)d\((whole % 86400) / 3600)h"
    }
}
