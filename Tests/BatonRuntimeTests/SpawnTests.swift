import BatonRuntime
import CBaton
import Foundation
import Glibc
import Testing

/// Real children started through the CBaton shim. Every test reaps what it starts by pid and
/// kills leftovers on the way out.
@Suite struct SpawnTests {
    @Test func shellChildSeesItsOwnSessionListenPIDWorkingDirectoryAndExactEnvironment() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let file = try directory.openFile("placed-file")
        defer { close(file) }
        let socketPair = try makeSocketPair()
        defer { close(socketPair.0); close(socketPair.1) }
        let script = """
            echo "pid $$"
            echo "listen $LISTEN_PID"
            echo "stat $(cat /proc/$$/stat)"
            echo "cwd $(readlink /proc/$$/cwd)"
            echo "stdin $(readlink /proc/$$/fd/0)"
            echo "placed $(stat -L -c %i /proc/$$/fd/3) $(stat -L -c %i /proc/$$/fd/4)"
            echo "to stderr" >&2
            tr '\\0' '\\n' < /proc/$$/environ | sed 's/^/env /'
            """
        let environment = ["PATH=/usr/bin:/bin", "BATON_TEST=one two", "EMPTY="]
        let result = try runToCompletion(SpawnRequest(
            executable: "/bin/sh", arguments: ["sh", "-c", script], environment: environment,
            setsListenPID: true, fds: [file, socketPair.0], workingDirectory: directory.path,
            deathSignal: 0))

        #expect(result.status == .exited(0))
        #expect(result.standardError == "to stderr\n")
        let facts = Facts(result.standardOutput)
        let pid = "\(result.pid)"
        #expect(facts["pid"] == [pid])
        #expect(facts["listen"] == [pid])
        // /proc/<pid>/stat: pid (comm) state ppid pgrp session ...
        let stat = try #require(facts["stat"]?.first).split(separator: " ").map(String.init)
        #expect(stat.count > 5)
        #expect(stat.first == pid)
        #expect(stat.dropFirst(4).first == pid, "process group is the child's pid")
        #expect(stat.dropFirst(5).first == pid, "session is the child's pid")
        #expect(facts["cwd"] == [directory.path])
        #expect(facts["stdin"] == ["/dev/null"])
        #expect(facts["placed"] == ["\(try inode(of: file)) \(try inode(of: socketPair.0))"])
        #expect(facts["env"] == environment + ["LISTEN_PID=\(pid)"])
    }

    @Test func withoutSetsListenPIDTheEnvironmentIsExactlyTheGivenOne() throws {
        let result = try runToCompletion(SpawnRequest(
            executable: "/bin/cat", arguments: ["cat", "/proc/self/environ"],
            environment: ["A=1", "B=2"], deathSignal: 0))
        #expect(result.status == .exited(0))
        #expect(result.standardOutput == "A=1\0B=2\0")
    }

    @Test func onlyStandardAndPlacedFdsReachTheChild() throws {
        let pipes = try (0..<3).map { _ in try makePipe() }
        defer { for pipe in pipes { close(pipe.read); close(pipe.write) } }
        // An fd without close-on-exec in the master must still not leak.
        let leaky = try makePipe(closeOnExec: false)
        defer { close(leaky.read); close(leaky.write) }

        let result = try runToCompletion(SpawnRequest(
            executable: "/bin/ls", arguments: ["ls", "-1", "/proc/self/fd"],
            fds: pipes.map(\.read), deathSignal: 0))
        #expect(result.status == .exited(0))
        let listed = Set(result.standardOutput.split(separator: "\n").compactMap { Int($0) })
        // ls opens the directory itself: the lowest free fd, right after the placed ones.
        #expect(listed == Set(0...(3 + pipes.count)))
    }

    @Test func signalMaskAndIgnoredSignalsAreReset() throws {
        let previousPipe = signal(SIGPIPE, SIG_IGN)
        let previousXFSZ = signal(SIGXFSZ, SIG_IGN)
        defer {
            signal(SIGPIPE, previousPipe)
            signal(SIGXFSZ, previousXFSZ)
        }
        // cat is exec'd directly, so its status shows exactly what the shim handed over.
        let result = try runToCompletion(SpawnRequest(
            executable: "/bin/cat", arguments: ["cat", "/proc/self/status"], deathSignal: 0))
        #expect(result.status == .exited(0))
        let status = Facts(result.standardOutput, separator: ":")
        #expect(status["SigBlk"] == ["0000000000000000"])
        #expect(status["SigIgn"] == ["0000000000000000"])
    }

    @Test(.enabled(if: geteuid() == 0, "changing credentials needs root"))
    func credentialsAreApplied() throws {
        let nobody = try #require(try Credentials.lookup(user: "nobody", group: nil))
        #expect(nobody.groups.first == nobody.gid)
        let result = try runToCompletion(SpawnRequest(
            executable: "/bin/cat", arguments: ["cat", "/proc/self/status"], workingDirectory: "/",
            credentials: nobody, deathSignal: SIGTERM))
        #expect(result.status == .exited(0))
        let status = Facts(result.standardOutput, separator: ":")
        let uid = "\(nobody.uid)", gid = "\(nobody.gid)"
        #expect(status["Uid"] == [[uid, uid, uid, uid].joined(separator: "\t")])
        #expect(status["Gid"] == [[gid, gid, gid, gid].joined(separator: "\t")])
        #expect(status["Groups"] == [nobody.groups.map { "\($0)" }.joined(separator: " ")])
    }

    @Test func lookupFindsUsersAndGroupsByNameAndNumber() throws {
        #expect(try Credentials.lookup(user: nil, group: nil) == nil)
        let root = try #require(try Credentials.lookup(user: "root", group: nil))
        #expect(root.uid == 0 && root.gid == 0 && root.groups.first == 0)
        #expect(try Credentials.lookup(user: "0", group: nil) == root)
        let withGroup = try #require(try Credentials.lookup(user: "root", group: "nogroup"))
        #expect(withGroup.gid == 65534 && withGroup.groups.first == 65534)
        let numericOnly = try #require(try Credentials.lookup(user: "4242424", group: "4242"))
        #expect(numericOnly == Credentials(uid: 4_242_424, gid: 4242, groups: [4242]))
    }

    @Test func lookupNamesWhatWasNotFound() {
        #expect(throws: SpawnError(stage: "lookup", errno: ENOENT, message: "user \"no-such-user-baton\" not found")) {
            try Credentials.lookup(user: "no-such-user-baton", group: nil)
        }
        #expect(throws: SpawnError(stage: "lookup", errno: ENOENT, message: "group \"no-such-group-baton\" not found")) {
            try Credentials.lookup(user: "root", group: "no-such-group-baton")
        }
    }

    @Test func resolveExecutableSearchesPathAndExplainsFailures() throws {
        #expect(try ProcessSpawner.resolveExecutable("sh", searchPath: nil, workingDirectory: nil) == "/usr/bin/sh")
        #expect(try ProcessSpawner.resolveExecutable("sh", searchPath: "/nope:/bin", workingDirectory: nil) == "/bin/sh")
        #expect(try ProcessSpawner.resolveExecutable("/bin/sh", searchPath: nil, workingDirectory: nil) == "/bin/sh")

        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let script = try directory.writeFile("tool", contents: "#!/bin/sh\nexit 0\n", mode: 0o755)
        let plain = try directory.writeFile("plain", contents: "not a program\n", mode: 0o644)
        #expect(try ProcessSpawner.resolveExecutable("./tool", searchPath: nil, workingDirectory: directory.path) == "./tool")
        #expect(try ProcessSpawner.resolveExecutable("tool", searchPath: directory.path, workingDirectory: nil) == script)

        #expect(throws: SpawnError(stage: "resolve", errno: ENOENT, message: "cannot execute \"/nonexistent/web\": No such file or directory")) {
            try ProcessSpawner.resolveExecutable("/nonexistent/web", searchPath: nil, workingDirectory: nil)
        }
        #expect(throws: SpawnError(stage: "resolve", errno: ENOENT, message: "cannot execute \"no-such-command-baton\": not found in PATH /usr/local/bin:/usr/bin:/bin")) {
            try ProcessSpawner.resolveExecutable("no-such-command-baton", searchPath: nil, workingDirectory: nil)
        }
        #expect(throws: SpawnError(stage: "resolve", errno: EACCES, message: "cannot execute \"\(plain)\": Permission denied")) {
            try ProcessSpawner.resolveExecutable(plain, searchPath: nil, workingDirectory: nil)
        }
        #expect(throws: SpawnError(stage: "resolve", errno: EACCES, message: "cannot execute \"\(directory.path)\": is a directory")) {
            try ProcessSpawner.resolveExecutable(directory.path, searchPath: nil, workingDirectory: nil)
        }
    }

    // Synchronous on purpose: the whole test runs on one thread, whose children
    // /proc/thread-self/children lists, so a failed child that was not reaped would show there.
    @Test func failuresInTheChildAreReportedAndTheChildIsReaped() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let plain = try directory.writeFile("plain", contents: "not a program\n", mode: 0o644)
        let before = try threadChildren()
        let cases: [(SpawnRequest, SpawnError)] = [
            (SpawnRequest(executable: "/nonexistent/web", arguments: ["web"], deathSignal: 0),
             SpawnError(stage: "execve", errno: ENOENT, message: "cannot execute \"/nonexistent/web\": No such file or directory")),
            (SpawnRequest(executable: plain, arguments: ["plain"], deathSignal: 0),
             SpawnError(stage: "execve", errno: EACCES, message: "cannot execute \"\(plain)\": Permission denied")),
            (SpawnRequest(executable: "/bin/true", arguments: ["true"], workingDirectory: "/nonexistent-dir", deathSignal: 0),
             SpawnError(stage: "chdir", errno: ENOENT, message: "cannot change to directory \"/nonexistent-dir\": No such file or directory")),
            (SpawnRequest(executable: "/bin/true", arguments: ["true"], fds: [29_999], deathSignal: 0),
             SpawnError(stage: "fds", errno: EBADF, message: "cannot place the file descriptors [29999] in the child: Bad file descriptor")),
        ]
        for (request, expected) in cases {
            #expect(throws: expected) { try ProcessSpawner.spawn(request) }
        }
        #expect(try threadChildren() == before, "no failed child is left behind")
    }

    @Test func listenPIDInTheGivenEnvironmentIsRejected() {
        let request = SpawnRequest(
            executable: "/bin/true", arguments: ["true"], environment: ["LISTEN_PID=1"], setsListenPID: true)
        #expect(throws: SpawnError.self) { try ProcessSpawner.spawn(request) }
    }

    /// Sources ordered so that targets (3, 4, ...) overwrite sources still to be placed, and one fd
    /// is placed at its own number (where a plain dup2 would keep FD_CLOEXEC); nil while `files`
    /// are too few for that.
    static func overlappingOrder(of files: [CInt]) -> [CInt]? {
        let targets: Range<CInt> = 3..<CInt(3 + files.count)
        guard let identity = files.first(where: { targets.contains($0) }) else { return nil }
        var order = Array(files.filter { $0 != identity }.reversed())
        order.insert(identity, at: Int(identity) - 3)
        let displaced = order.indices.filter { targets.contains(order[$0]) && order[$0] != CInt(3 + $0) }
        return displaced.isEmpty ? nil : order
    }

    @Test func sourceFdsThatOverlapTargetsArePlacedCorrectly() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        // Tests running beside this one hold low fds too: open files until enough of them lie
        // among the targets, however many fds are taken (a bounded loop).
        var files: [CInt] = []
        defer { for file in files { close(file) } }
        var planned: [CInt]?
        while planned == nil {
            try #require(files.count < 1000, "no free fd found among the first thousand")
            files.append(try directory.openFile("file-\(files.count)"))
            planned = Self.overlappingOrder(of: files)
        }
        let order = try #require(planned)
        let targets: Range<CInt> = 3..<CInt(3 + order.count)
        #expect(order.contains { targets.contains($0) && order.firstIndex(of: $0) == Int($0) - 3 })
        #expect(order.enumerated().contains { targets.contains($1) && $1 != CInt(3 + $0) })

        let result = try runToCompletion(SpawnRequest(
            executable: "/usr/bin/stat",
            arguments: ["stat", "-L", "-c", "%i"] + targets.map { "/proc/self/fd/\($0)" },
            fds: order, deathSignal: 0))
        #expect(result.status == .exited(0))
        let expected = try order.map { "\(try inode(of: $0))" }
        #expect(result.standardOutput.split(separator: "\n").map(String.init) == expected)
    }

    @Test(arguments: [false, true])
    func deathSignalReachesTheChildWhenTheSpawningThreadExits(asNobody: Bool) throws {
        let credentials: Credentials?
        if asNobody {
            guard geteuid() == 0 else { return }
            credentials = try Credentials.lookup(user: "nobody", group: nil)
        } else {
            credentials = nil
        }
        let request = SpawnRequest(
            executable: "/bin/sleep", arguments: ["sleep", "60"], workingDirectory: "/",
            credentials: credentials, deathSignal: SIGTERM)
        let outcome = SpawnOutcome()
        let thread = Thread {
            outcome.set(Result { () throws(SpawnError) in try ProcessSpawner.spawn(request) })
        }
        thread.start()
        let pid = try #require(outcome.wait(seconds: 30)).get()
        var status: ExitStatus?
        defer { if status == nil { killAndReap(pid) } }
        // The spawning thread has returned; its exit sends the death signal.
        status = waitForExit(pid, seconds: 30)
        #expect(status == .signaled(SIGTERM))
    }
}

// MARK: - Helpers

private enum ExitStatus: Equatable {
    case exited(Int32)
    case signaled(Int32)
}

private struct Completed {
    var pid: pid_t
    var status: ExitStatus?
    var standardOutput: String
    var standardError: String
}

/// Spawns with stdout and stderr on pipes, reads both to EOF and reaps the child.
private func runToCompletion(_ request: SpawnRequest) throws -> Completed {
    let output = try makePipe()
    let errors = try makePipe()
    defer { close(output.read); close(errors.read) }
    var request = request
    request.standardOutput = output.write
    request.standardError = errors.write
    let pid: pid_t
    do {
        pid = try ProcessSpawner.spawn(request)
    } catch {
        close(output.write)
        close(errors.write)
        throw error
    }
    close(output.write)
    close(errors.write)
    var status: ExitStatus?
    // Only a child not reaped yet is killed: a reaped pid may already belong to another process.
    defer { if status == nil { killAndReap(pid) } }
    let (standardOutput, standardError) = readToEOF(output.read, errors.read, seconds: 30)
    status = waitForExit(pid, seconds: 30)
    return Completed(pid: pid, status: status, standardOutput: standardOutput, standardError: standardError)
}

/// Reads both fds until EOF on both or the deadline.
private func readToEOF(_ first: CInt, _ second: CInt, seconds: Double) -> (String, String) {
    let deadline = baton_monotonic_ns() + UInt64(seconds * 1e9)
    var buffers: [[UInt8]] = [[], []]
    var open = [true, true]
    let fds = [first, second]
    while open.contains(true) {
        let now = baton_monotonic_ns()
        guard now < deadline else { break }
        var polls = fds.indices.filter { open[$0] }.map { pollfd(fd: fds[$0], events: Int16(POLLIN), revents: 0) }
        let ready = poll(&polls, nfds_t(polls.count), CInt((deadline - now) / 1_000_000) + 1)
        if ready < 0 && errno != EINTR { break }
        for entry in polls where entry.revents != 0 {
            let index = fds.firstIndex(of: entry.fd)!
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = read(entry.fd, &chunk, chunk.count)
            if n > 0 {
                buffers[index] += chunk.prefix(n)
            } else if n == 0 || errno != EINTR {
                open[index] = false
            }
        }
    }
    return (String(decoding: buffers[0], as: UTF8.self), String(decoding: buffers[1], as: UTF8.self))
}

/// Waits for this pid only (never waitpid(-1), which would steal other tests' children).
private func waitForExit(_ pid: pid_t, seconds: Double) -> ExitStatus? {
    let deadline = baton_monotonic_ns() + UInt64(seconds * 1e9)
    while true {
        var status: CInt = 0
        let result = waitpid(pid, &status, WNOHANG)
        if result == pid {
            let signal = status & 0x7f
            return signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal)
        }
        if result < 0 && errno != EINTR { return nil }
        if baton_monotonic_ns() >= deadline { return nil }
        usleep(5_000)
    }
}

/// For a child that was not reaped yet.
private func killAndReap(_ pid: pid_t) {
    var status: CInt = 0
    kill(pid, SIGKILL)
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
}

/// Lines of "key value" (or "key: value"), grouped by key in order.
private struct Facts {
    private var values: [String: [String]] = [:]

    init(_ text: String, separator: Character = " ") {
        for line in text.split(separator: "\n") {
            guard let split = line.firstIndex(of: separator) else { continue }
            let key = String(line[..<split])
            var value = line[line.index(after: split)...]
            if separator != " " {
                value = value.drop { $0 == " " || $0 == "\t" }
                while value.last == " " { value = value.dropLast() }
            }
            values[key, default: []].append(String(value))
        }
    }

    subscript(key: String) -> [String]? { values[key] }
}

private struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ what: String) { description = "\(what): \(String(cString: strerror(errno)))" }
}

private func makePipe(closeOnExec: Bool = true) throws -> (read: CInt, write: CInt) {
    var fds: [CInt] = [0, 0]
    guard pipe(&fds) == 0 else { throw TestFailure("pipe") }
    if closeOnExec {
        _ = baton_set_cloexec(fds[0], 1)
        _ = baton_set_cloexec(fds[1], 1)
    }
    return (fds[0], fds[1])
}

private func makeSocketPair() throws -> (CInt, CInt) {
    var fds: [CInt] = [0, 0]
    guard socketpair(AF_UNIX, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
        throw TestFailure("socketpair")
    }
    return (fds[0], fds[1])
}

private func inode(of fd: CInt) throws -> UInt64 {
    var info = stat()
    guard fstat(fd, &info) == 0 else { throw TestFailure("fstat") }
    return UInt64(info.st_ino)
}

private func threadChildren() throws -> Set<pid_t> {
    let fd = open("/proc/thread-self/children", O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw TestFailure("open /proc/thread-self/children") }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = read(fd, &chunk, chunk.count)
        if n <= 0 { break }
        bytes += chunk.prefix(n)
    }
    return Set(String(decoding: bytes, as: UTF8.self).split(separator: " ").compactMap { pid_t($0) })
}

/// A fresh directory; the test removes it in a defer.
private struct TemporaryDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/baton-spawn-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw TestFailure("mkdtemp") }
        path = String(cString: made)
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }

    func openFile(_ name: String) throws -> CInt {
        let fd = open("\(path)/\(name)", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw TestFailure("open \(name)") }
        return fd
    }

    func writeFile(_ name: String, contents: String, mode: mode_t) throws -> String {
        let file = "\(path)/\(name)"
        guard FileManager.default.createFile(atPath: file, contents: Data(contents.utf8)),
              chmod(file, mode) == 0
        else { throw TestFailure("create \(name)") }
        return file
    }
}

/// Hands the spawning thread's result to the test.
private final class SpawnOutcome: @unchecked Sendable {
    private let condition = NSCondition()
    private var result: Result<pid_t, SpawnError>?

    func set(_ value: Result<pid_t, SpawnError>) {
        condition.lock()
        result = value
        condition.broadcast()
        condition.unlock()
    }

    func wait(seconds: Double) -> Result<pid_t, SpawnError>? {
        let deadline = Date(timeIntervalSinceNow: seconds)
        condition.lock()
        defer { condition.unlock() }
        while result == nil && condition.wait(until: deadline) {}
        return result
    }
}
