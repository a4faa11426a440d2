import CBaton
import Glibc

/// A single-threaded epoll loop. Sources are file descriptors with a handler each; nothing polls:
/// idle, the loop sleeps in `epoll_wait` with no timeout. Timers go through a timerfd
/// (`TimerQueue`), signals through a signalfd.
///
/// Not `Sendable`: the master creates and runs it on its main thread only, which is also the
/// thread that forks (so `PR_SET_PDEATHSIG` in workers lives as long as the master).
final class Reactor {
    typealias Handler = (_ events: UInt32) -> Void

    private let epoll: CInt
    private var handlers: [CInt: Handler] = [:]
    private var interest: [CInt: UInt32] = [:]
    private var running = false

    init() throws(SystemError) {
        epoll = baton_epoll_create()
        guard epoll >= 0 else { throw SystemError("epoll_create1") }
    }

    deinit { close(epoll) }

    /// Watches `fd` for `events` (`BATON_EV_IN`, `BATON_EV_OUT`).
    func register(_ fd: CInt, events: UInt32 = UInt32(BATON_EV_IN), handler: @escaping Handler) throws(SystemError) {
        guard baton_epoll_add(epoll, fd, events, UInt64(UInt32(bitPattern: fd))) == 0 else {
            throw SystemError("epoll_ctl(ADD, fd \(fd))")
        }
        handlers[fd] = handler
        interest[fd] = events
    }

    /// Changes what `fd` is watched for; a no-op when unchanged.
    func update(_ fd: CInt, events: UInt32) {
        guard let current = interest[fd], current != events else { return }
        if baton_epoll_modify(epoll, fd, events, UInt64(UInt32(bitPattern: fd))) == 0 {
            interest[fd] = events
        }
    }

    /// Stops watching `fd` (before it is closed).
    func unregister(_ fd: CInt) {
        guard handlers.removeValue(forKey: fd) != nil else { return }
        interest[fd] = nil
        _ = baton_epoll_remove(epoll, fd)
    }

    /// Forgets `fd`, already closed: closing the last fd of an open file removes it from the epoll
    /// set, so no `epoll_ctl` is needed (it would fail with EBADF).
    func forgetClosed(_ fd: CInt) {
        handlers.removeValue(forKey: fd)
        interest[fd] = nil
    }

    /// Runs until `stop()`. `afterEach` runs once per wake-up, after every handler.
    func run(afterEach: () -> Void) {
        running = true
        var events = [baton_event](repeating: baton_event(), count: 64)
        while running {
            let count = events.withUnsafeMutableBufferPointer {
                baton_epoll_wait(epoll, $0.baseAddress, CInt($0.count), -1)
            }
            if count < 0 {
                if errno == EINTR { continue }
                fatalError("epoll_wait failed: \(String(cString: strerror(errno)))")
            }
            for event in events.prefix(Int(count)) {
                let fd = CInt(bitPattern: UInt32(truncatingIfNeeded: event.token))
                // A handler may unregister another fd reported in the same batch.
                handlers[fd]?(event.events)
                if !running { break }
            }
            afterEach()
        }
    }

    func stop() { running = false }
}

/// An errno-carrying error from a system call, with what was attempted.
public struct SystemError: Error, Sendable, CustomStringConvertible {
    public var operation: String
    public var code: Int32

    public init(_ operation: String, code: Int32 = errno) {
        self.operation = operation
        self.code = code
    }

    public var description: String { "\(operation): \(String(cString: strerror(code)))" }
}
