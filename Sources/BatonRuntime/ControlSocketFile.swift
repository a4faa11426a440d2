import Glibc

/// The control socket's file and directory: created safely, cleaned up only when it is ours.
enum ControlSocketFile {
    /// The directory part of `path` (`.` for a bare name).
    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// Creates the socket's directory with mode 0700 if it is missing. An existing one must belong
    /// to `owner` or root and be writable by nobody else: whoever can write there could replace the
    /// socket file with their own.
    static func prepareDirectory(_ directory: String, owner: uid_t) throws(SystemError) {
        var info = stat()
        if stat(directory, &info) != 0 {
            guard errno == ENOENT else { throw SystemError("control directory \(directory): stat") }
            guard mkdir(directory, 0o700) == 0 || errno == EEXIST else {
                throw SystemError("control directory \(directory): mkdir")
            }
            // The umask may have taken bits away; 0700 exactly is what the design promises.
            guard chmod(directory, 0o700) == 0, stat(directory, &info) == 0 else {
                throw SystemError("control directory \(directory): chmod 0700")
            }
        }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw SystemError("control directory \(directory) is not a directory", code: ENOTDIR)
        }
        guard info.st_uid == owner || info.st_uid == 0 else {
            throw SystemError(
                "control directory \(directory) belongs to uid \(info.st_uid), not to uid \(owner) or root: refusing to use it",
                code: EPERM)
        }
        let mode = info.st_mode & 0o7777
        guard mode & (S_IWGRP | S_IWOTH) == 0 else {
            throw SystemError(
                "control directory \(directory) has mode 0\(String(mode, radix: 8)): others could replace the socket; use a directory only its owner can write (e.g. 0700)",
                code: EPERM)
        }
    }

    /// A socket file left by a dead master is removed; one a live master listens on, or a file that
    /// is not a socket, is an error.
    static func removeStale(_ path: String) throws(SystemError) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw SystemError("control socket \(path) exists and is not a socket", code: EEXIST)
        }
        // Non-blocking: a live master with a full accept queue answers EAGAIN instead of making
        // this one wait.
        let probe = socket(AF_UNIX, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_NONBLOCK.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        guard probe >= 0 else { throw SystemError("control socket: socket") }
        defer { Glibc.close(probe) }
        if SocketAddress.withUnix(path: path, abstract: false, { connect(probe, $0, $1) }) == 0 || errno == EAGAIN {
            throw SystemError("control socket \(path): another master listens there", code: EADDRINUSE)
        }
        if errno == ECONNREFUSED { unlink(path) }
    }

    /// Device and inode of the file at `path` (not following a symlink), to recognise our own.
    static func identity(of path: String) -> (device: UInt64, inode: UInt64)? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return (UInt64(info.st_dev), UInt64(info.st_ino))
    }
}
