import Glibc

/// The master's resource limits.
public enum ResourceLimits {
    /// The open-file limit before and after `raiseOpenFileLimit()`.
    public struct OpenFiles: Sendable, Equatable {
        public var soft: UInt64
        public var hard: UInt64
        /// The soft limit before the call.
        public var previousSoft: UInt64
    }

    /// Raises the soft `RLIMIT_NOFILE` to the hard limit, so that many listeners (1,000 and more)
    /// can be held by the master and handed to many workers, which inherit the limit. systemd
    /// starts services with a soft limit of 1024 and a much higher hard one, and `select()` is
    /// never used here, so nothing needs the low soft limit. Call it once at start-up, before the
    /// listeners are bound.
    ///
    /// - Returns: the limits after the change, or the error when `getrlimit`/`setrlimit` failed.
    @discardableResult
    public static func raiseOpenFileLimit() -> Result<OpenFiles, SystemError> {
        var limit = rlimit()
        guard getrlimit(RLIMIT_NOFILE_VALUE, &limit) == 0 else {
            return .failure(SystemError("getrlimit(RLIMIT_NOFILE)"))
        }
        let previous = UInt64(limit.rlim_cur)
        if limit.rlim_cur != limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            guard setrlimit(RLIMIT_NOFILE_VALUE, &limit) == 0 else {
                return .failure(SystemError("setrlimit(RLIMIT_NOFILE, \(limit.rlim_max))"))
            }
        }
        return .success(OpenFiles(soft: UInt64(limit.rlim_cur), hard: UInt64(limit.rlim_max), previousSoft: previous))
    }

    /// `RLIMIT_NOFILE` as the type getrlimit takes on glibc (an enum there).
    private static var RLIMIT_NOFILE_VALUE: __rlimit_resource_t {
        __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    }
}
