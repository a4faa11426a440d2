import BatonCore
import CBaton
import Glibc

/// The socket einhorn's workers know as `EINHORN_SOCK_PATH` (`compat = ["einhorn"]`): a Unix
/// stream socket that takes einhorn's command lines, of which baton acts on `worker:ack` only
/// (readiness). einhorn's clients connect, write one line and close; they wait for no answer.
///
/// The socket file is `einhorn.sock` in a fresh directory (`baton-einhorn-XXXXXX`, mode 0711) under
/// `$RUNTIME_DIRECTORY`, `$TMPDIR` or `/tmp`: a path, since einhorn's clients cannot reach an
/// abstract socket, and one that workers running as another user can connect to (mode 0666).
/// Whoever connects, a line counts only from a process in a live worker's session
/// (`SO_PEERCRED`), as on the notify socket.
final class EinhornSocket {
    let fd: CInt
    let directory: String
    let path: String

    /// Open connections and the bytes of their unfinished line, bounded in number and size.
    private var connections: [CInt: Connection] = [:]
    static let maximumConnections = 128

    struct Connection {
        /// The connecting process, attested by the kernel at connect().
        var peerPID: pid_t
        var pending: [UInt8] = []
    }

    /// A line read from a connection, with who sent it.
    struct Line {
        var peerPID: pid_t
        var command: Result<EinhornCommand, EinhornCommand.ParseError>
    }

    /// Creates the directory and the listening socket under `parent`.
    init(parent: String) throws(SystemError) {
        var template = Array("\(parent)/baton-einhorn-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard made != nil else { throw SystemError("einhorn socket: mkdtemp in \(parent)") }
        let directory = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let path = directory + "/einhorn.sock"
        // Others may reach the socket by its name but not list or change the directory.
        _ = chmod(directory, 0o711)
        let fd = socket(AF_UNIX, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue) | CInt(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else {
            let error = SystemError("einhorn socket: socket")
            rmdir(directory)
            throw error
        }
        func fail(_ operation: String) -> SystemError {
            let error = SystemError("einhorn socket \(path): \(operation)")
            Glibc.close(fd)
            unlink(path)
            rmdir(directory)
            return error
        }
        guard path.utf8.count <= 107 else { throw fail("path longer than 107 bytes") }
        guard SocketAddress.withUnix(path: path, abstract: false, { Glibc.bind(fd, $0, $1) }) == 0 else { throw fail("bind") }
        guard chmod(path, 0o666) == 0 else { throw fail("chmod") }
        guard listen(fd, 128) == 0 else { throw fail("listen") }
        self.fd = fd
        self.directory = directory
        self.path = path
    }

    /// The parent directory for the socket's own: `$RUNTIME_DIRECTORY` (its first entry) under
    /// systemd, else `$TMPDIR`, else `/tmp`.
    static func parentDirectory(environment: [(key: String, value: String)]) -> String {
        func value(_ key: String) -> String? {
            environment.last { $0.key == key }.map(\.value).flatMap { $0.isEmpty ? nil : $0 }
        }
        if let runtime = value("RUNTIME_DIRECTORY")?.split(separator: ":").first { return String(runtime) }
        return value("TMPDIR") ?? "/tmp"
    }

    /// Accepts every waiting connection; returns the new fds (non-blocking), for the reactor.
    func acceptAll() -> [CInt] {
        var accepted: [CInt] = []
        while true {
            let client = accept(fd, nil, nil)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return accepted
            }
            guard connections.count < Self.maximumConnections else {
                Glibc.close(client)
                continue
            }
            _ = baton_set_cloexec(client, 1)
            _ = baton_set_nonblocking(client, 1)
            connections[client] = Connection(peerPID: Self.peerPID(client) ?? -1)
            accepted.append(client)
        }
    }

    /// Reads what a connection sent and delivers each complete line. Returns false when the
    /// connection is finished (EOF, an error, or a line over the limit): the caller unregisters
    /// it, then calls `close(connection:)`.
    func read(connection client: CInt, _ deliver: (Line) -> Void) -> Bool {
        guard var connection = connections[client] else { return false }
        var buffer = [UInt8](repeating: 0, count: 4096)
        var open = true
        reading: while true {
            let count = recv(client, &buffer, buffer.count, 0)
            if count < 0 {
                if errno == EINTR { continue }
                open = errno == EAGAIN || errno == EWOULDBLOCK
                break
            }
            if count == 0 {
                open = false
                break
            }
            connection.pending += buffer.prefix(count)
            while let newline = connection.pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = connection.pending[..<newline]
                if !line.isEmpty {
                    deliver(Line(peerPID: connection.peerPID, command: EinhornCommand.parse(line: line)))
                }
                connection.pending.removeSubrange(...newline)
            }
            if connection.pending.count > EinhornCommand.maximumLineSize {
                deliver(Line(peerPID: connection.peerPID, command: .failure(.init("line over \(EinhornCommand.maximumLineSize) bytes"))))
                open = false
                break reading
            }
        }
        if !open, !connection.pending.isEmpty, connection.pending.count <= EinhornCommand.maximumLineSize {
            // A last line without its newline still counts.
            deliver(Line(peerPID: connection.peerPID, command: EinhornCommand.parse(line: connection.pending)))
            connection.pending.removeAll()
        }
        connections[client] = connection
        return open
    }

    func close(connection client: CInt) {
        guard connections.removeValue(forKey: client) != nil else { return }
        Glibc.close(client)
    }

    /// Every open connection's fd (to unregister before `close()`).
    var connectionFDs: [CInt] { Array(connections.keys) }

    /// Closes the socket and its connections and removes the file and its directory.
    func close() {
        for client in connections.keys { Glibc.close(client) }
        connections.removeAll()
        Glibc.close(fd)
        unlink(path)
        rmdir(directory)
    }

    static func peerPID(_ fd: CInt) -> pid_t? {
        // struct ucred { pid_t pid; uid_t uid; gid_t gid; }, not imported into Swift.
        var credentials: (Int32, UInt32, UInt32) = (0, 0, 0)
        var length = socklen_t(MemoryLayout.size(ofValue: credentials))
        guard getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0, credentials.0 > 0 else { return nil }
        return credentials.0
    }
}
