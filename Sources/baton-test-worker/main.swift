// baton-test-worker: a small single-threaded HTTP/1.1 server (poll(2), no Foundation) for baton's
// tests and demo. `--help` lists the switches.
//
// Sockets, first match wins: a channel (`BATON_CHANNEL_FD`: `LISTEN_FDS=n`, `LISTEN_FDNAMES`,
// `BATON_GENERATION`, fds in SCM_RIGHTS, `MORE=1` on all but the last message); `LISTEN_FDS` when
// `LISTEN_PID` is this process (its parent with `--listen-pid-parent`); `--listen [NAME=]ADDR`.
// A worker accepts only once it has sent READY=1 (`--serve-before-ready` accepts at once), so a
// generation that never becomes ready never takes a connection from the shared queue. A handed
// datagram (UDP) socket is an echo: each datagram is answered with `gen=<gen> pid=<pid> <payload>`.
//
// Output, one line each, written straight to fd 1 (stdio would hold lines back in a pipe):
//   listener <name> <ipv4|ipv6|unix> <address>     per socket, then
//   handover over the channel in <m> messages       with a channel only, then
//   worker pid=<pid> gen=<gen> listening on <n> sockets
//   worker pid=<pid> ready                          after READY=1 was sent
//   draining after <SIGTERM|…|DRAIN=1>: stopped accepting, <n> connections open
//   drain deadline reached: closing <n> connections
//   drained                                         just before exit(0)
//   ignoring <signal> (--ignore-drain), crashing after <n> requests (stderr, then abort()),
//   exiting with <code> before ready (stderr)
//
// Drain: the listeners are closed (never shut down: the master and the next generation share
// them). A request in progress completes with `Connection: close`. An idle keep-alive connection
// stays open for `--idle-grace` ms, counted from the later of the drain's start and its last
// activity; a request in that time is answered with `Connection: close`. After a final response
// the worker shuts down its sending side and waits (up to 2 s or the drain deadline) for the
// client to close, so a reset never destroys an answer the client has not read yet. At the
// deadline (`BATON_DRAIN_TIMEOUT_USEC`, or the channel's `TIMEOUT_USEC`) every connection is
// closed. With no connection left and `--drain-delay` passed, it prints `drained` and exits 0.
import CBaton
import Glibc

enum WorkerMain {
    static func run() -> Never {
        let started = baton_monotonic_ns()
        // Before anything else: a drain signal that arrives during start-up waits in the signalfd.
        let drainSignals = [SIGTERM, SIGINT, SIGUSR2, SIGQUIT]
        let signalFD = drainSignals.withUnsafeBufferPointer { baton_signalfd_open($0.baseAddress, Int32($0.count)) }
        guard signalFD >= 0 else {
            complain("baton-test-worker: signalfd: \(errnoText())")
            exit(1)
        }
        // Peers that reset must not kill the worker; sends also pass MSG_NOSIGNAL.
        signal(SIGPIPE, SIG_IGN)

        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.contains("--help") || arguments.contains("-h") {
            say(Options.usage)
            exit(0)
        }
        var options: Options
        do {
            options = try Options.parse(arguments)
        } catch {
            complain("baton-test-worker: \(error.message)")
            complain(Options.usage)
            exit(2)
        }
        options.claimFaults()
        Faults.atStart(options)

        if options.printEnv {
            for entry in environmentEntries() { say(entry) }
        }
        printOutputLines(options.outputLines)

        var handoff: Handoff
        do {
            handoff = try Handoff.acquire(options)
        } catch {
            complain("baton-test-worker: \(error.message)")
            exit(1)
        }
        Faults.closeListeners(options, &handoff)
        let identity = Identity(
            pid: getpid(),
            generation: handoff.generation ?? environment("BATON_GENERATION") ?? "0",
            worker: environment("BATON_WORKER") ?? "0"
        )
        for listener in handoff.listeners { say("listener \(listener.line)") }
        if let messages = handoff.channelMessages { say("handover over the channel in \(messages) messages") }
        say("worker pid=\(identity.pid) gen=\(identity.generation) listening on \(handoff.listeners.count) sockets")

        let server = Server(
            options: options,
            endpoints: Endpoints(identity: identity, listeners: handoff.listeners),
            listeners: handoff.listeners,
            signalFD: signalFD,
            channelFD: handoff.channelFD,
            notifier: Notifier(channelFD: handoff.channelFD),
            started: started
        )
        server.run()
    }

    /// `--output-lines N`: "output line 1" … "output line N", written in large chunks.
    private static func printOutputLines(_ count: Int) {
        var chunk = ""
        for index in stride(from: 1, through: count, by: 1) {
            chunk += "output line \(index)\n"
            if chunk.utf8.count >= 65536 {
                writeAll(1, chunk)
                chunk = ""
            }
        }
        if !chunk.isEmpty { writeAll(1, chunk) }
    }
}

WorkerMain.run()
