/// The whole configuration of one master: its own settings, its listeners and the one program it
/// runs. Built by the TOML loader and by command-line flags; validated before use. Codable: the
/// loader runs in its own process (`baton-config`) and hands the result over as JSON.
public struct Configuration: Sendable, Equatable, Codable {
    public var master: MasterSettings
    /// In file order, which is fd order (`LISTEN_FDS` numbering and `LISTEN_FDNAMES`).
    public var listeners: [ListenerSpec]
    public var program: ProgramSpec

    public init(master: MasterSettings = .init(), listeners: [ListenerSpec] = [], program: ProgramSpec) {
        self.master = master
        self.listeners = listeners
        self.program = program
    }
}

public enum LogLevel: String, Sendable, Equatable, CaseIterable, Codable {
    case trace, debug, info, notice, warning, error
}

public enum LogFormat: String, Sendable, Equatable, CaseIterable, Codable {
    /// journal-aware: sd-daemon priority prefixes when stderr is the journal, else text.
    case auto
    case text
    case json
}

public struct MasterSettings: Sendable, Equatable, Codable {
    /// Control socket path; `nil` means the default path for this user and program.
    public var control: String?
    public var logLevel: LogLevel
    public var logFormat: LogFormat

    public init(control: String? = nil, logLevel: LogLevel = .info, logFormat: LogFormat = .auto) {
        self.control = control
        self.logLevel = logLevel
        self.logFormat = logFormat
    }
}

/// Where a listener binds. One listener name may carry several addresses (e.g. IPv4 and IPv6).
public enum ListenAddress: Sendable, Equatable, Hashable, CustomStringConvertible, Codable {
    /// `tcp://HOST:PORT`; `host` is an IPv4 or IPv6 literal (without brackets) or a host name.
    case tcp(host: String, port: UInt16)
    /// `udp://HOST:PORT`.
    case udp(host: String, port: UInt16)
    /// `unix:/path`: a socket file.
    case unixPath(String)
    /// `unix:@name`: an abstract socket (no file).
    case unixAbstract(String)

    public var description: String {
        switch self {
        case .tcp(let host, let port): return "tcp://\(Self.bracketed(host)):\(port)"
        case .udp(let host, let port): return "udp://\(Self.bracketed(host)):\(port)"
        case .unixPath(let path): return "unix:\(path)"
        case .unixAbstract(let name): return "unix:@\(name)"
        }
    }

    private static func bracketed(_ host: String) -> String {
        host.contains(":") ? "[\(host)]" : host
    }

    /// Parses `tcp://127.0.0.1:8080`, `tcp://[::1]:8080`, `udp://…`, `unix:/path`, `unix:@name`.
    /// The error text says what is expected, for messages like `file:12: listener "http": address: …`.
    public static func parse(_ text: String) -> Result<ListenAddress, AddressError> {
        if text.hasPrefix("unix:") {
            let rest = String(text.dropFirst("unix:".count))
            if rest.hasPrefix("@") {
                let name = String(rest.dropFirst())
                guard !name.isEmpty, name.utf8.count <= 107 else {
                    return .failure(AddressError("\"\(text)\": an abstract name needs 1 to 107 bytes"))
                }
                return .success(.unixAbstract(name))
            }
            guard rest.hasPrefix("/") else {
                return .failure(AddressError("\"\(text)\": expected unix:/absolute/path or unix:@name"))
            }
            guard rest.utf8.count <= 107 else {
                return .failure(AddressError("\"\(text)\": a socket path may have at most 107 bytes"))
            }
            return .success(.unixPath(rest))
        }
        let isUDP: Bool
        let rest: Substring
        if text.hasPrefix("tcp://") {
            isUDP = false
            rest = text.dropFirst("tcp://".count)
        } else if text.hasPrefix("udp://") {
            isUDP = true
            rest = text.dropFirst("udp://".count)
        } else {
            return .failure(AddressError("\"\(text)\": expected tcp://, unix: or udp://"))
        }
        let host: Substring
        let portText: Substring
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else {
                return .failure(AddressError("\"\(text)\": missing ] after the IPv6 address"))
            }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            guard after.hasPrefix(":") else {
                return .failure(AddressError("\"\(text)\": expected :PORT after ]"))
            }
            portText = after.dropFirst()
        } else {
            guard let colon = rest.lastIndex(of: ":") else {
                return .failure(AddressError("\"\(text)\": expected HOST:PORT"))
            }
            host = rest[..<colon]
            portText = rest[rest.index(after: colon)...]
            if host.contains(":") {
                return .failure(AddressError("\"\(text)\": put an IPv6 address in brackets, e.g. tcp://[::1]:8080"))
            }
        }
        guard !host.isEmpty else {
            return .failure(AddressError("\"\(text)\": missing host (use 0.0.0.0 or [::] for all addresses)"))
        }
        guard let port = UInt16(portText) else {
            return .failure(AddressError("\"\(text)\": port must be a number from 0 to 65535"))
        }
        return .success(isUDP ? .udp(host: String(host), port: port) : .tcp(host: String(host), port: port))
    }
}

public struct AddressError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

public struct ListenerSpec: Sendable, Equatable, Codable {
    /// `[A-Za-z0-9_.-]{1,64}`, not `unknown`, `stored` or `connection`; repeats in `LISTEN_FDNAMES`
    /// once per address.
    public var name: String
    public var addresses: [ListenAddress]
    public var backlog: Int32
    public var reuseport: Bool
    public var ipv6only: Bool
    /// File mode of a `unix:/path` socket file.
    public var mode: UInt32?
    public var owner: String?
    public var group: String?

    public init(
        name: String, addresses: [ListenAddress], backlog: Int32 = 4096, reuseport: Bool = false,
        ipv6only: Bool = true, mode: UInt32? = nil, owner: String? = nil, group: String? = nil
    ) {
        self.name = name
        self.addresses = addresses
        self.backlog = backlog
        self.reuseport = reuseport
        self.ipv6only = ipv6only
        self.mode = mode
        self.owner = owner
        self.group = group
    }

    /// Why `name` is not a valid listener name, or `nil` when it is.
    public static func nameProblem(_ name: String) -> String? {
        if name.isEmpty || name.utf8.count > 64 { return "a listener name needs 1 to 64 characters" }
        if ["unknown", "stored", "connection"].contains(name) {
            return "\"\(name)\" is reserved by systemd"
        }
        let allowed = name.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-")
        }
        return allowed ? nil : "\"\(name)\" may contain only A-Z, a-z, 0-9, _, . and -"
    }
}

public enum Handoff: String, Sendable, Equatable, CaseIterable, Codable {
    case listenFDs = "listen-fds"
    case channel
}

public enum ReadinessMode: String, Sendable, Equatable, CaseIterable, Codable {
    case notify, exec, delay, spawn
}

public enum KillMode: String, Sendable, Equatable, CaseIterable, Codable {
    case group, process
}

public enum OutputMode: String, Sendable, Equatable, CaseIterable, Codable {
    case forward, inherit
}

public struct ProgramSpec: Sendable, Equatable, Codable {
    public var name: String
    /// argv; `command[0]` is a path or a name looked up in `PATH`.
    public var command: [String]
    /// Extra environment, in a stable (sorted by key) order.
    public var env: [String: String]
    public var inheritEnv: Bool
    public var cwd: String?
    public var user: String?
    public var group: String?
    public var workers: Int
    public var handoff: Handoff
    public var ready: ReadinessMode
    public var readyCommand: [String]
    public var readyDelay: Duration
    public var readyInterval: Duration
    public var readyTimeout: Duration
    /// Signal number sent to a worker (its process group) to make it drain.
    public var drainSignal: Int32
    public var drainTimeout: Duration
    /// At most this many generations drain at once; beyond it the oldest is killed.
    public var maxDraining: Int
    public var killMode: KillMode
    public var output: OutputMode
    public var compat: [String]

    public init(
        name: String, command: [String], env: [String: String] = [:], inheritEnv: Bool = true,
        cwd: String? = nil, user: String? = nil, group: String? = nil, workers: Int = 1,
        handoff: Handoff = .listenFDs, ready: ReadinessMode = .notify, readyCommand: [String] = [],
        readyDelay: Duration = .seconds(1), readyInterval: Duration = .milliseconds(500),
        readyTimeout: Duration = .seconds(60), drainSignal: Int32 = 15, drainTimeout: Duration = .seconds(30),
        maxDraining: Int = 4, killMode: KillMode = .group, output: OutputMode = .forward, compat: [String] = []
    ) {
        self.name = name
        self.command = command
        self.env = env
        self.inheritEnv = inheritEnv
        self.cwd = cwd
        self.user = user
        self.group = group
        self.workers = workers
        self.handoff = handoff
        self.ready = ready
        self.readyCommand = readyCommand
        self.readyDelay = readyDelay
        self.readyInterval = readyInterval
        self.readyTimeout = readyTimeout
        self.drainSignal = drainSignal
        self.drainTimeout = drainTimeout
        self.maxDraining = maxDraining
        self.killMode = killMode
        self.output = output
        self.compat = compat
    }
}
