import ArgumentParser
import BatonCore

/// `--config FILE` plus the flags that mirror configuration keys; flags win over the file.
struct ConfigurationOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Configuration file (TOML).", valueName: "file"))
    var config: String?

    @Option(name: .long, help: ArgumentHelp("Control socket path (default: per program, see docs/OPERATIONS.md).", valueName: "path"))
    var control: String?

    @Option(name: .long, help: ArgumentHelp("A listener, e.g. http=tcp://127.0.0.1:8080 (repeatable).", valueName: "name=address"))
    var listen: [String] = []

    @Option(help: "Program name (default: the command's base name).")
    var name: String?

    @Option(help: "Workers per generation.")
    var workers: Int?

    @Option(help: "How workers get their sockets: listen-fds or channel.")
    var handoff: String?

    @Option(help: "Readiness: notify, exec, delay or spawn.")
    var ready: String?

    @Option(name: .customLong("ready-timeout"), help: ArgumentHelp("e.g. 60s", valueName: "duration"))
    var readyTimeout: String?

    @Option(name: .customLong("drain-signal"), help: ArgumentHelp("e.g. SIGTERM", valueName: "signal"))
    var drainSignal: String?

    @Option(name: .customLong("drain-timeout"), help: ArgumentHelp("e.g. 30s", valueName: "duration"))
    var drainTimeout: String?

    @Option(name: .customLong("max-draining"), help: "Generations allowed to drain at once.")
    var maxDraining: Int?

    @Option(name: .customLong("kill-mode"), help: "group or process.")
    var killMode: String?

    @Option(help: "Worker output: forward or inherit.")
    var output: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning or error.")
    var logLevel: String?

    @Argument(parsing: .postTerminator, help: "The worker command, after --.")
    var command: [String] = []

    /// `file` (the `--config` file as read, if any) with the flags applied, validated. Errors
    /// name what is wrong. `ConfigurationReloader` reads the file.
    func resolve(file: Configuration?) throws -> Configuration {
        var configuration = file ?? Configuration(program: ProgramSpec(name: "", command: []))
        try apply(to: &configuration)
        configuration.program.name = configuration.effectiveProgramName
        let problems = configuration.problems()
        guard problems.isEmpty else {
            let origin = config.map { "\($0): " } ?? ""
            throw UsageFailure(problems.map { "\(origin)\($0)" }.joined(separator: "\n"))
        }
        return configuration
    }

    private func apply(to configuration: inout Configuration) throws {
        var flagListeners: [ListenerSpec] = []
        for entry in listen {
            guard let equals = entry.firstIndex(of: "=") else {
                throw UsageFailure("--listen \(entry): expected NAME=ADDRESS, e.g. http=tcp://127.0.0.1:8080")
            }
            let name = String(entry[..<equals])
            let text = String(entry[entry.index(after: equals)...])
            let address: ListenAddress
            switch ListenAddress.parse(text) {
            case .success(let parsed): address = parsed
            case .failure(let error): throw UsageFailure("--listen \(name): address \(error)")
            }
            if let index = flagListeners.firstIndex(where: { $0.name == name }) {
                flagListeners[index].addresses.append(address)
            } else {
                flagListeners.append(ListenerSpec(name: name, addresses: [address]))
            }
        }
        for listener in flagListeners {
            if let index = configuration.listeners.firstIndex(where: { $0.name == listener.name }) {
                configuration.listeners[index].addresses = listener.addresses
            } else {
                configuration.listeners.append(listener)
            }
        }
        var program = configuration.program
        if !command.isEmpty { program.command = command }
        if let name { program.name = name }
        if let workers { program.workers = workers }
        if let handoff { program.handoff = try parse(handoff, "--handoff") }
        if let ready { program.ready = try parse(ready, "--ready") }
        if let readyTimeout { program.readyTimeout = try duration(readyTimeout, "--ready-timeout") }
        if let drainTimeout { program.drainTimeout = try duration(drainTimeout, "--drain-timeout") }
        if let drainSignal {
            guard let number = SignalName.parse(drainSignal) else {
                throw UsageFailure("--drain-signal \(drainSignal): expected a signal name such as SIGTERM")
            }
            program.drainSignal = number
        }
        if let maxDraining { program.maxDraining = maxDraining }
        if let killMode { program.killMode = try parse(killMode, "--kill-mode") }
        if let output { program.output = try parse(output, "--output") }
        if let logLevel { configuration.master.logLevel = try parse(logLevel, "--log-level") }
        if let control { configuration.master.control = control }
        configuration.program = program
    }

    private func parse<Value: RawRepresentable & CaseIterable>(_ text: String, _ flag: String) throws -> Value
    where Value.RawValue == String {
        guard let value = Value(rawValue: text) else {
            let allowed = Value.allCases.map(\.rawValue).joined(separator: ", ")
            throw UsageFailure("\(flag) \(text): expected one of \(allowed)")
        }
        return value
    }

    private func duration(_ text: String, _ flag: String) throws -> Duration {
        guard let value = DurationText.parse(text) else {
            throw UsageFailure("\(flag) \(text): expected a duration such as 250ms, 30s, 5m or 1h")
        }
        return value
    }
}

/// A usage or configuration error: printed as is, exit status 2.
struct UsageFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
