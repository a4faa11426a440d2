import BatonCore
import BatonRuntime
import CBaton
import Glibc
import Logging

// The master process. `baton run` parses the command line, resolves the configuration and
// execs this executable with it (`MasterLaunch`): same pid, same inherited sockets, and none of
// the argument parser or Foundation mapped in the process that lives as long as the service.

// First, before any thread: take the sockets systemd passed (libsystemd reads and unsets
// LISTEN_* with getenv/unsetenv), and the launch (its variable is unset too).
let systemdSockets = SocketActivation.receive()
let launch: MasterLaunch
do {
    launch = try MasterLaunch.receive()
} catch {
    FileOutput.standardError("baton: \(error)")
    exit(ExitStatus.usage)
}
// Before anything can start a thread: block the signals the master takes through a signalfd,
// and read the environment (getenv is not thread-safe).
let signalFD = Master.handledSignals.withUnsafeBufferPointer {
    baton_signalfd_open($0.baseAddress, CInt($0.count))
}
let environment = ProcessEnvironment.read()
guard signalFD >= 0 else {
    FileOutput.standardError("baton: cannot create a signalfd: \(String(cString: strerror(errno)))")
    exit(ExitStatus.failed)
}
let reloader = ConfigurationReloader(configPath: launch.configPath, overrides: launch.overrides)
if let text = launch.fileText {
    reloader.remember(bytes: Array(text.utf8), configuration: launch.configuration)
}
let configuration = launch.configuration
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
        configuration: configuration, configPath: launch.configPath, environment: environment, logger: logger,
        reloadConfiguration: { try reloader.resolve() }, systemdSockets: systemdSockets)
} catch {
    FileOutput.standardError("baton: \(error)")
    exit(ExitStatus.failed)
}
exit(master.run(signalFD: signalFD))
