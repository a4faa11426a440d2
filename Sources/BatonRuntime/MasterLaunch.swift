import BatonCore
import CBaton
import Glibc

/// What `baton run` hands to the master process it becomes.
///
/// `baton run` parses the command line (swift-argument-parser) and resolves the configuration,
/// then execs `baton-master`, which keeps the pid (systemd's main process, `LISTEN_PID`) and the
/// inherited sockets, and maps neither the argument parser nor Foundation: the long-lived process
/// stays small (docs/BENCHMARKS.md). This travels in a memfd named by `BATON_MASTER_LAUNCH_FD`.
public struct MasterLaunch: Sendable, Codable {
    /// The `--config` file, if any.
    public var configPath: String?
    /// The flags, applied again at every reload.
    public var overrides: ConfigurationOverrides
    /// The configuration resolved by `baton run`.
    public var configuration: Configuration
    /// The file's text that `configuration` was made from, so the master's first reload does not
    /// parse an unchanged file again.
    public var fileText: String?

    public init(configPath: String?, overrides: ConfigurationOverrides, configuration: Configuration, fileText: String?) {
        self.configPath = configPath
        self.overrides = overrides
        self.configuration = configuration
        self.fileText = fileText
    }

    /// The environment variable naming the fd to read the launch from.
    public static let environmentKey = "BATON_MASTER_LAUNCH_FD"

    /// Replaces this process with `baton-master` (beside this executable), keeping `arguments`
    /// as its command line so `ps` shows what was run. Returns only on failure, saying why.
    public func exec(arguments: [String]) -> String {
        let master = Executables.beside(Executables.master)
        let bytes: [UInt8]
        do {
            bytes = try JSONCoding.encode(self)
        } catch {
            return "cannot encode the configuration for \(Executables.master): \(error)"
        }
        let memory: CInt
        do {
            memory = try MemoryFile.holding(bytes, name: "baton-master-launch")
        } catch {
            return "cannot pass the launch: \(error)"
        }
        // The master reads it through /proc/self/fd (a new open file, from the start); the fd
        // itself must survive the exec.
        guard fcntl(memory, F_SETFD, 0) == 0 else { return "fcntl: \(String(cString: strerror(errno)))" }
        setenv(Self.environmentKey, String(memory), 1)
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        execv(master, argv)
        let reason = String(cString: strerror(errno))
        close(memory)
        unsetenv(Self.environmentKey)
        return "cannot start \(master): \(reason) (\(Executables.master) is installed beside baton)"
    }

    /// The launch `baton run` left for this process; unsets the variable and closes the fd, so
    /// workers inherit neither.
    public static func receive() throws(ConfigurationFailure) -> MasterLaunch {
        guard let text = getenv(environmentKey).map({ String(cString: $0) }), let fd = Int32(text), fd >= 0 else {
            throw ConfigurationFailure("\(Executables.master) is started by `baton run`; run that instead")
        }
        unsetenv(environmentKey)
        defer { close(fd) }
        let bytes = try ConfigurationReader.read("/proc/self/fd/\(fd)", maximumSize: 64 << 20)
        do {
            return try JSONCoding.decode(MasterLaunch.self, from: bytes)
        } catch {
            throw ConfigurationFailure("the launch from `baton run` is unreadable (\(error)); are baton and \(Executables.master) the same version?")
        }
    }
}
