import BatonCore
import Glibc
import Logging

/// The master's side of systemd in one place: the sockets systemd passed, sd_notify, the
/// watchdog and the fd store. Every part is inert when the master does not run under systemd
/// (no `NOTIFY_SOCKET`, no `LISTEN_FDS`). Used on the master's thread only.
final class Systemd {
    let notifier: SystemdNotifier
    private var fdStore: SystemdFDStore
    private var watchdog: SystemdWatchdog?
    /// What systemd passed at start-up; `activate` takes it (once).
    private var received: SocketActivation.Reception
    private let logger: Logger

    /// - Parameters:
    ///   - environment: the master's environment as read at start-up.
    ///   - received: `SocketActivation.receive()`, taken first thing in `main`.
    init(environment: [(key: String, value: String)], received: SocketActivation.Reception, logger: Logger) {
        notifier = SystemdNotifier(environment: environment, logger: logger)
        fdStore = SystemdFDStore(notifier: notifier)
        self.received = received
        self.logger = logger
    }

    /// The master's listeners at start-up: systemd's sockets adopted, the rest bound, the
    /// self-bound ones put in the fd store. A failure is also told to systemd (`ERRNO=`).
    func activate(_ listeners: [ListenerSpec]) throws(ListenerError) -> [BoundSocket] {
        if let problem = received.problem { logger.warning("\(problem)") }
        let passed = received.sockets
        received = SocketActivation.Reception()
        do {
            let activated = try SocketActivation.activate(listeners, received: passed, logger: logger)
            fdStore.start(activated)
            return activated.sockets
        } catch {
            notifier.errno(error.code, status: "\(error)")
            throw error
        }
    }

    /// Starts `WATCHDOG=1` pings on the master's event loop when systemd's watchdog is on.
    func startWatchdog(on reactor: Reactor) throws(SystemError) {
        guard let watchdog = try SystemdWatchdog(notifier: notifier) else { return }
        self.watchdog = watchdog
        logger.info("systemd watchdog: WATCHDOG=1 every \(DurationText.format(watchdog.interval))")
        try reactor.register(watchdog.fd) { _ in watchdog.fire() }
    }

    /// Sends what the state machine asked for.
    func perform(_ notification: SystemdNotification) {
        notifier.perform(notification)
    }

    /// After a reload changed the listeners: keeps the fd store in step.
    func listenersChanged(_ sockets: [BoundSocket]) {
        fdStore.sync(sockets)
    }

    /// A start-up failure other than binding: `ERRNO=` and the reason, before the master exits.
    func startFailed(_ error: any Error) {
        notifier.errno((error as? SystemError)?.code ?? EIO, status: "\(error)")
    }

    /// Whether the socket files of self-bound `unix:` listeners stay when the master exits: under
    /// systemd the fd store may hand the socket to the next master, which needs its file (a stale
    /// file is removed when a later bind finds nobody listening on it).
    var keepsSocketFiles: Bool { notifier.isEnabled }
}
