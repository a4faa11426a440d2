import BatonCLI
import BatonRuntime
import Testing

/// What the CLI shows people: colour and in-place progress on a terminal only, tables aligned on
/// the visible text.
@Suite struct TerminalStyleTests {
    @Test func colourAndRewritingOnlyOnATerminal() {
        let terminal = TerminalStyle(isTerminal: true, environment: ["TERM": "xterm-256color"])
        #expect(terminal.colors && terminal.live)
        let pipe = TerminalStyle(isTerminal: false, environment: ["TERM": "xterm-256color"])
        #expect(!pipe.colors && !pipe.live)
        #expect(pipe == .plain)
    }

    @Test func noColorTurnsColourOffButKeepsTheProgressLine() {
        let style = TerminalStyle(isTerminal: true, environment: ["NO_COLOR": "1"])
        #expect(!style.colors)
        #expect(style.live)
        // no-color.org: only a non-empty value counts.
        #expect(TerminalStyle(isTerminal: true, environment: ["NO_COLOR": ""]).colors)
    }

    @Test func aDumbTerminalGetsNeitherColourNorRewriting() {
        let style = TerminalStyle(isTerminal: true, environment: ["TERM": "dumb"])
        #expect(!style.colors && !style.live)
    }

    @Test func paintWrapsInSGRCodesOnlyWithColours() {
        let on = TerminalStyle(isTerminal: true, environment: [:])
        #expect(on.paint("ok", .green) == "\u{1B}[32mok\u{1B}[0m")
        #expect(TerminalStyle.plain.paint("ok", .green) == "ok")
        #expect(on.paint("", .red) == "")
    }

    @Test func visibleWidthSkipsEscapeSequences() {
        let on = TerminalStyle(isTerminal: true, environment: [:])
        #expect(TerminalStyle.visibleWidth(on.paint("serving", .green)) == 7)
        #expect(TerminalStyle.visibleWidth("plain") == 5)
        #expect(TerminalStyle.visibleWidth(on.paint("a", .bold) + "bc" + on.paint("d", .red)) == 4)
    }

    @Test func everyStateTheMasterReportsHasAColour() {
        for state in ["serving", "ready", "running"] { #expect(TerminalStyle.color(ofState: state) == .green) }
        for state in ["failed", "killed", "waiting-restart"] { #expect(TerminalStyle.color(ofState: state) == .red) }
        for state in ["starting", "spawning", "preparing", "draining", "lingering", "stopping"] {
            #expect(TerminalStyle.color(ofState: state) == .yellow)
        }
    }
}

@Suite struct StatusTableTests {
    static let report = StatusReport(
        masterPID: 4100, uptimeSeconds: 192, configPath: "/etc/baton/web.toml", program: "web", phase: "running",
        listeners: [.init(name: "http", address: "tcp://0.0.0.0:8080", fd: 3), .init(name: "admin", address: "unix:/run/web.sock", fd: 4)],
        generations: [
            .init(number: 7, state: "serving", ageSeconds: 61, workers: [
                .init(index: 0, pid: 4121, state: "ready", uptimeSeconds: 61, restarts: 0),
                .init(index: 1, pid: 4122, state: "ready", uptimeSeconds: 12, restarts: 3),
            ]),
            .init(number: 6, state: "draining", ageSeconds: 3600, workers: [
                .init(index: 0, pid: 3990, state: "draining", uptimeSeconds: 3600, restarts: 0)
            ]),
        ],
        lastReload: .init(ok: false, generation: 8, durationMilliseconds: nil, error: "worker 0 exited: status 1", secondsAgo: 5))

    /// `text` without SGR sequences: every piece after an ESC loses its `[...m`.
    static func stripped(_ text: String) -> String {
        let pieces = text.split(separator: "\u{1B}", omittingEmptySubsequences: false)
        return pieces.enumerated().map { index, piece in
            index == 0 ? String(piece) : String(piece.drop { $0 != "m" }.dropFirst())
        }.joined()
    }

    @Test func colouredTableIsThePlainTableWithColoursAdded() {
        let plain = StatusTable.render(Self.report)
        let coloured = StatusTable.render(Self.report, style: TerminalStyle(isTerminal: true, environment: [:]))
        #expect(!plain.contains("\u{1B}"))
        #expect(coloured.contains("\u{1B}[32mserving\u{1B}[0m"))
        #expect(coloured.contains("\u{1B}[33mdraining\u{1B}[0m"))
        #expect(coloured.contains("\u{1B}[31mfailed\u{1B}[0m"))
        #expect(coloured.contains("\u{1B}[1mGEN\u{1B}[0m"))
        // Same columns: the escape codes take no room in the alignment.
        #expect(Self.stripped(coloured) == plain)
    }

    @Test func plainTableLinesUpItsColumns() throws {
        let lines = StatusTable.render(Self.report).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let header = try #require(lines.first { $0.hasPrefix("GEN") })
        let rows = lines.filter { $0.hasPrefix("7 ") || $0.hasPrefix("6 ") }
        #expect(rows.count == 2)
        // Each title starts where its column's cells start.
        let pidColumn = header.distance(from: header.startIndex, to: try #require(header.firstRange(of: "PID")).lowerBound)
        for row in rows {
            let pid = try #require(row.firstRange(of: row.hasPrefix("7") ? "4121" : "3990"))
            #expect(row.distance(from: row.startIndex, to: pid.lowerBound) == pidColumn)
        }
        #expect(lines.last == "last reload: failed, gen=8 worker 0 exited: status 1, 5s ago")
    }

    @Test func agesReadAsPeopleSayThem() {
        #expect(StatusTable.age(0.25) == "250ms")
        #expect(StatusTable.age(42) == "42s")
        #expect(StatusTable.age(192) == "3m12s")
        #expect(StatusTable.age(120) == "2m")
        #expect(StatusTable.age(5 * 3600 + 180) == "5h3m")
        #expect(StatusTable.age(2 * 86400 + 4 * 3600) == "2d4h")
    }
}

@Suite struct ReloadProgressTests {
    static let events: [ControlEvent] = [
        ControlEvent(.reloading, generation: 7),
        ControlEvent(.spawned, generation: 7, worker: 0, pid: 4121),
        ControlEvent(.spawned, generation: 7, worker: 1, pid: 4122),
        ControlEvent(.ready, generation: 7, worker: 0, pid: 4121),
        ControlEvent(.exited, generation: 7, worker: 1, pid: 4122, message: "status 1"),
    ]

    @Test func offATerminalEveryEventIsOneLine() {
        var progress = ReloadProgress(style: .plain)
        let text = Self.events.map { progress.record($0) }.joined()
        #expect(text == """
            gen=7 reloading
            gen=7 worker=0 pid=4121 spawned
            gen=7 worker=1 pid=4122 spawned
            gen=7 worker=0 pid=4121 ready
            gen=7 worker=1 pid=4122 exited: status 1

            """)
        #expect(progress.redraw() == "")
        #expect(progress.finish() == "")
    }

    @Test func onATerminalOneLineIsRedrawnAndAnExitStaysAboveIt() {
        let started = ContinuousClock.now
        var progress = ReloadProgress(style: TerminalStyle(isTerminal: true, environment: ["NO_COLOR": "1"]), started: started)
        #expect(progress.redraw(at: started) == "", "nothing to redraw before the first event")
        var outputs: [String] = []
        for event in Self.events { outputs.append(progress.record(event, at: started + .milliseconds(1250))) }
        for output in outputs { #expect(output.hasPrefix(TerminalStyle.eraseLine)) }
        #expect(outputs[3].hasSuffix("gen=7 starting: 1/2 workers ready (1.2s)"))
        #expect(!outputs[3].contains("\n"), "a ready worker only updates the line")
        #expect(outputs[4].contains("gen=7 worker=1 pid=4122 exited: status 1\n"), "an exit is kept on screen")
        #expect(progress.redraw(at: started + .milliseconds(2300)).hasSuffix("(2.3s)"))
        #expect(progress.finish() == TerminalStyle.eraseLine)
        #expect(progress.finish() == "", "erased once")
    }

    @Test func aReadyWorkerThatExitsIsNoLongerCountedReady() {
        let started = ContinuousClock.now
        var progress = ReloadProgress(style: TerminalStyle(isTerminal: true, environment: ["NO_COLOR": "1"]), started: started)
        for event in Self.events.prefix(4) { _ = progress.record(event, at: started) }
        let exited = progress.record(ControlEvent(.exited, generation: 7, worker: 0, pid: 4121, message: "status 1"), at: started)
        #expect(exited.hasSuffix("0/2 workers ready (0.0s)"), "\(exited)")
        // Its restart is the same worker again, not a third one.
        _ = progress.record(ControlEvent(.spawned, generation: 7, worker: 0, pid: 4130), at: started)
        let ready = progress.record(ControlEvent(.ready, generation: 7, worker: 0, pid: 4130), at: started)
        #expect(ready.hasSuffix("1/2 workers ready (0.0s)"), "\(ready)")
    }

    @Test func servingShowsOnTheLine() {
        var progress = ReloadProgress(style: TerminalStyle(isTerminal: true, environment: [:]))
        _ = progress.record(ControlEvent(.reloading, generation: 3))
        let line = progress.record(ControlEvent(.serving, generation: 3))
        #expect(line.contains("\u{1B}[32mserving\u{1B}[0m"))
        // Another generation's events do not count for the new one.
        let other = progress.record(ControlEvent(.ready, generation: 2, worker: 0, pid: 1))
        #expect(other.contains("0/0 workers ready"))
    }
}
