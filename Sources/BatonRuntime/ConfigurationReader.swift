import BatonCore
import CBaton
import Glibc

/// Reads configuration files: the bytes here, the TOML through `baton-config` in a child process.
///
/// The TOML parser (TOMLKit over C++ toml++) stays out of the master's process for two reasons.
/// It can crash: toml++ aborts on its own assertions for some malformed files (a file holding
/// just `[` is one; the `FuzzConfigLoader` fuzz target found three such places), and in the
/// master that abort would come on `systemctl reload`, taking the master and, by the parent-death
/// signal, every worker with it. And it is heavy: it brings Foundation, ICU and libstdc++, which
/// would more than double the master's resident memory (docs/BENCHMARKS.md). The child gets the
/// very bytes read here (a memfd at its fd 3), so what was checked for change is what is parsed.
public enum ConfigurationReader {
    /// Configuration files are small; a larger one is a mistake (or `/dev/zero`).
    public static let maximumSize = 4 << 20
    /// How long `baton-config` may take before it counts as hung (and is killed).
    public static let timeoutMilliseconds = 10_000

    /// The whole file at `path`. Errors read as the loader's: `web.toml: cannot read: …`.
    public static func read(_ path: String, maximumSize: Int = maximumSize) throws(ConfigurationFailure) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw cannotRead(path, errno) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw cannotRead(path, errno)
            }
            if count == 0 { return bytes }
            bytes += chunk[..<count]
            if bytes.count > maximumSize {
                throw ConfigurationFailure("\(path): larger than \(maximumSize >> 20) MiB: not a configuration file")
            }
        }
    }

    /// The configuration in `bytes`, the content of the file `path` (the file alone: flags are
    /// applied by `ConfigurationOverrides`).
    public static func parse(_ bytes: [UInt8], path: String) throws(ConfigurationFailure) -> Configuration {
        let run = try runHelper(input: bytes, name: path)
        switch run.status {
        case .exited(0):
            do {
                return try JSONCoding.decode(Configuration.self, from: run.output)
            } catch {
                throw ConfigurationFailure("\(path): \(helperName) printed no configuration baton understands (\(error)); is it the same version as baton?")
            }
        case .exited(2):
            // Its message names the file, the line and the key.
            throw ConfigurationFailure(String(decoding: run.output, as: UTF8.self).trimmingTrailingNewlines)
        case .exited(let code):
            throw ConfigurationFailure("\(path): \(helperName) exited with status \(code): \(String(decoding: run.output.suffix(2000), as: UTF8.self).trimmingTrailingNewlines)")
        case .signalled(let signal):
            throw ConfigurationFailure("\(path): cannot parse: the parser crashed (\(SignalName.name(signal))) on this file; it is not valid TOML")
        case .timedOut:
            throw ConfigurationFailure("\(path): cannot parse: the parser did not finish within \(timeoutMilliseconds / 1000)s")
        }
    }

    public static let helperName = "baton-config"

    /// `baton-config` beside this executable (as installed, and as `swift build` leaves them).
    public static func helperPath() -> String { Executables.beside(helperName) }

    private enum Status {
        case exited(Int32)
        case signalled(Int32)
        case timedOut
    }

    private static func runHelper(input: [UInt8], name: String) throws(ConfigurationFailure) -> (status: Status, output: [UInt8]) {
        let helper = helperPath()
        let memory: CInt
        do {
            memory = try MemoryFile.holding(input, name: "baton-config-input")
        } catch {
            throw ConfigurationFailure("\(name): cannot pass it to \(helperName): \(error)")
        }
        defer { close(memory) }
        var ends: [Int32] = [-1, -1]
        guard baton_pipe_cloexec(&ends) == 0 else { throw ConfigurationFailure("\(name): cannot start \(helperName): pipe: \(String(cString: strerror(errno)))") }
        let pid: pid_t
        do {
            // No Swift backtrace on a crash: it is slow, and the status says enough.
            pid = try ProcessSpawner.spawn(SpawnRequest(
                executable: helper, arguments: [helperName, "--name", name, "/dev/fd/3"],
                environment: ["SWIFT_BACKTRACE=enable=no"], fds: [memory],
                standardOutput: ends[1], standardError: ends[1], deathSignal: SIGKILL))
        } catch {
            close(ends[0])
            close(ends[1])
            throw ConfigurationFailure("\(name): cannot read configuration files: \(helper): \(error) (\(helperName) is installed beside baton)")
        }
        close(ends[1])
        defer { close(ends[0]) }
        let (output, finished) = readAll(ends[0])
        if !finished { kill(pid, SIGKILL) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        if !finished { return (.timedOut, output) }
        // WIFSIGNALED / WTERMSIG / WEXITSTATUS are macros Swift cannot see.
        let signal = status & 0x7f
        return (signal != 0 ? .signalled(signal) : .exited((status >> 8) & 0xff), output)
    }

    /// Everything `fd` gives until end of file; false when the deadline came first.
    private static func readAll(_ fd: Int32) -> ([UInt8], Bool) {
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        let deadline = ContinuousClock.now + .milliseconds(timeoutMilliseconds)
        while true {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { return (output, false) }
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&entry, 1, Int32(left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000) + 1)
            if ready < 0 && errno != EINTR { return (output, false) }
            guard ready > 0 else { continue }
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count == 0 { return (output, true) }
            if count > 0 && output.count < 16 << 20 { output += chunk[..<count] }
            if count < 0 && errno != EINTR && errno != EAGAIN { return (output, false) }
        }
    }

    private static func cannotRead(_ path: String, _ code: Int32) -> ConfigurationFailure {
        ConfigurationFailure("\(path): cannot read: \(String(cString: strerror(code)))")
    }
}

extension String {
    fileprivate var trimmingTrailingNewlines: String {
        var text = Substring(self)
        while text.last == "\n" { text = text.dropLast() }
        return String(text)
    }
}
