import Glibc

/// Where the control socket lives, for the master and for `baton reload|status|stop|scale`.
///
/// Default directory, first match:
/// 1. `$RUNTIME_DIRECTORY` (systemd's `RuntimeDirectory=baton` gives `/run/baton`, the same path
///    root uses, so an operator's `baton reload` finds a service's master);
/// 2. `/run/baton` as root;
/// 3. `$XDG_RUNTIME_DIR/baton`;
/// 4. `/tmp/baton-UID` (no runtime directory: like tmux, a per-user directory that the server
///    creates 0700 and refuses to use if anybody else could write to it).
///
/// The socket is `NAME.sock` in that directory, `NAME` being the program name, unless
/// `[master] control` names a path.
public enum ControlPath {
    /// The variable a client reads when `--control` is not given.
    public static let environmentVariable = "BATON_CONTROL"

    /// The directory default sockets go in, for a process with this environment and uid.
    public static func defaultDirectory(environment: [String: String], uid: uid_t) -> String {
        if let runtime = environment["RUNTIME_DIRECTORY"], !runtime.isEmpty {
            // Several RuntimeDirectory= entries arrive colon-separated: the first is ours.
            let first = runtime.split(separator: ":", omittingEmptySubsequences: true).first.map(String.init) ?? runtime
            return trimmed(first)
        }
        if uid == 0 { return "/run/baton" }
        if let runtime = environment["XDG_RUNTIME_DIR"], !runtime.isEmpty {
            return trimmed(runtime) + "/baton"
        }
        return "/tmp/baton-\(uid)"
    }

    /// `NAME.sock` in the default directory.
    public static func defaultPath(program: String, environment: [String: String], uid: uid_t) -> String {
        defaultDirectory(environment: environment, uid: uid) + "/" + fileName(program: program)
    }

    /// The path the master serves on: `[master] control` if set, else the default for its program.
    public static func masterPath(configured: String?, program: String, environment: [String: String], uid: uid_t) -> String {
        if let configured, !configured.isEmpty { return configured }
        return defaultPath(program: program, environment: environment, uid: uid)
    }

    /// The socket a client talks to: `--control`, else the `--config` file's `[master] control`,
    /// else `NAME.sock` for its program, else `$BATON_CONTROL`, else the only `*.sock` in the
    /// default directory. Flags given on the command line win over the environment.
    /// - Parameters:
    ///   - explicit: `--control PATH`.
    ///   - configured: `[master] control` of the `--config` file.
    ///   - program: the program name of the `--config` file; `nil` without `--config`.
    ///   - listSockets: the socket files in a directory (`nil`: the directory cannot be read).
    public static func resolveForClient(
        explicit: String?, configured: String?, program: String?, environment: [String: String], uid: uid_t,
        listSockets: (String) -> [String]? = ControlPath.socketFiles(in:)
    ) -> Result<String, ControlPathError> {
        if let explicit, !explicit.isEmpty { return .success(explicit) }
        if let configured, !configured.isEmpty { return .success(configured) }
        if let program, !program.isEmpty {
            return .success(defaultPath(program: program, environment: environment, uid: uid))
        }
        if let variable = environment[environmentVariable], !variable.isEmpty { return .success(variable) }
        let directory = defaultDirectory(environment: environment, uid: uid)
        let sockets = (listSockets(directory) ?? []).filter { $0.hasSuffix(".sock") }.sorted()
        switch sockets.count {
        case 0:
            return .failure(.noneFound(directory: directory))
        case 1:
            return .success(directory + "/" + sockets[0])
        default:
            return .failure(.ambiguous(directory: directory, names: sockets))
        }
    }

    /// `NAME.sock`, with anything that would leave the directory replaced.
    public static func fileName(program: String) -> String {
        let safe = program.map { $0 == "/" || $0 == "\0" ? "_" : $0 }
        let name = String(safe)
        return (name.isEmpty || name == "." || name == ".." ? "baton" : name) + ".sock"
    }

    /// The names of the socket files in `directory`, or `nil` when it cannot be read.
    public static func socketFiles(in directory: String) -> [String]? {
        guard let handle = opendir(directory) else { return nil }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard name != ".", name != ".." else { continue }
            var info = stat()
            guard lstat(directory + "/" + name, &info) == 0, info.st_mode & S_IFMT == S_IFSOCK else { continue }
            names.append(name)
        }
        return names
    }

    private static func trimmed(_ directory: String) -> String {
        var result = Substring(directory)
        while result.count > 1 && result.hasSuffix("/") { result = result.dropLast() }
        return String(result)
    }
}

/// Why a client found no single control socket.
public enum ControlPathError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No `*.sock` in the default directory: no master is reachable (exit 3).
    case noneFound(directory: String)
    /// Several sockets and nothing to choose by (exit 2).
    case ambiguous(directory: String, names: [String])

    public var description: String {
        switch self {
        case .noneFound(let directory):
            return "no master reachable: no control socket in \(directory) (use --control PATH or --config FILE)"
        case .ambiguous(let directory, let names):
            return "several masters in \(directory): \(names.joined(separator: ", ")); choose one with --control PATH or --config FILE"
        }
    }
}
