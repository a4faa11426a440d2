import ArgumentParser
import BatonCore
import BatonRuntime

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

    /// The flags, parsed; errors name the flag and what it expects.
    func overrides() throws(UsageFailure) -> ConfigurationOverrides {
        var overrides = ConfigurationOverrides()
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
            if let index = overrides.listeners.firstIndex(where: { $0.name == name }) {
                overrides.listeners[index].addresses.append(address)
            } else {
                overrides.listeners.append(ListenerSpec(name: name, addresses: [address]))
            }
        }
        overrides.command = command
        overrides.name = name
        overrides.workers = workers
        if let handoff { overrides.handoff = try parse(handoff, "--handoff") }
        if let ready { overrides.ready = try parse(ready, "--ready") }
        if let readyTimeout { overrides.readyTimeout = try duration(readyTimeout, "--ready-timeout") }
        if let drainTimeout { overrides.drainTimeout = try duration(drainTimeout, "--drain-timeout") }
        if let drainSignal {
            guard let number = SignalName.parse(drainSignal) else {
                throw UsageFailure("--drain-signal \(drainSignal): expected a signal name such as SIGTERM")
            }
            overrides.drainSignal = number
        }
        overrides.maxDraining = maxDraining
        if let killMode { overrides.killMode = try parse(killMode, "--kill-mode") }
        if let output { overrides.output = try parse(output, "--output") }
        if let logLevel { overrides.logLevel = try parse(logLevel, "--log-level") }
        overrides.control = control
        return overrides
    }

    /// A reader of the configuration these options describe (the file, if any, and the flags).
    func reloader() throws(UsageFailure) -> ConfigurationReloader {
        ConfigurationReloader(configPath: config, overrides: try overrides())
    }

    private func parse<Value: RawRepresentable & CaseIterable>(_ text: String, _ flag: String) throws(UsageFailure) -> Value
    where Value.RawValue == String {
        guard let value = Value(rawValue: text) else {
            let allowed = Value.allCases.map(\.rawValue).joined(separator: ", ")
            throw UsageFailure("\(flag) \(text): expected one of \(allowed)")
        }
        return value
    }

    private func duration(_ text: String, _ flag: String) throws(UsageFailure) -> Duration {
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
