import Foundation

/// Where an HTTP client connects: TCP on a numeric address, or a Unix socket path.
public enum HTTPTarget: Sendable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case unix(path: String)

    public var description: String {
        switch self {
        case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path): "unix:\(path)"
        }
    }
}

/// Why a request failed, classified the way the load generator reports it.
public struct HTTPClientError: Error, CustomStringConvertible, Sendable {
    /// The classes of failure; the raw value is the word used in reports.
    public enum Kind: String, Sendable {
        /// connect() was refused: nobody listening, or the accept queue overflowed.
        case refused
        /// The connection was reset (ECONNRESET, EPIPE).
        case reset
        /// No answer within the socket timeout.
        case timeout
        /// The server closed the connection before sending anything.
        case emptyReply = "empty reply"
        /// The server closed the connection in the middle of a response.
        case shortReply = "short reply"
        /// A response that is not HTTP, or a status other than the one expected.
        case badStatus = "bad status"
        /// Anything else (connect failing with another errno, …).
        case other
    }

    /// Which class of failure.
    public var kind: Kind
    /// What happened, with the system call and errno text where there is one.
    public var detail: String

    /// An error of `kind` with a human-readable `detail`.
    public init(_ kind: Kind, _ detail: String) {
        self.kind = kind
        self.detail = detail
    }

    public var description: String { "\(kind.rawValue): \(detail)" }

    static func system(_ operation: String, _ code: Int32 = errno) -> HTTPClientError {
        let text = "\(operation): \(String(cString: strerror(code)))"
        switch code {
        case ECONNREFUSED, ENOENT: return HTTPClientError(.refused, text)
        case ECONNRESET, EPIPE, ECONNABORTED: return HTTPClientError(.reset, text)
        case EAGAIN, ETIMEDOUT, EINPROGRESS: return HTTPClientError(.timeout, text)
        default: return HTTPClientError(.other, text)
        }
    }
}

/// A connected, blocking client socket with send and receive timeouts. Closed on deinit.
final class ClientSocket {
    let fd: Int32
    private var closed = false

    init(_ target: HTTPTarget, timeout: Duration) throws(HTTPClientError) {
        let family: Int32
        switch target {
        case .tcp(let host, _): family = host.contains(":") ? AF_INET6 : AF_INET
        case .unix: family = AF_UNIX
        }
        fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system("socket") }
        var time = timeval(tv_sec: Int(timeout.components.seconds),
                           tv_usec: Int(timeout.components.attoseconds / 1_000_000_000_000))
        let size = socklen_t(MemoryLayout<timeval>.size)
        // SO_SNDTIMEO also bounds connect() on Linux.
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, size)
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &time, size)
        var one: Int32 = 1
        if family != AF_UNIX {
            _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        let result: Int32
        do {
            result = try Self.withAddress(target) { address, length in
                var result: Int32
                repeat { result = connect(fd, address, length) } while result < 0 && errno == EINTR
                return result
            }
        } catch {
            // close(), not Glibc.close: deinit runs after a throwing init too, and a second close
            // of the number would hit whatever fd another thread opened since.
            close()
            throw error
        }
        if result < 0 {
            let code = errno
            close()
            throw .system("connect \(target)", code)
        }
    }

    deinit {
        close()
    }

    func close() {
        if !closed {
            closed = true
            Glibc.close(fd)
        }
    }

    func sendAll(_ bytes: [UInt8]) throws(HTTPClientError) {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if sent < 0 {
                if errno == EINTR { continue }
                throw .system("send")
            }
            offset += sent
        }
    }

    /// Appends what arrives to `buffer`; returns the count, 0 at EOF.
    func receive(into buffer: inout [UInt8]) throws(HTTPClientError) -> Int {
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if count < 0 {
                if errno == EINTR { continue }
                throw .system("recv")
            }
            buffer += chunk[0..<count]
            return count
        }
    }

    private static func withAddress<Result>(
        _ target: HTTPTarget, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Result
    ) throws(HTTPClientError) -> Result {
        switch target {
        case .tcp(let host, let port):
            if host.contains(":") {
                var address = sockaddr_in6()
                address.sin6_family = sa_family_t(AF_INET6)
                address.sin6_port = UInt16(port).bigEndian
                guard inet_pton(AF_INET6, host, &address.sin6_addr) == 1 else {
                    throw HTTPClientError(.other, "not a numeric IPv6 address: \(host)")
                }
                return withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
                }
            }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = UInt16(port).bigEndian
            guard inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &address.sin_addr) == 1 else {
                throw HTTPClientError(.other, "not a numeric IPv4 address: \(host)")
            }
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        case .unix(let path):
            guard let result = withUnixAddress(path, body) else {
                throw HTTPClientError(.other, "Unix socket path too long: \(path)")
            }
            return result
        }
    }
}

/// Reads HTTP/1.1 responses framed by Content-Length (or by EOF when there is none) from a
/// socket, keeping bytes that belong to the next response.
struct ResponseReader {
    private var buffer: [UInt8] = []

    mutating func read(from socket: ClientSocket, headOnly: Bool = false) throws(HTTPClientError) -> HTTPResponse {
        while true {
            if let (head, headLength) = Self.parseHead(buffer) {
                let length = headOnly ? 0 : head.contentLength
                if let length {
                    while buffer.count < headLength + length {
                        guard try socket.receive(into: &buffer) > 0 else {
                            throw HTTPClientError(.shortReply, "EOF after \(buffer.count - headLength) of \(length) body bytes")
                        }
                    }
                    let body = String(decoding: buffer[headLength..<(headLength + length)], as: UTF8.self)
                    buffer.removeSubrange(0..<(headLength + length))
                    return HTTPResponse(status: head.status, headers: head.headers, body: body)
                }
                // No Content-Length: the body runs to EOF.
                while try socket.receive(into: &buffer) > 0 {}
                let body = String(decoding: buffer[headLength...], as: UTF8.self)
                buffer.removeAll()
                return HTTPResponse(status: head.status, headers: head.headers, body: body)
            }
            let received: Int
            do {
                received = try socket.receive(into: &buffer)
            } catch let error where error.kind == .reset && buffer.isEmpty {
                throw HTTPClientError(.reset, "reset before any response byte (\(error.detail))")
            }
            if received == 0 {
                if buffer.isEmpty { throw HTTPClientError(.emptyReply, "EOF before any response byte") }
                throw HTTPClientError(.shortReply, "EOF inside the response head (\(buffer.count) bytes)")
            }
        }
    }

    /// Bytes read after the last response (normally none).
    var leftover: Int { buffer.count }

    private struct Head {
        var status: Int
        var headers: [String: String]
        var contentLength: Int? { headers["content-length"].flatMap { Int($0) } }
    }

    private static func parseHead(_ bytes: [UInt8]) -> (Head, Int)? {
        guard bytes.count >= 4 else { return nil }
        var end: Int?
        for index in 0...(bytes.count - 4)
        where bytes[index] == 13 && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10 {
            end = index
            break
        }
        guard let end else { return nil }
        let lines = bytes[..<end].split(separator: 10).map { line in
            String(decoding: line.last == 13 ? line.dropLast() : line, as: UTF8.self)
        }
        guard let statusLine = lines.first else { return nil }
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        let status = parts.count >= 2 && parts[0].hasPrefix("HTTP/") ? Int(parts[1]) ?? -1 : -1
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            headers[name] = headers[name].map { $0 + ", " + value } ?? value
        }
        return (Head(status: status, headers: headers), end + 4)
    }
}
