/// The command-line flags that mirror configuration keys, already parsed: what `baton run` was
/// told beside (or instead of) a configuration file. Flags win over the file. Fixed for the
/// master's life, so the master applies them again to the file at every reload (Codable: `baton
/// run` hands them to the master process).
public struct ConfigurationOverrides: Sendable, Equatable, Codable {
    /// `--listen NAME=ADDRESS`, grouped by name in flag order; each replaces the file's listener
    /// of that name, or is added after the file's.
    public var listeners: [ListenerSpec] = []
    /// The worker command given after `--`.
    public var command: [String] = []
    public var name: String?
    public var workers: Int?
    public var handoff: Handoff?
    public var ready: ReadinessMode?
    public var readyTimeout: Duration?
    public var drainSignal: Int32?
    public var drainTimeout: Duration?
    public var maxDraining: Int?
    public var killMode: KillMode?
    public var output: OutputMode?
    public var logLevel: LogLevel?
    public var control: String?

    public init() {}

    /// `file` (the configuration file as loaded, if any) with these flags applied and validated.
    /// A problem is reported with `configPath` in front, as the loader reports the file's.
    public func resolve(file: Configuration?, configPath: String?) throws(ConfigurationFailure) -> Configuration {
        var configuration = file ?? Configuration(program: ProgramSpec(name: "", command: []))
        apply(to: &configuration)
        configuration.program.name = configuration.effectiveProgramName
        let problems = configuration.problems()
        guard problems.isEmpty else {
            let origin = configPath.map { "\($0): " } ?? ""
            throw ConfigurationFailure(problems.map { "\(origin)\($0)" }.joined(separator: "\n"))
        }
        return configuration
    }

    private func apply(to configuration: inout Configuration) {
        for listener in listeners {
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
        if let handoff { program.handoff = handoff }
        if let ready { program.ready = ready }
        if let readyTimeout { program.readyTimeout = readyTimeout }
        if let drainTimeout { program.drainTimeout = drainTimeout }
        if let drainSignal { program.drainSignal = drainSignal }
        if let maxDraining { program.maxDraining = maxDraining }
        if let killMode { program.killMode = killMode }
        if let output { program.output = output }
        configuration.program = program
        if let logLevel { configuration.master.logLevel = logLevel }
        if let control { configuration.master.control = control }
    }
}

/// A configuration that cannot be used, and why: the file, line and key where they are known.
public struct ConfigurationFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
