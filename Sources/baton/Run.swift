import ArgumentParser
import BatonCore
import BatonRuntime
import CBaton
import Glibc
import Logging

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the master: bind the listeners and supervise generations of workers.",
        discussion: """
            Signals: HUP reloads; TERM and INT stop gracefully (a second INT stops at once); \
            QUIT stops at once.
            Example: baton run --listen http=tcp://127.0.0.1:8080 --workers 2 -- ./server
            """
    )

    @OptionGroup var options: ConfigurationOptions

    func run() throws {
        // First, before any thread: take the sockets systemd passed (libsystemd reads and unsets
        // LISTEN_* with getenv/unsetenv).
        let systemdSockets = SocketActivation.receive()
        // Before anything can start a thread: block the signals the master takes through a
        // signalfd, and read the environment (getenv is not thread-safe).
        let signalFD = Master.handledSignals.withUnsafeBufferPointer {
            baton_signalfd_open($0.baseAddress, CInt($0.count))
        }
        let environment = ProcessEnvironment.read()
        let reloader = ConfigurationReloader(options: options)
        let configuration: Configuration
        do {
            configuration = try reloader.resolve()
        } catch {
            FileOutput.standardError("baton: \(error)")
            throw ExitCode(ExitStatus.usage)
        }
        guard signalFD >= 0 else {
            FileOutput.standardError("baton: cannot create a signalfd: \(String(cString: strerror(errno)))")
            throw ExitCode(ExitStatus.failed)
        }
        let journal = MasterLogHandler.stderrIsJournal(environment: Dictionary(environment.map { ($0.key, $0.value) }) { $1 })
        let level = configuration.master.logLevel.loggerLevel
        LoggingSystem.bootstrap { _ in MasterLogHandler(level: level, journal: journal) }
        let logger = Logger(label: "baton")
        switch ResourceLimits.raiseOpenFileLimit() {
        case .success(let limits) where limits.previousSoft != limits.soft:
            logger.info("open-file limit raised from \(limits.previousSoft) to \(limits.soft)")
        case .success:
            break
        case .failure(let error):
            logger.warning("cannot raise the open-file limit: \(error)")
        }
        let master: Master
        do {
            master = try Master(
                configuration: configuration, configPath: options.config, environment: environment, logger: logger,
                reloadConfiguration: { try reloader.resolve() }, systemdSockets: systemdSockets)
        } catch {
            FileOutput.standardError("baton: \(error)")
            throw ExitCode(ExitStatus.failed)
        }
        let code = master.run(signalFD: signalFD)
        if code != 0 { throw ExitCode(code) }
    }
}

enum ProcessEnvironment {
    /// The process environment in order, read from `environ`.
    static func read() -> [(key: String, value: String)] {
        var result: [(key: String, value: String)] = []
        var cursor = environ
        while let entry = cursor.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                result.append((String(text[..<equals]), String(text[text.index(after: equals)...])))
            }
            cursor += 1
        }
        return result
    }
}
