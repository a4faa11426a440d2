import CBaton
import Glibc

/// An anonymous in-memory file (memfd) holding some bytes, to hand another program: `baton-config`
/// reads the configuration file's bytes from one, `baton-master` its launch.
enum MemoryFile {
    /// A new close-on-exec memfd named `name` (as /proc shows it) holding `bytes`, its offset at
    /// the end. The caller owns the fd.
    static func holding(_ bytes: [UInt8], name: String) throws(SystemError) -> CInt {
        let fd = baton_memfd_cloexec(name)
        guard fd >= 0 else { throw SystemError("memfd_create") }
        var written = 0
        while written < bytes.count {
            let count = bytes[written...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else {
                let error = SystemError("write to a memfd", code: count == 0 ? EIO : errno)
                close(fd)
                throw error
            }
            written += count
        }
        return fd
    }
}
