import CBaton
import Glibc

/// The user, group and supplementary groups a child runs as.
public struct Credentials: Sendable, Equatable {
    public var uid: uid_t
    public var gid: gid_t
    public var groups: [gid_t]

    public init(uid: uid_t, gid: gid_t, groups: [gid_t]) {
        self.uid = uid
        self.gid = gid
        self.groups = groups
    }

    /// Looks up a user (name or numeric uid) and optional group (name or numeric gid) with
    /// getpwnam_r/getgrnam_r, and the user's supplementary groups with getgrouplist.
    ///
    /// - Returns nil when neither is given (keep the master's credentials).
    /// - A group alone keeps the master's effective uid and sets only the group.
    /// - A numeric uid without a passwd entry needs a group, and gets no supplementary groups.
    /// - Throws: a `SpawnError` with stage "lookup" naming what was not found.
    public static func lookup(user: String?, group: String?) throws(SpawnError) -> Credentials? {
        if user == nil && group == nil { return nil }
        let groupID: gid_t? = try group.map { name throws(SpawnError) in try lookupGroup(name) }
        guard let user else {
            let gid = groupID!
            return Credentials(uid: geteuid(), gid: gid, groups: [gid])
        }
        guard let entry = try lookupUser(user) else {
            // Only a numeric uid can get here: names that are not found throw.
            guard let gid = groupID else {
                throw SpawnError(
                    stage: "lookup", errno: ENOENT,
                    message: "user \(user) has no passwd entry: give a group as well")
            }
            return Credentials(uid: uid_t(user)!, gid: gid, groups: [gid])
        }
        let gid = groupID ?? entry.gid
        return Credentials(uid: entry.uid, gid: gid, groups: try groupList(user: entry.name, gid: gid))
    }

    /// The uid and gid a file is given for `owner` and `group` (names or numbers); nil keeps
    /// that part as it is.
    public static func fileOwnership(owner: String?, group: String?) throws(SpawnError) -> (uid: uid_t?, gid: gid_t?) {
        let uid: uid_t? = try owner.map { name throws(SpawnError) in
            // nil only for a number without a passwd entry: the number is the uid.
            try lookupUser(name)?.uid ?? uid_t(name)!
        }
        let gid: gid_t? = try group.map { name throws(SpawnError) in try lookupGroup(name) }
        return (uid, gid)
    }

    private struct PasswdEntry {
        var name: String
        var uid: uid_t
        var gid: gid_t
    }

    /// Runs a `get*_r` lookup with a buffer that grows while the call answers ERANGE (up to
    /// 1 MiB). `call` copies what it needs out of the buffer: the buffer is freed on return.
    private static func reentrantLookup<Found>(
        _ call: (UnsafeMutablePointer<CChar>, Int) -> (error: Int32, found: Found?)
    ) -> (error: Int32, found: Found?) {
        var size = 1024
        while true {
            let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: size)
            defer { buffer.deallocate() }
            let answer = call(buffer, size)
            if answer.error == ERANGE && size < 1 << 20 {
                size *= 2
                continue
            }
            return answer
        }
    }

    /// nil only for a numeric uid that has no entry.
    private static func lookupUser(_ user: String) throws(SpawnError) -> PasswdEntry? {
        let numeric = uid_t(user)
        let (error, entry) = reentrantLookup { buffer, size -> (Int32, PasswdEntry?) in
            var record = passwd()
            var result: UnsafeMutablePointer<passwd>?
            let error = numeric.map { getpwuid_r($0, &record, buffer, size, &result) }
                ?? getpwnam_r(user, &record, buffer, size, &result)
            return (error, result.map {
                PasswdEntry(name: String(cString: $0.pointee.pw_name), uid: $0.pointee.pw_uid, gid: $0.pointee.pw_gid)
            })
        }
        if error != 0 {
            throw SpawnError(
                stage: "lookup", errno: error, message: "cannot look up user \"\(user)\": \(SpawnError.describe(error))")
        }
        guard let entry else {
            if numeric != nil { return nil }
            throw SpawnError(stage: "lookup", errno: ENOENT, message: "user \"\(user)\" not found")
        }
        return entry
    }

    private static func lookupGroup(_ group: String) throws(SpawnError) -> gid_t {
        if let numeric = gid_t(group) { return numeric }
        let (error, gid) = reentrantLookup { buffer, size -> (Int32, gid_t?) in
            var record = Glibc.group()
            var result: UnsafeMutablePointer<Glibc.group>?
            let error = getgrnam_r(group, &record, buffer, size, &result)
            return (error, result?.pointee.gr_gid)
        }
        if error != 0 {
            throw SpawnError(
                stage: "lookup", errno: error, message: "cannot look up group \"\(group)\": \(SpawnError.describe(error))")
        }
        guard let gid else {
            throw SpawnError(stage: "lookup", errno: ENOENT, message: "group \"\(group)\" not found")
        }
        return gid
    }

    /// The user's groups from the group database, with `gid` first.
    private static func groupList(user: String, gid: gid_t) throws(SpawnError) -> [gid_t] {
        var count: Int32 = 32
        while true {
            var groups = [gid_t](repeating: 0, count: Int(count))
            var found = count
            if getgrouplist(user, gid, &groups, &found) >= 0 {
                var list = Array(groups.prefix(Int(found)))
                list.removeAll { $0 == gid }
                return [gid] + list
            }
            // -1 with `found` set to the number needed.
            guard found > count, found < 1 << 16 else {
                throw SpawnError(
                    stage: "lookup", errno: EINVAL,
                    message: "cannot list the groups of user \"\(user)\"")
            }
            count = found
        }
    }
}

/// Everything needed to start one process.
public struct SpawnRequest: Sendable {
    /// Path passed to execve (see `ProcessSpawner.resolveExecutable`); relative paths are resolved
    /// against `workingDirectory` by the kernel.
    public var executable: String
    /// The full argv, argv[0] included.
    public var arguments: [String]
    /// "KEY=VALUE" entries, exactly the child's environment (plus LISTEN_PID, see below).
    public var environment: [String]
    /// The child appends LISTEN_PID=<its own pid>; `environment` must then not hold LISTEN_PID.
    public var setsListenPID: Bool
    /// Placed at fd 3, 4, ... in the child with close-on-exec cleared. Every other fd >= 3 is closed.
    public var fds: [CInt]
    /// Becomes the child's fd 1; nil keeps the master's.
    public var standardOutput: CInt?
    /// Becomes the child's fd 2; nil keeps the master's.
    public var standardError: CInt?
    /// The child changes to this directory before exec; nil keeps the master's.
    public var workingDirectory: String?
    /// The child switches to these credentials before exec; nil keeps the master's.
    public var credentials: Credentials?
    /// Sent to the child when the thread that spawned it exits (PR_SET_PDEATHSIG); 0 for none.
    /// Spawn from a thread that lives as long as the master, never from a pool thread.
    public var deathSignal: CInt

    public init(
        executable: String,
        arguments: [String],
        environment: [String] = [],
        setsListenPID: Bool = false,
        fds: [CInt] = [],
        standardOutput: CInt? = nil,
        standardError: CInt? = nil,
        workingDirectory: String? = nil,
        credentials: Credentials? = nil,
        deathSignal: CInt = SIGTERM
    ) {
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.setsListenPID = setsListenPID
        self.fds = fds
        self.standardOutput = standardOutput
        self.standardError = standardError
        self.workingDirectory = workingDirectory
        self.credentials = credentials
        self.deathSignal = deathSignal
    }
}

/// Why a process could not be started.
public struct SpawnError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The step that failed: "resolve", "lookup", "request", "pipe", "fork", "setsid",
    /// "setgroups", "setgid", "setuid", "pdeathsig", "chdir", "fds", "execve".
    public var stage: String
    public var errno: Int32
    /// A sentence for the operator, e.g. `cannot execute "/srv/web": No such file or directory`.
    public var message: String

    public init(stage: String, errno: Int32, message: String) {
        self.stage = stage
        self.errno = errno
        self.message = message
    }

    public var description: String { message }

    static func describe(_ error: Int32) -> String {
        String(cString: strerror(error))
    }
}

/// Starts processes through the CBaton fork/exec shim.
public enum ProcessSpawner {
    /// The search path used when none is given.
    public static let defaultSearchPath = "/usr/local/bin:/usr/bin:/bin"

    /// Finds command[0]: a name with a "/" is taken as is (relative to the working directory);
    /// otherwise it is searched in `searchPath` (default "/usr/local/bin:/usr/bin:/bin").
    /// Checks that it exists, is a regular file and is executable (access X_OK), so the error is
    /// clear before any fork. Returns the path to pass to execve.
    public static func resolveExecutable(
        _ name: String, searchPath: String?, workingDirectory: String?
    ) throws(SpawnError) -> String {
        guard !name.isEmpty else {
            throw SpawnError(stage: "resolve", errno: ENOENT, message: "cannot execute an empty command")
        }
        if name.contains("/") {
            if let error = checkExecutable(name, workingDirectory: workingDirectory) {
                throw SpawnError(
                    stage: "resolve", errno: error.errno,
                    message: "cannot execute \"\(name)\": \(error.reason)")
            }
            return name
        }
        let path = searchPath ?? defaultSearchPath
        var firstProblem: (candidate: String, errno: Int32, reason: String)?
        for directory in path.split(separator: ":", omittingEmptySubsequences: false) {
            // An empty entry means the working directory, as for execvp.
            let candidate = directory.isEmpty ? name : "\(directory)/\(name)"
            guard let error = checkExecutable(candidate, workingDirectory: workingDirectory) else {
                return candidate
            }
            if error.errno != ENOENT && error.errno != ENOTDIR && firstProblem == nil {
                firstProblem = (candidate, error.errno, error.reason)
            }
        }
        if let problem = firstProblem {
            throw SpawnError(
                stage: "resolve", errno: problem.errno,
                message: "cannot execute \"\(problem.candidate)\": \(problem.reason)")
        }
        throw SpawnError(
            stage: "resolve", errno: ENOENT,
            message: "cannot execute \"\(name)\": not found in PATH \(path)")
    }

    /// nil when `path` (relative ones taken from `workingDirectory`) is an executable regular file.
    private static func checkExecutable(
        _ path: String, workingDirectory: String?
    ) -> (errno: Int32, reason: String)? {
        let full = if let workingDirectory, !path.hasPrefix("/") { "\(workingDirectory)/\(path)" } else { path }
        var info = stat()
        if stat(full, &info) != 0 {
            let error = Glibc.errno
            return (error, SpawnError.describe(error))
        }
        if info.st_mode & S_IFMT != S_IFREG {
            return (EACCES, info.st_mode & S_IFMT == S_IFDIR ? "is a directory" : "not a regular file")
        }
        if access(full, X_OK) != 0 {
            let error = Glibc.errno
            return (error, SpawnError.describe(error))
        }
        return nil
    }

    /// Forks and execs `request`. Returns the child's pid once execve succeeded; any failure in
    /// the child before that (chdir, credentials, execve, ...) is thrown, the child already reaped.
    public static func spawn(_ request: SpawnRequest) throws(SpawnError) -> pid_t {
        if request.setsListenPID && request.environment.contains(where: { $0.hasPrefix("LISTEN_PID=") }) {
            throw SpawnError(
                stage: "request", errno: EINVAL,
                message: "the environment must not hold LISTEN_PID: the child sets it itself")
        }
        var memory = CStrings()
        defer { memory.free() }
        let path = try memory.copy(request.executable)
        let argv = try memory.array(request.arguments, extraSlot: false)
        let envp = try memory.array(request.environment, extraSlot: request.setsListenPID)
        var cwd: UnsafeMutablePointer<CChar>? = nil
        if let directory = request.workingDirectory { cwd = try memory.copy(directory) }
        let groups = request.credentials?.groups ?? []

        var pid: pid_t = 0
        var failure = baton_spawn_failure()
        let result = request.fds.withUnsafeBufferPointer { fds in
            groups.withUnsafeBufferPointer { groupIDs in
                var raw = baton_spawn_request()
                raw.path = UnsafePointer(path)
                raw.argv = UnsafePointer(argv)
                raw.envp = envp
                raw.listen_pid_index = request.setsListenPID ? CInt(request.environment.count) : -1
                raw.fds = fds.baseAddress
                raw.nfds = CInt(fds.count)
                raw.stdout_fd = request.standardOutput ?? -1
                raw.stderr_fd = request.standardError ?? -1
                raw.cwd = UnsafePointer(cwd)
                if let credentials = request.credentials {
                    raw.change_credentials = 1
                    raw.uid = credentials.uid
                    raw.gid = credentials.gid
                    raw.groups = groupIDs.baseAddress
                    raw.ngroups = CInt(groupIDs.count)
                }
                raw.death_signal = request.deathSignal
                return baton_spawn(&raw, &pid, &failure)
            }
        }
        if result == 0 { return pid }
        throw error(for: failure, request: request)
    }

    private static func error(for failure: baton_spawn_failure, request: SpawnRequest) -> SpawnError {
        let stage = String(cString: baton_spawn_stage_name(failure.stage))
        let reason = SpawnError.describe(failure.error)
        let what: String
        switch Int(failure.stage) {
        case Int(BATON_SPAWN_STAGE_EXEC.rawValue):
            what = "cannot execute \"\(request.executable)\""
        case Int(BATON_SPAWN_STAGE_CHDIR.rawValue):
            what = "cannot change to directory \"\(request.workingDirectory ?? "")\""
        case Int(BATON_SPAWN_STAGE_SETUID.rawValue):
            what = "cannot change to uid \(request.credentials?.uid ?? 0)"
        case Int(BATON_SPAWN_STAGE_SETGID.rawValue):
            what = "cannot change to gid \(request.credentials?.gid ?? 0)"
        case Int(BATON_SPAWN_STAGE_SETGROUPS.rawValue):
            what = "cannot set the supplementary groups \(request.credentials?.groups ?? [])"
        case Int(BATON_SPAWN_STAGE_SETSID.rawValue):
            what = "cannot start a new session"
        case Int(BATON_SPAWN_STAGE_PDEATHSIG.rawValue):
            what = "cannot set the parent-death signal \(request.deathSignal)"
        case Int(BATON_SPAWN_STAGE_FDS.rawValue):
            what = "cannot place the file descriptors \(request.fds) in the child"
        case Int(BATON_SPAWN_STAGE_FORK.rawValue):
            what = "cannot fork"
        default:
            what = "cannot spawn \"\(request.executable)\" (\(stage))"
        }
        return SpawnError(stage: stage, errno: failure.error, message: "\(what): \(reason)")
    }
}

/// C strings allocated with malloc for one spawn, freed together after baton_spawn returns.
/// C copies of a spawn request's strings, freed together. A string with a NUL byte is refused:
/// the child would see it cut short.
private struct CStrings {
    private var allocations: [UnsafeMutableRawPointer] = []

    mutating func copy(_ string: String) throws(SpawnError) -> UnsafeMutablePointer<CChar> {
        guard let copy = strdup(string) else { throw Self.outOfMemory }
        allocations.append(UnsafeMutableRawPointer(copy))
        // strdup stops at the first NUL: a shorter copy means the string holds one.
        guard strlen(copy) == string.utf8.count else {
            throw SpawnError(
                stage: "request", errno: EINVAL, message: "a NUL byte in \"\(string.replacing("\0", with: "\\0"))\"")
        }
        return copy
    }

    /// A NULL-terminated array of copies; `extraSlot` adds a zeroed, writable 32-byte string
    /// before the NULL for the child to fill with LISTEN_PID.
    mutating func array(_ strings: [String], extraSlot: Bool) throws(SpawnError) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> {
        let count = strings.count + (extraSlot ? 1 : 0)
        guard let raw = calloc(count + 1, MemoryLayout<UnsafeMutablePointer<CChar>?>.stride) else { throw Self.outOfMemory }
        allocations.append(raw)
        let array = raw.bindMemory(to: UnsafeMutablePointer<CChar>?.self, capacity: count + 1)
        for (index, string) in strings.enumerated() { array[index] = try copy(string) }
        if extraSlot {
            guard let slot = calloc(32, 1) else { throw Self.outOfMemory }
            allocations.append(slot)
            array[strings.count] = slot.bindMemory(to: CChar.self, capacity: 32)
        }
        array[count] = nil
        return array
    }

    mutating func free() {
        for allocation in allocations { Glibc.free(allocation) }
        allocations = []
    }

    private static let outOfMemory = SpawnError(stage: "request", errno: ENOMEM, message: "cannot allocate the spawn request")
}
