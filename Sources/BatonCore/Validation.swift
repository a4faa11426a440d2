/// Checks that need the whole configuration: the file and the command-line flags merged.
extension Configuration {
    /// The compatibility modes `compat = [...]` may name.
    public static let compatValues = ["einhorn", "server-starter"]

    /// Every problem that keeps this configuration from running, one message each, in a stable
    /// order; empty when it may be used. Messages name the thing they are about and use the
    /// configuration file's key names, e.g. `listener "http": backlog must be 1 to 65535`.
    public func problems() -> [String] {
        listenerProblems() + program.problems()
    }

    /// `program.name`, else the last path component of `command[0]`, else `"baton"`. Names the
    /// control socket (`NAME.sock`) and prefixes worker output.
    public var effectiveProgramName: String {
        if !program.name.isEmpty { return program.name }
        if let first = program.command.first {
            let base = first.split(separator: "/", omittingEmptySubsequences: true).last.map(String.init) ?? ""
            if !base.isEmpty { return base }
        }
        return "baton"
    }

    private func listenerProblems() -> [String] {
        guard !listeners.isEmpty else {
            return ["no listener: add a [[listener]] to the file or give --listen NAME=ADDRESS"]
        }
        var problems: [String] = []
        var seenNames: Set<String> = []
        var reportedNames: Set<String> = []
        // Port 0 asks the kernel for a fresh port on each bind, so two of them never collide.
        var owners: [ListenAddress: String] = [:]
        for (position, listener) in listeners.enumerated() {
            let label = Self.listenerLabel(listener.name, position: position)
            if let nameProblem = ListenerSpec.nameProblem(listener.name) {
                problems.append("\(label): \(nameProblem)")
            } else if !seenNames.insert(listener.name).inserted, reportedNames.insert(listener.name).inserted {
                problems.append("\(label): more than one listener has this name")
            }
            problems += listener.problems(label: label)
            var ownAddresses: Set<ListenAddress> = []
            for address in listener.addresses {
                if !ownAddresses.insert(address).inserted {
                    problems.append("\(label): address \(address) is listed twice")
                    continue
                }
                if address.isFixed, let owner = owners[address] {
                    problems.append("\(label): address \(address) is also used by \(owner)")
                } else if address.isFixed {
                    owners[address] = label
                }
            }
        }
        return problems
    }

    /// How messages name a listener: `listener "http"` for a valid name, else `listener 2` (its
    /// place in file order, counted from 1).
    public static func listenerLabel(_ name: String, position: Int) -> String {
        ListenerSpec.nameProblem(name) == nil ? "listener \"\(name)\"" : "listener \(position + 1)"
    }
}

extension ListenAddress {
    /// False for `tcp://…:0` and `udp://…:0`, whose port the kernel picks at bind time.
    fileprivate var isFixed: Bool {
        switch self {
        case .tcp(_, let port), .udp(_, let port): return port != 0
        case .unixPath, .unixAbstract: return true
        }
    }

    fileprivate var isUnixPath: Bool {
        if case .unixPath = self { return true }
        return false
    }
}

extension ListenerSpec {
    fileprivate func problems(label: String) -> [String] {
        var problems: [String] = []
        if addresses.isEmpty { problems.append("\(label): needs at least one address") }
        if !(1...65535).contains(backlog) { problems.append("\(label): backlog must be 1 to 65535") }
        if let mode, mode > 0o7777 { problems.append("\(label): mode must be at most 0o7777") }
        if mode != nil || owner != nil || group != nil, !addresses.contains(where: \.isUnixPath) {
            problems.append("\(label): mode, owner and group apply only to unix:/path addresses")
        }
        if owner == "" { problems.append("\(label): owner must not be empty") }
        if group == "" { problems.append("\(label): group must not be empty") }
        return problems
    }
}

extension ProgramSpec {
    fileprivate func problems() -> [String] {
        var problems: [String] = []
        if command.isEmpty || command[0].isEmpty {
            problems.append("program: command is empty: set command in [program] or give it after --")
        }
        if name.contains("/") { problems.append("program: name \"\(name)\" must not contain /") }
        if !(1...4096).contains(workers) { problems.append("program: workers must be 1 to 4096") }
        for key in env.keys.sorted() where key.isEmpty || key.contains("=") {
            problems.append("program: env: \"\(key)\" is not a variable name")
        }
        if cwd == "" { problems.append("program: cwd must not be empty") }
        if user == "" { problems.append("program: user must not be empty") }
        if group == "" { problems.append("program: group must not be empty") }
        if ready == .exec, readyCommand.isEmpty {
            problems.append("program: ready = \"exec\" needs ready_command")
        }
        if readyDelay < .zero { problems.append("program: ready_delay must not be negative") }
        if readyInterval <= .zero { problems.append("program: ready_interval must be more than 0") }
        if readyTimeout <= .zero { problems.append("program: ready_timeout must be more than 0") }
        if drainTimeout <= .zero { problems.append("program: drain_timeout must be more than 0") }
        if !(1...SignalName.maximum).contains(drainSignal) {
            problems.append("program: drain_signal must be a signal number from 1 to \(SignalName.maximum)")
        }
        if maxDraining < 1 { problems.append("program: max_draining must be at least 1") }
        var seenCompat: Set<String> = []
        for value in compat {
            if !Configuration.compatValues.contains(value) {
                problems.append("program: compat: unknown value \"\(value)\" (expected \"einhorn\" or \"server-starter\")")
            } else if !seenCompat.insert(value).inserted {
                problems.append("program: compat: \"\(value)\" is listed twice")
            }
        }
        if !compat.isEmpty, handoff != .listenFDs {
            problems.append("program: compat needs handoff = \"listen-fds\"")
        }
        return problems
    }
}
