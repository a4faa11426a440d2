import BatonCore

/// `[program]`: the one program the master runs as N workers.
enum ProgramSection {
    static let keys = [
        "name", "command", "env", "inherit_env", "cwd", "user", "group", "workers", "handoff", "ready",
        "ready_command", "ready_delay", "ready_interval", "ready_timeout", "drain_signal", "drain_timeout",
        "max_draining", "kill_mode", "output", "compat",
    ]

    static func read(_ reader: TableReader) throws(ConfigError) -> ProgramSpec {
        try reader.rejectUnknownKeys(keys)
        var program = ProgramSpec(name: "", command: [])
        if let name = try reader.string("name") {
            if name.contains("/") { throw reader.fail("name", "name \"\(name)\" must not contain /") }
            program.name = name
        }
        if let command = try reader.strings("command") {
            if command.first?.isEmpty == true {
                throw reader.fail(at: reader.path(of: "command") + [.index(0)], "command: the program name is empty")
            }
            program.command = command
        }
        if let env = try environment(reader) { program.env = env }
        if let inherit = try reader.bool("inherit_env") { program.inheritEnv = inherit }
        program.cwd = try reader.nonEmptyString("cwd")
        program.user = try reader.nonEmptyString("user")
        program.group = try reader.nonEmptyString("group")
        if let workers = try reader.integer("workers", in: 1...4096, "1 to 4096") { program.workers = workers }
        if let handoff = try reader.choice("handoff", as: Handoff.self) { program.handoff = handoff }
        if let ready = try reader.choice("ready", as: ReadinessMode.self) { program.ready = ready }
        if let command = try reader.strings("ready_command") { program.readyCommand = command }
        if let delay = try reader.duration("ready_delay") { program.readyDelay = delay }
        if let interval = try reader.positiveDuration("ready_interval") { program.readyInterval = interval }
        if let timeout = try reader.positiveDuration("ready_timeout") { program.readyTimeout = timeout }
        if let signal = try drainSignal(reader) { program.drainSignal = signal }
        if let timeout = try reader.positiveDuration("drain_timeout") { program.drainTimeout = timeout }
        if let count = try reader.integer("max_draining", in: 1...Int.max, "at least 1") { program.maxDraining = count }
        if let mode = try reader.choice("kill_mode", as: KillMode.self) { program.killMode = mode }
        if let output = try reader.choice("output", as: OutputMode.self) { program.output = output }
        if let compat = try reader.strings("compat") {
            for (offset, value) in compat.enumerated() where !Configuration.compatValues.contains(value) {
                throw reader.fail(
                    at: reader.path(of: "compat") + [.index(offset)],
                    "compat: unknown value \"\(value)\" (expected \(TableReader.alternatives(Configuration.compatValues)))")
            }
            program.compat = compat
        }
        // einhorn's workers drain on SIGUSR2; a drain_signal of the file's own still wins.
        if program.compat.contains("einhorn") && reader.value("drain_signal") == nil {
            program.drainSignal = WorkerCompatibility.einhornDrainSignal
        }
        return program
    }

    /// `env = { KEY = "value" }`: string values only; the names must be usable in `environ`.
    private static func environment(_ reader: TableReader) throws(ConfigError) -> [String: String]? {
        guard let table = try reader.table("env", label: "program: env") else { return nil }
        var env: [String: String] = [:]
        for key in table.keysInFileOrder {
            if key.isEmpty || key.contains("=") {
                throw table.fail(key, "\"\(key)\" is not a variable name")
            }
            guard let value = try table.string(key) else { continue }
            env[key] = value
        }
        return env
    }

    /// `drain_signal = "SIGTERM"`, `"TERM"`, `"15"` or `15`.
    private static func drainSignal(_ reader: TableReader) throws(ConfigError) -> Int32? {
        guard let value = reader.value("drain_signal") else { return nil }
        let expected = "expected a name like \"SIGTERM\" or \"TERM\", or a number from 1 to \(SignalName.maximum)"
        if let text = value.string {
            guard let number = SignalName.parse(text) else {
                throw reader.fail("drain_signal", "drain_signal: \"\(text)\" is not a signal (\(expected))")
            }
            return number
        }
        guard let int = value.int else {
            throw reader.typeError("drain_signal", expected: "a signal name like \"SIGTERM\" or a number", got: value)
        }
        guard (1...Int(SignalName.maximum)).contains(int) else {
            throw reader.fail("drain_signal", "drain_signal: \(int) is not a signal (\(expected))")
        }
        return Int32(int)
    }
}
