import BatonTestSupport
import Foundation
import Testing

/// Helpers for the tests of the worker interface (channel, UDP, probes, scaling): files beside
/// the tests, configuration files, a UDP client, and waits for the master's log lines.
enum WorkerInterface {
    /// `Tests/Fixtures`, found from this source file.
    static var fixtures: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures").path
    }

    /// The Python channel-mode worker.
    static var pythonWorker: String { fixtures + "/channel_worker.py" }

    /// A Python 3 of at least 3.9 (`socket.recv_fds`): the system's, else the first in PATH.
    static func python() throws -> String {
        var candidates = ["/usr/bin/python3"]
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            candidates.append("\(directory)/python3")
        }
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw TestSupportError("no python3 found in /usr/bin or PATH")
        }
        return found
    }

    /// A configuration file's text: the listeners (name, address) in order, then `[program]` with
    /// `command` and the extra `program` lines (TOML, e.g. `ready = "exec"`).
    static func config(listeners: [(String, String)], command: [String], program: [String] = []) -> String {
        var text = ""
        for (name, address) in listeners {
            text += "[[listener]]\nname = \"\(name)\"\naddress = \"\(address)\"\n\n"
        }
        text += "[program]\nname = \"web\"\n"
        text += "command = [" + command.map(toml).joined(separator: ", ") + "]\n"
        text += program.joined(separator: "\n") + "\n"
        return text
    }

    /// A TOML literal string ('...'), so shell scripts keep their `$` and `\`.
    static func toml(_ text: String) -> String { "'\(text)'" }

    /// Starts baton on a configuration file written to a fresh directory; the directory (with the
    /// file, as `web.toml`) lives as long as the caller keeps it.
    static func start(
        config text: String, batonArguments: [String] = [], waitForServing: Bool = true
    ) throws -> (baton: BatonFixture, directory: TemporaryDirectory, path: String) {
        let directory = try TemporaryDirectory()
        let path = try directory.write("web.toml", text)
        let baton = try BatonFixture(
            workers: nil, batonArguments: ["--config", path] + batonArguments, listen: [], command: [],
            waitForServing: waitForServing)
        return (baton, directory, path)
    }
}

extension BatonFixture {
    /// Waits for the `count`-th line after `mark` that contains `text`; returns all `count`.
    @discardableResult
    func waitForLines(
        _ count: Int, after mark: Int = 0, containing text: String, timeout: Duration = .seconds(60)
    ) throws -> [String] {
        var found: [String] = []
        var next = mark
        while found.count < count {
            let line = try process.waitForLine(after: next, timeout: timeout, containing: text)
            found.append(line)
            let lines = process.lines
            // Continue after the line just found (the first match at or after `next`).
            next = (lines[next...].firstIndex(of: line) ?? lines.count - 1) + 1
        }
        return found
    }

    /// The port in the master's `listener=NAME address=udp://HOST:PORT bound` line for `host`
    /// (`127.0.0.1` or `[::1]`).
    func udpPort(listener name: String, host: String) throws -> Int {
        let line = try process.waitForLine(containing: "listener=\(name) address=udp://\(host):")
        guard let range = line.range(of: "udp://\(host):"),
            let port = Int(line[range.upperBound...].prefix { $0.isNumber })
        else { throw TestSupportError("no port in \(line)") }
        return port
    }

    /// The `ready in <n>ms` of a master's `gen=G worker=I pid=P ready in …` line, in milliseconds.
    static func readyMilliseconds(in line: String) -> Int? {
        guard let range = line.range(of: " ready in ") else { return nil }
        let text = line[range.upperBound...]
        if text.hasSuffix("ms") { return Int(text.dropLast(2)) }
        if text.hasSuffix("s"), let seconds = Double(text.dropLast()) { return Int(seconds * 1000) }
        return nil
    }
}

/// One datagram out, its answer back, on loopback.
enum UDPClient {
    /// Sends `payload` to `host:port` (an IPv4 or IPv6 literal) and returns the reply as text.
    static func exchange(host: String, port: Int, payload: String, timeout: Duration = .seconds(10)) throws -> String {
        let v6 = host.contains(":")
        let fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var limit = timeval(tv_sec: Int(timeout.components.seconds), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        let bytes = Array(payload.utf8)
        let sent: Int
        if v6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = UInt16(port).bigEndian
            inet_pton(AF_INET6, host, &address.sin6_addr)
            sent = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, bytes, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        } else {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = UInt16(port).bigEndian
            inet_pton(AF_INET, host, &address.sin_addr)
            sent = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, bytes, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        guard sent == bytes.count else { throw TestSupportError("sendto: \(String(cString: strerror(errno)))") }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = recv(fd, &buffer, buffer.count, 0)
        guard count >= 0 else { throw TestSupportError("no answer from udp \(host):\(port): \(String(cString: strerror(errno)))") }
        return String(decoding: buffer.prefix(count), as: UTF8.self)
    }
}
