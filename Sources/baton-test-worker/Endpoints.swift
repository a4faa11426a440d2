import Glibc

/// Who this worker is, as its answers and output show it.
struct Identity {
    var pid: Int32
    var generation: String
    var worker: String

    /// `pid=<pid> gen=<gen> worker=<index>`, the body of `GET /`.
    var summary: String { "pid=\(pid) gen=\(generation) worker=\(worker)" }
}

/// What the worker answers, and when.
struct Routed {
    var response: Response
    /// Milliseconds to hold the answer back (`/slow?ms=N`), without blocking the event loop.
    var delayMs: Int = 0
}

/// The endpoints of the test worker.
struct Endpoints {
    var identity: Identity
    /// The listeners as handed over or bound, for `/listeners`.
    var listeners: [Listener]

    func route(_ head: RequestHead) -> Routed {
        let tagged = [("X-Baton-Generation", identity.generation), ("X-Baton-Pid", "\(identity.pid)")]
        switch head.path {
        case "/":
            return Routed(response: Response(status: 200, body: identity.summary + "\n", headers: tagged))
        case "/slow":
            let delay = head.query("ms").flatMap { Int($0) }.map { max(0, $0) } ?? 1000
            return Routed(response: Response(status: 200, body: identity.summary + "\n", headers: tagged),
                          delayMs: delay)
        case "/fds":
            return Routed(response: Response(status: 200, body: Self.openFDs(), headers: tagged))
        case "/env":
            let lines = environmentEntries().map { $0 + "\n" }.joined()
            return Routed(response: Response(status: 200, body: lines, headers: tagged))
        case "/listeners":
            let lines = listeners.map { $0.line + "\n" }.joined()
            return Routed(response: Response(status: 200, body: lines, headers: tagged))
        default:
            return Routed(response: Response(status: 404, body: "not found: \(head.path)\n", headers: tagged))
        }
    }

    /// One line per open fd, `<fd> <readlink of /proc/self/fd/<fd>>`, in fd order. The fd of the
    /// directory listing itself is left out.
    static func openFDs() -> String {
        guard let directory = opendir("/proc/self/fd") else { return "" }
        let own = dirfd(directory)
        var fds: [Int32] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if let fd = Int32(name), fd != own { fds.append(fd) }
        }
        closedir(directory)
        return fds.sorted().map { fd in
            var target = [CChar](repeating: 0, count: 4096)
            let length = readlink("/proc/self/fd/\(fd)", &target, target.count - 1)
            let text = length >= 0
                ? String(decoding: target.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
            return "\(fd) \(text)\n"
        }.joined()
    }
}

/// The process environment as `KEY=VALUE` strings, read from /proc/self/environ (the worker never
/// changes its environment, and Swift 6 cannot touch `environ` safely).
func environmentEntries() -> [String] {
    guard let bytes = readFileBytes("/proc/self/environ") else { return [] }
    return bytes.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
}
