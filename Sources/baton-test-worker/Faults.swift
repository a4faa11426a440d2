import Glibc

// Misbehaviour on request, for baton's fault-matrix tests. Each fault is one switch of `Options`.
enum Faults {
    /// The faults that act before the sockets are taken: `--crash-at-start`, `--fork-grandchild`.
    static func atStart(_ options: Options) {
        if options.crashAtStart {
            complain("crashing at start")
            // Without Swift's crash handler, whose backtrace would bury the line above.
            signal(SIGABRT, SIG_DFL)
            abort()
        }
        if options.forkGrandchild { forkGrandchildAndExit() }
        if options.floodOutput { startFlood() }
        if options.notifyJunk { sendNotifyJunk() }
    }

    /// Two datagrams the master must reject: one over sd_notify's 4096 bytes, one not KEY=VALUE.
    private static func sendNotifyJunk() {
        let notifier = Notifier(channelFD: nil)
        if let error = notifier.send("STATUS=" + String(repeating: "x", count: 5000)) { complain(error) }
        if let error = notifier.send("this is not KEY=VALUE\nready") { complain(error) }
        say("sent junk to \(notifier.destination)")
    }

    /// `--close-listener NAME`: closes this process's copies (never shutdown(): the master and the
    /// other workers share the socket) and forgets them.
    static func closeListeners(_ options: Options, _ handoff: inout Handoff) {
        guard !options.closeListeners.isEmpty else { return }
        for listener in handoff.listeners where options.closeListeners.contains(listener.name) {
            close(listener.fd)
            say("closed listener \(listener.name) early")
        }
        handoff.listeners.removeAll { options.closeListeners.contains($0.name) }
    }

    /// The grandchild stays in the worker's process group and session, blocks the drain signals
    /// (inherited from the signalfd set-up) and waits until it is SIGKILLed; the worker exits 0.
    private static func forkGrandchildAndExit() -> Never {
        let child = fork()
        if child < 0 {
            complain("fork: \(errnoText())")
            exit(1)
        }
        if child == 0 {
            say("grandchild pid=\(getpid()) of worker pid=\(getppid()) waiting")
            while true { pause() }
        }
        say("forked grandchild pid=\(child); exiting")
        exit(0)
    }

    /// A thread that writes numbered lines forever. Each write is at most PIPE_BUF bytes, so the
    /// main thread's own lines never land inside a flood line.
    private static func startFlood() {
        var thread = pthread_t()
        let result = pthread_create(&thread, nil, { _ in
            Faults.flood()
        }, nil)
        if result != 0 {
            complain("pthread_create: \(errnoText(result))")
            exit(1)
        }
        say("flooding stdout")
    }

    private static func flood() -> Never {
        let filler = String(repeating: "x", count: 100)
        var number = 0
        while true {
            var chunk = ""
            while chunk.utf8.count < 3900 {
                number += 1
                chunk += "flood line \(number) \(filler)\n"
            }
            writeAll(1, chunk)
        }
    }
}
