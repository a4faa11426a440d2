import BatonConfig
import BatonCore
import Foundation
import Testing

/// The error `parse` throws for `text`, or `nil` if it parses.
private func parseError(_ text: String, file: String = "web.toml") -> ConfigError? {
    do {
        _ = try ConfigLoader.parse(text, fileName: file)
        return nil
    } catch {
        return error
    }
}

/// `parseError(text)?.description`, the whole message a user sees.
private func message(_ text: String) -> String? {
    parseError(text)?.description
}

@Suite struct ConfigLoaderTests {
    @Test func parsesEveryKey() throws {
        let text = """
            # a comment
            [master]
            control = "/run/baton/web.sock"
            log_level = "debug"
            log_format = "json"

            [[listener]]
            name = "http"
            address = ["tcp://0.0.0.0:8080", "tcp://[::]:8080"]
            backlog = 1024
            reuseport = true
            ipv6only = false

            [[listener]]
            name = "admin"
            address = "unix:/run/web/admin.sock"
            mode = "0660"
            owner = "web"
            group = "www-data"

            [program]
            name = "web"
            command = ["/usr/bin/web", "--port-from-fd"]
            env = { RUST_LOG = "info", "HOME" = "/srv/web" }
            inherit_env = false
            cwd = "/srv/web"
            user = "web"
            group = "web"
            workers = 4
            handoff = "channel"
            ready = "exec"
            ready_command = ["/usr/bin/web-probe", "--quick"]
            ready_delay = "2s"
            ready_interval = "250ms"
            ready_timeout = "1m"
            drain_signal = "SIGUSR2"
            drain_timeout = "1h"
            max_draining = 2
            kill_mode = "process"
            output = "inherit"
            compat = []
            """
        let configuration = try ConfigLoader.parse(text, fileName: "web.toml")
        let expected = Configuration(
            master: MasterSettings(control: "/run/baton/web.sock", logLevel: .debug, logFormat: .json),
            listeners: [
                ListenerSpec(
                    name: "http", addresses: [.tcp(host: "0.0.0.0", port: 8080), .tcp(host: "::", port: 8080)],
                    backlog: 1024, reuseport: true, ipv6only: false),
                ListenerSpec(
                    name: "admin", addresses: [.unixPath("/run/web/admin.sock")], mode: 0o660, owner: "web",
                    group: "www-data"),
            ],
            program: ProgramSpec(
                name: "web", command: ["/usr/bin/web", "--port-from-fd"], env: ["RUST_LOG": "info", "HOME": "/srv/web"],
                inheritEnv: false, cwd: "/srv/web", user: "web", group: "web", workers: 4, handoff: .channel,
                ready: .exec, readyCommand: ["/usr/bin/web-probe", "--quick"], readyDelay: .seconds(2),
                readyInterval: .milliseconds(250), readyTimeout: .seconds(60), drainSignal: 12,
                drainTimeout: .seconds(3600), maxDraining: 2, killMode: .process, output: .inherit, compat: [])
        )
        #expect(configuration == expected)
        #expect(configuration.problems() == [])
    }

    @Test func usesTheModelsDefaultsForAbsentKeys() throws {
        let configuration = try ConfigLoader.parse(
            """
            [[listener]]
            name = "http"
            address = "tcp://127.0.0.1:0"
            [program]
            command = ["web"]
            """, fileName: "web.toml")
        #expect(
            configuration
                == Configuration(
                    listeners: [ListenerSpec(name: "http", addresses: [.tcp(host: "127.0.0.1", port: 0)])],
                    program: ProgramSpec(name: "", command: ["web"])))
    }

    @Test func allowsTheProgramToComeFromTheCommandLine() throws {
        let configuration = try ConfigLoader.parse("", fileName: "empty.toml")
        #expect(configuration == Configuration(program: ProgramSpec(name: "", command: [])))
        let withoutCommand = try ConfigLoader.parse("[program]\nworkers = 3\n", fileName: "web.toml")
        #expect(withoutCommand.program.command == [])
        #expect(withoutCommand.program.workers == 3)
        #expect(withoutCommand.problems().contains("program: command is empty: set command in [program] or give it after --"))
    }

    @Test func keepsListenersInFileOrder() throws {
        let names = ["zeta", "alpha", "mid", "beta", "omega", "a1", "a0"]
        let text = names.enumerated().map { offset, name in
            "[[listener]]\nname = \"\(name)\"\naddress = \"tcp://127.0.0.1:\(9000 + offset)\"\n"
        }.joined(separator: "\n")
        let configuration = try ConfigLoader.parse(text, fileName: "web.toml")
        #expect(configuration.listeners.map(\.name) == names)
        #expect(configuration.listeners.map(\.addresses) == names.indices.map { [.tcp(host: "127.0.0.1", port: UInt16(9000 + $0))] })
    }

    @Test func acceptsInlineArraysOfTablesAndDottedKeys() throws {
        let configuration = try ConfigLoader.parse(
            """
            listener = [
              { name = "a", address = "tcp://127.0.0.1:1" },
              { name = "b", address = "tcp://127.0.0.1:2" },
            ]
            program.command = ["web"]
            program.env.A = "1"
            """, fileName: "web.toml")
        #expect(configuration.listeners.map(\.name) == ["a", "b"])
        #expect(configuration.program.command == ["web"])
        #expect(configuration.program.env == ["A": "1"])
    }

    @Test func readsModesAndSignalsInEveryForm() throws {
        func listener(mode: String) throws -> UInt32? {
            try ConfigLoader.parse(
                "[[listener]]\nname = \"u\"\naddress = \"unix:/tmp/u.sock\"\nmode = \(mode)\n", fileName: "web.toml"
            ).listeners[0].mode
        }
        #expect(try listener(mode: "\"0660\"") == 0o660)
        #expect(try listener(mode: "\"600\"") == 0o600)
        #expect(try listener(mode: "\"0o1777\"") == 0o1777)
        #expect(try listener(mode: "0o640") == 0o640)
        #expect(try listener(mode: "0") == 0)
        func signal(_ value: String) throws -> Int32 {
            try ConfigLoader.parse("[program]\ndrain_signal = \(value)\n", fileName: "web.toml").program.drainSignal
        }
        #expect(try signal("\"SIGINT\"") == 2)
        #expect(try signal("\"QUIT\"") == 3)
        #expect(try signal("\"34\"") == 34)
        #expect(try signal("10") == 10)
    }

    // MARK: Errors

    @Test func rejectsUnknownKeysWithASuggestion() {
        #expect(
            message("[program]\ncommand = [\"web\"]\n\nwrokers = 4\n")
                == "web.toml:4: program: unknown key \"wrokers\" (did you mean \"workers\"?)")
        #expect(
            message("[master]\nlog-level = \"info\"\n")
                == "web.toml:2: master: unknown key \"log-level\" (did you mean \"log_level\"?)")
        #expect(message("[master]\ncolour = true\n") == "web.toml:2: master: unknown key \"colour\"")
        #expect(
            message("[[listener]]\nname = \"http\"\naddress = \"tcp://127.0.0.1:1\"\nbacklgo = 5\n")
                == "web.toml:4: listener \"http\": unknown key \"backlgo\" (did you mean \"backlog\"?)")
        #expect(
            message("[program]\nenv.A = \"1\"\nready.x = 1\n")
                == "web.toml:3: program: ready: expected a string (\"notify\", \"exec\", \"delay\" or \"spawn\"), got a table")
    }

    @Test func reportsTheFirstUnknownKeyInFileOrder() {
        // TOMLKit sorts keys by name; the message must still point at the first one in the file.
        #expect(
            message("[program]\nzzz = 1\naaa = 2\n") == "web.toml:2: program: unknown key \"zzz\"")
    }

    @Test func rejectsUnknownTablesAndKeysOutsideTables() {
        #expect(message("[prgram]\nworkers = 1\n") == "web.toml:1: unknown table [prgram] (did you mean [program]?)")
        #expect(message("[logging]\nlevel = 1\n") == "web.toml:1: unknown table [logging]")
        #expect(
            message("workers = 4\n[program]\ncommand = [\"x\"]\n")
                == "web.toml:1: key \"workers\" is outside any table: it belongs in [program]")
        #expect(message("\n\nfoo = 4\n") == "web.toml:3: unknown key \"foo\" outside any table")
        #expect(
            message("[program.extra]\nx = 1\n") == "web.toml:1: program: unknown key \"extra\"")
    }

    @Test func rejectsWrongTypes() {
        #expect(
            message("[program]\ncommand = [\"web\"]\n\n\n\n\n\n\nworkers = \"4\"\n")
                == "web.toml:9: program: workers: expected an integer, got a string")
        #expect(
            message("[program]\ncommand = \"/usr/bin/web --flag\"\n")
                == "web.toml:2: program: command: expected an array of strings, got a string")
        #expect(
            message("[program]\ncommand = [\n  \"/usr/bin/web\",\n  8080,\n]\n")
                == "web.toml:4: program: command: item 2: expected a string, got an integer")
        #expect(
            message("[program]\ninherit_env = \"yes\"\n")
                == "web.toml:2: program: inherit_env: expected true or false, got a string")
        #expect(
            message("[program]\nenv = { A = \"1\", B = 2 }\n")
                == "web.toml:2: program: env: B: expected a string, got an integer")
        #expect(
            message("[program.env]\nA = \"1\"\nB = 2.5\n")
                == "web.toml:3: program: env: B: expected a string, got a floating-point number")
        #expect(message("program = 3\n") == "web.toml:1: program: expected a table ([program]), got an integer")
        #expect(message("[master]\n[[master.x]]\n") == "web.toml:2: master: unknown key \"x\"")
        #expect(
            message("[listener]\nname = \"http\"\n")
                == "web.toml:1: listener: expected an array of tables ([[listener]]), got a table")
        #expect(
            message("listener = [\"tcp://127.0.0.1:1\"]\n")
                == "web.toml:1: listener: expected an array of tables ([[listener]]), got an array holding a string")
        #expect(
            message("[[listener]]\nname = 7\n") == "web.toml:2: listener 1: name: expected a string, got an integer")
        #expect(
            message("[[listener]]\nname = \"http\"\naddress = 8080\n")
                == "web.toml:3: listener \"http\": address: expected a string or an array of strings, got an integer")
        #expect(
            message("[[listener]]\nname = \"http\"\naddress = \"tcp://127.0.0.1:1\"\nreuseport = 1\n")
                == "web.toml:4: listener \"http\": reuseport: expected true or false, got an integer")
        #expect(
            message("[program]\nready_timeout = 30\n")
                == "web.toml:2: program: ready_timeout: expected a duration like \"30s\", got an integer")
        #expect(
            message("[program]\ndrain_signal = true\n")
                == "web.toml:2: program: drain_signal: expected a signal name like \"SIGTERM\" or a number, got a boolean")
        #expect(
            message("[master]\nlog_level = 3\n")
                == "web.toml:2: master: log_level: expected a string (\"trace\", \"debug\", \"info\", \"notice\", \"warning\" or \"error\"), got an integer")
    }

    @Test func rejectsBadDurations() {
        #expect(
            message("[program]\nready_timeout = \"30\"\n")
                == "web.toml:2: program: ready_timeout: \"30\" is not a duration (expected a whole number and ms, s, m or h, like \"30s\")")
        #expect(
            message("[program]\n\ndrain_timeout = \"1.5s\"\n")
                == "web.toml:3: program: drain_timeout: \"1.5s\" is not a duration (expected a whole number and ms, s, m or h, like \"30s\")")
        #expect(message("[program]\nready_timeout = \"0s\"\n") == "web.toml:2: program: ready_timeout must be more than 0")
        #expect(message("[program]\nready_interval = \"0ms\"\n") == "web.toml:2: program: ready_interval must be more than 0")
        #expect(parseError("[program]\nready_delay = \"0s\"\n") == nil)
    }

    @Test func rejectsBadAddresses() {
        #expect(
            message("[[listener]]\nname = \"http\"\naddress = \"http://127.0.0.1:80\"\n")
                == "web.toml:3: listener \"http\": address: \"http://127.0.0.1:80\": expected tcp://, unix: or udp://")
        #expect(
            message("[[listener]]\nname = \"http\"\naddress = [\n  \"tcp://127.0.0.1:80\",\n  \"tcp://::1:80\",\n]\n")
                == "web.toml:5: listener \"http\": address: \"tcp://::1:80\": put an IPv6 address in brackets, e.g. tcp://[::1]:8080")
        #expect(
            message("[[listener]]\nname = \"http\"\naddress = []\n")
                == "web.toml:3: listener \"http\": address: needs at least one address")
        #expect(message("[[listener]]\nname = \"http\"\n") == "web.toml:1: listener \"http\": missing key \"address\"")
        #expect(message("\n[[listener]]\naddress = \"tcp://127.0.0.1:1\"\n") == "web.toml:2: listener 1: missing key \"name\"")
    }

    @Test func rejectsBadListenerNamesAndDuplicates() {
        #expect(
            message("[[listener]]\nname = \"my http\"\naddress = \"tcp://127.0.0.1:1\"\n")
                == "web.toml:2: listener 1: name: \"my http\" may contain only A-Z, a-z, 0-9, _, . and -")
        #expect(
            message("[[listener]]\nname = \"a\"\naddress = \"tcp://127.0.0.1:1\"\n[[listener]]\nname = \"stored\"\naddress = \"tcp://127.0.0.1:2\"\n")
                == "web.toml:5: listener 2: name: \"stored\" is reserved by systemd")
        #expect(
            message("[[listener]]\nname = \"a\"\naddress = \"tcp://127.0.0.1:1\"\n\n[[listener]]\nname = \"a\"\naddress = \"tcp://127.0.0.1:2\"\n")
                == "web.toml:6: listener \"a\": the name is already used by the listener at line 1")
        #expect(
            message("[[listener]]\nname = \"a\"\naddress = \"tcp://127.0.0.1:1\"\n[[listener]]\nname = \"b\"\naddress = [\"tcp://127.0.0.1:2\", \"tcp://127.0.0.1:1\"]\n")
                == "web.toml:6: listener \"b\": address tcp://127.0.0.1:1 is also used by listener \"a\"")
        #expect(
            message("[[listener]]\nname = \"a\"\naddress = [\"unix:@x\", \"unix:@x\"]\n")
                == "web.toml:3: listener \"a\": address unix:@x is listed twice")
        // Port 0 is a fresh port at each bind: no conflict.
        #expect(
            parseError("[[listener]]\nname = \"a\"\naddress = \"tcp://127.0.0.1:0\"\n[[listener]]\nname = \"b\"\naddress = \"tcp://127.0.0.1:0\"\n")
                == nil)
    }

    @Test func rejectsBadEnumValues() {
        #expect(
            message("[program]\nhandoff = \"chanel\"\n")
                == "web.toml:2: program: handoff: expected \"listen-fds\" or \"channel\", got \"chanel\" (did you mean \"channel\"?)")
        #expect(
            message("[program]\nready = \"http\"\n")
                == "web.toml:2: program: ready: expected \"notify\", \"exec\", \"delay\" or \"spawn\", got \"http\"")
        #expect(
            message("[program]\nkill_mode = \"Group\"\n")
                == "web.toml:2: program: kill_mode: expected \"group\" or \"process\", got \"Group\" (did you mean \"group\"?)")
        #expect(
            message("[master]\nlog_format = \"yaml\"\n")
                == "web.toml:2: master: log_format: expected \"auto\", \"text\" or \"json\", got \"yaml\"")
        #expect(
            message("[program]\ncompat = [\"einhorn\", \"foreman\"]\n")
                == "web.toml:2: program: compat: unknown value \"foreman\" (expected \"einhorn\" or \"server-starter\")")
        #expect(
            message("[program]\ndrain_signal = \"sigterm\"\n")
                == "web.toml:2: program: drain_signal: \"sigterm\" is not a signal (expected a name like \"SIGTERM\" or \"TERM\", or a number from 1 to 64)")
        #expect(
            message("[program]\ndrain_signal = 0\n")
                == "web.toml:2: program: drain_signal: 0 is not a signal (expected a name like \"SIGTERM\" or \"TERM\", or a number from 1 to 64)")
    }

    @Test func rejectsOutOfRangeNumbers() {
        #expect(message("[program]\nworkers = 0\n") == "web.toml:2: program: workers must be 1 to 4096")
        #expect(message("[program]\nmax_draining = 0\n") == "web.toml:2: program: max_draining must be at least 1")
        #expect(
            message("[[listener]]\nname = \"a\"\naddress = \"tcp://127.0.0.1:1\"\nbacklog = 65536\n")
                == "web.toml:4: listener \"a\": backlog must be 1 to 65535")
        #expect(
            message("[[listener]]\nname = \"a\"\naddress = \"unix:/a\"\nmode = 660\n")
                == "web.toml:4: listener \"a\": mode: 660 is not octal: write \"0660\" or 0o660")
        #expect(
            message("[[listener]]\nname = \"a\"\naddress = \"unix:/a\"\nmode = 0x1b0\n")
                == "web.toml:4: listener \"a\": mode: 0x1b0 is not octal: write \"0660\" or 0o660")
        #expect(
            message("[[listener]]\nname = \"a\"\naddress = \"unix:/a\"\nmode = \"rw-rw----\"\n")
                == "web.toml:4: listener \"a\": mode: \"rw-rw----\" is not an octal mode like \"0660\"")
        #expect(
            message("[[listener]]\nname = \"a\"\naddress = \"unix:/a\"\nmode = 0o17777\n")
                == "web.toml:4: listener \"a\": mode must be at most 0o7777")
        #expect(
            message("[program]\nenv = { \"A=B\" = \"x\" }\n") == "web.toml:2: program: env: \"A=B\" is not a variable name")
        #expect(message("[program]\ncwd = \"\"\n") == "web.toml:2: program: cwd must not be empty")
        #expect(message("[program]\nname = \"a/b\"\n") == "web.toml:2: program: name \"a/b\" must not contain /")
    }

    @Test func pointsAtTheRightListenerAndKey() {
        // Errors in the second [[listener]] name its own line, not the first one's.
        let text = """
            [[listener]]
            name = "a"
            address = "tcp://127.0.0.1:1"
            backlog = 10

            [[listener]]
            name = "b"
            address = "tcp://127.0.0.1:2"
            # a comment with backlog = 3 in it
            x = \"\"\"
            [program]
            backlog = 4
            \"\"\"
            backlog = "many"
            """
        #expect(message(text) == "web.toml:10: listener \"b\": unknown key \"x\"")
        let withoutX = text.replacingOccurrences(of: "x = \"\"\"\n[program]\nbacklog = 4\n\"\"\"\n", with: "")
        #expect(message(withoutX) == "web.toml:10: listener \"b\": backlog: expected an integer, got a string")
    }

    @Test func reportsTOMLSyntaxErrorsAtTheirLine() throws {
        #expect(
            message("[program]\nworkers = 4\nworkers = 5\n")
                == "web.toml:3: TOML syntax error while parsing key-value pair: cannot redefine existing integer 'workers' (column 11)")
        let unclosed = try #require(parseError("[program]\nworkers = 4\ncommand = [\"web\"\n\n[master]\n"))
        #expect(unclosed.file == "web.toml")
        #expect(unclosed.line == 5)
        #expect(unclosed.message.hasPrefix("TOML syntax error while parsing array: "))
        let unterminated = try #require(parseError("[master]\nlog_level = \"info\n"))
        #expect(unterminated.line == 2)
        #expect(unterminated.message.hasPrefix("TOML syntax error while parsing string: "))
        let header = try #require(parseError("\n\n[program\n"))
        #expect(header.line == 3)
        #expect(header.message.hasPrefix("TOML syntax error while parsing table header: "))
    }

    @Test func refusesNULBytes() {
        #expect(message("[program]\nname = \"a\"\n\0\n") == "web.toml:3: the file contains a NUL byte")
    }

    // MARK: Files

    @Test func loadsAFile() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/web.toml"
            try "[program]\ncommand = [\"web\"]\nworkers = 3\n".write(toFile: path, atomically: false, encoding: .utf8)
            let configuration = try ConfigLoader.load(path: path)
            #expect(configuration.program.workers == 3)
            try "[program]\nworkers = \"3\"\n".write(toFile: path, atomically: false, encoding: .utf8)
            #expect(throws: ConfigError(file: path, line: 2, message: "program: workers: expected an integer, got a string")) {
                try ConfigLoader.load(path: path)
            }
        }
    }

    @Test func reportsAMissingFile() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/missing.toml"
            #expect(throws: ConfigError(file: path, line: nil, message: "cannot read: No such file or directory")) {
                try ConfigLoader.load(path: path)
            }
            #expect(ConfigError(file: "web.toml", line: nil, message: "cannot read: No such file or directory").description
                == "web.toml: cannot read: No such file or directory")
        }
    }

    @Test func reportsADirectory() throws {
        try withTemporaryDirectory { directory in
            #expect(throws: ConfigError(file: directory, line: nil, message: "cannot read: Is a directory")) {
                try ConfigLoader.load(path: directory)
            }
        }
    }

    @Test func reportsInvalidUTF8WithItsLine() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/bad.toml"
            let bytes = Array("[program]\nname = \"".utf8) + [0xFF, 0xFE] + Array("\"\n".utf8)
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            #expect(throws: ConfigError(file: path, line: 2, message: "not valid UTF-8 text")) {
                try ConfigLoader.load(path: path)
            }
        }
    }

    @Test func theDemoConfigurationLoadsAndValidates() throws {
        let path = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("config/demo.toml").path
        let configuration = try ConfigLoader.load(path: path)
        #expect(configuration.problems() == [])
        #expect(configuration.listeners == [ListenerSpec(name: "http", addresses: [.tcp(host: "127.0.0.1", port: 8080)])])
        #expect(configuration.program.name == "demo")
        #expect(configuration.program.command == ["baton-test-worker", "--ready-delay", "100"])
        #expect(configuration.program.workers == 2)
        #expect(configuration.program.readyTimeout == .seconds(10))
        #expect(configuration.program.drainTimeout == .seconds(10))
        #expect(configuration.effectiveProgramName == "demo")
    }
}

/// Runs `body` with a fresh directory, removed afterwards whatever happens.
private func withTemporaryDirectory(_ body: (String) throws -> Void) throws {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("baton-config-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
    defer { try? FileManager.default.removeItem(atPath: path) }
    try body(path)
}
