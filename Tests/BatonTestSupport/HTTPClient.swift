import Foundation

/// A response as the test helpers read it.
public struct HTTPResponse: Sendable, CustomStringConvertible {
    /// The status code; -1 when the status line was not HTTP.
    public var status: Int
    /// Header names lowercased; repeated headers joined with ", ".
    public var headers: [String: String]
    /// The body, decoded as UTF-8.
    public var body: String

    /// A response; header names are expected lowercased.
    public init(status: Int, headers: [String: String], body: String) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A header by name, case-insensitively.
    public func header(_ name: String) -> String? {
        headers[name.lowercased()]
    }

    /// The server said `Connection: close`.
    public var connectionClose: Bool {
        header("Connection")?.lowercased().contains("close") ?? false
    }

    /// The `gen=` value of a test worker's body, e.g. "3".
    public var generation: String? {
        body.split(whereSeparator: { $0 == " " || $0 == "\n" }).first { $0.hasPrefix("gen=") }
            .map { String($0.dropFirst(4)) }
    }

    /// The `pid=` value of a test worker's body.
    public var pid: pid_t? {
        body.split(whereSeparator: { $0 == " " || $0 == "\n" }).first { $0.hasPrefix("pid=") }
            .flatMap { pid_t($0.dropFirst(4)) }
    }

    public var description: String { "HTTP \(status) \(headers) \(body.debugDescription)" }
}

/// One-shot requests with `Connection: close`, bounded by socket timeouts.
public enum HTTPClient {
    /// GET `path` over TCP and read the response to EOF.
    public static func get(
        host: String = "127.0.0.1", port: Int, path: String = "/", timeout: Duration = .seconds(10)
    ) throws(HTTPClientError) -> HTTPResponse {
        try get(.tcp(host: host, port: port), path: path, timeout: timeout)
    }

    /// GET `path` over a Unix socket and read the response to EOF.
    public static func get(
        unixPath: String, path: String = "/", timeout: Duration = .seconds(10)
    ) throws(HTTPClientError) -> HTTPResponse {
        try get(.unix(path: unixPath), path: path, timeout: timeout)
    }

    /// GET `path` with `Connection: close`; the server must answer and then close. A reset after
    /// the complete response does not count as a failure.
    public static func get(_ target: HTTPTarget, path: String = "/", timeout: Duration = .seconds(10))
        throws(HTTPClientError) -> HTTPResponse
    {
        let socket = try ClientSocket(target, timeout: timeout)
        try socket.sendAll(Array("GET \(path) HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".utf8))
        var reader = ResponseReader()
        let response = try reader.read(from: socket)
        var rest: [UInt8] = []
        do {
            while try socket.receive(into: &rest) > 0 {}
        } catch let error where error.kind == .timeout {
            throw HTTPClientError(.timeout, "the server did not close the connection after the response")
        } catch {
            // Reset after a complete response: the answer is in.
        }
        return response
    }
}

/// One connection for several requests, read by Content-Length. Not thread-safe: one thread
/// uses it.
public final class KeepAliveConnection {
    private let socket: ClientSocket
    private var reader = ResponseReader()

    /// The last response said `Connection: close`.
    public private(set) var serverSaidClose = false

    /// Connects over TCP.
    public convenience init(host: String = "127.0.0.1", port: Int, timeout: Duration = .seconds(10)) throws(HTTPClientError) {
        try self.init(.tcp(host: host, port: port), timeout: timeout)
    }

    /// Connects to a Unix socket.
    public convenience init(unixPath: String, timeout: Duration = .seconds(10)) throws(HTTPClientError) {
        try self.init(.unix(path: unixPath), timeout: timeout)
    }

    /// Connects; every later send and receive is bounded by `timeout`.
    public init(_ target: HTTPTarget, timeout: Duration = .seconds(10)) throws(HTTPClientError) {
        socket = try ClientSocket(target, timeout: timeout)
    }

    /// Sends one request (keep-alive) and reads its response.
    public func get(_ path: String = "/", extraHeaders: [String: String] = [:]) throws(HTTPClientError) -> HTTPResponse {
        try send(request(path, extraHeaders: extraHeaders))
        return try readResponse()
    }

    /// The text of a keep-alive GET request, for `send(_:)` (pipelining several at once).
    public func request(_ path: String = "/", extraHeaders: [String: String] = [:]) -> String {
        var text = "GET \(path) HTTP/1.1\r\nHost: test\r\n"
        for (name, value) in extraHeaders.sorted(by: { $0.key < $1.key }) { text += "\(name): \(value)\r\n" }
        return text + "\r\n"
    }

    /// Sends raw bytes (one or more requests, or part of one).
    public func send(_ text: String) throws(HTTPClientError) {
        try socket.sendAll(Array(text.utf8))
    }

    /// Reads the next response.
    public func readResponse() throws(HTTPClientError) -> HTTPResponse {
        let response = try reader.read(from: socket)
        serverSaidClose = response.connectionClose
        return response
    }

    /// Waits until the server closes the connection (EOF or reset) and returns how long that took.
    /// Throws a timeout error when the socket timeout passes first, or when data arrives.
    public func waitForServerClose() throws(HTTPClientError) -> Duration {
        let start = ContinuousClock.now
        var bytes: [UInt8] = []
        do throws(HTTPClientError) {
            while try socket.receive(into: &bytes) > 0 {
                throw HTTPClientError(.badStatus, "unexpected bytes while waiting for close: \(bytes.count)")
            }
        } catch let error where error.kind == .reset {
            // A reset closes too.
        }
        return ContinuousClock.now - start
    }

    /// Closes the client side.
    public func close() {
        socket.close()
    }
}
