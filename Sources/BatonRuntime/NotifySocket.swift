import BatonCore
import CBaton
import Glibc

/// The master's notify socket: an abstract Unix datagram socket (reachable from any user and
/// mount namespace, and no file to clean up) whose name workers get as `NOTIFY_SOCKET`.
final class NotifySocket {
    let fd: CInt
    /// `@baton-<pid>-<random>`, as workers see it in `NOTIFY_SOCKET`.
    let address: String
    /// One byte more than a message may have, to tell an oversized datagram (kept across reads).
    private var buffer = [UInt8](repeating: 0, count: NotifyMessage.maximumSize + 1)

    /// One datagram: who sent it (kernel-attested pid, via SO_PASSCRED) and what it said.
    struct Datagram {
        var pid: pid_t
        var message: Result<NotifyMessage, NotifyMessageError>
        var fdsClosed: Int
    }

    init(masterPID: pid_t) throws(SystemError) {
        let random = UInt32.random(in: 0...UInt32.max)
        let name = "baton-\(masterPID)-\(String(random, radix: 16))"
        let fd = socket(AF_UNIX, CInt(SOCK_DGRAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue) | CInt(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw SystemError("notify socket: socket") }
        var one: CInt = 1
        guard setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, socklen_t(MemoryLayout<CInt>.size)) == 0 else {
            let error = SystemError("notify socket: setsockopt(SO_PASSCRED)")
            close(fd)
            throw error
        }
        let bound = SocketAddress.withUnix(path: name, abstract: true) { Glibc.bind(fd, $0, $1) }
        guard bound == 0 else {
            let error = SystemError("notify socket: bind @\(name)")
            close(fd)
            throw error
        }
        self.fd = fd
        address = "@\(name)"
    }

    deinit { close(fd) }

    /// Reads every queued datagram. A datagram over 4096 bytes is reported as an error; any fd it
    /// carries is closed at once (so a sender's `BARRIER=1` completes).
    func receiveAll(_ deliver: (Datagram) -> Void) {
        while true {
            var pid: pid_t = -1
            var uid: uid_t = 0
            var truncated: CInt = 0
            var closed: CInt = 0
            let length = buffer.withUnsafeMutableBytes {
                baton_recv_with_credentials(fd, $0.baseAddress, $0.count, &pid, &uid, &truncated, &closed)
            }
            if length < 0 {
                if errno == EINTR { continue }
                return
            }
            let message: Result<NotifyMessage, NotifyMessageError>
            if truncated != 0 || length > NotifyMessage.maximumSize {
                message = .failure(NotifyMessageError("datagram over \(NotifyMessage.maximumSize) bytes"))
            } else {
                message = NotifyMessage.parse(buffer.prefix(length))
            }
            deliver(Datagram(pid: pid, message: message, fdsClosed: Int(closed)))
        }
    }
}

/// Facts read from /proc/PID/stat.
enum ProcStat {
    /// The session id of a process (workers are session leaders, so it names the worker), or nil
    /// when the process is gone.
    static func session(of pid: pid_t) -> pid_t? {
        guard let text = read("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return nil }
        // After "pid (comm)": state ppid pgrp session ...
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 3 else { return nil }
        return pid_t(fields[3])
    }

    static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1024)
        let count = Glibc.read(fd, &buffer, buffer.count)
        guard count > 0 else { return nil }
        return String(decoding: buffer.prefix(count), as: UTF8.self)
    }
}
