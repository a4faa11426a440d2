/// The head of one HTTP/1.x request.
struct RequestHead {
    var method: String
    var target: String
    /// "HTTP/1.1" or "HTTP/1.0".
    var version: String
    var headers: [(name: String, value: String)]

    /// The first value of a header, matched case-insensitively.
    func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.first { $0.name.lowercased() == wanted }?.value
    }

    /// The target without its query.
    var path: Substring {
        target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
    }

    /// One query parameter (`/slow?ms=200` → `query("ms")` = "200").
    func query(_ key: String) -> String? {
        guard let question = target.firstIndex(of: "?") else { return nil }
        for pair in target[target.index(after: question)...].split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if parts.first == Substring(key) { return parts.count > 1 ? String(parts[1]) : "" }
        }
        return nil
    }

    /// Keep-alive is the default of HTTP/1.1; HTTP/1.0 asks for it. `Connection: close` wins.
    var wantsKeepAlive: Bool {
        let tokens = (header("Connection") ?? "").lowercased().split(separator: ",")
            .map { $0.trimmingSpaces }
        if tokens.contains("close") { return false }
        return version == "HTTP/1.1" || tokens.contains("keep-alive")
    }

    /// The body length to read and discard, nil when the header is malformed.
    var contentLength: Int? {
        guard let value = header("Content-Length") else { return 0 }
        return Int(value.trimmingSpaces).flatMap { $0 >= 0 ? $0 : nil }
    }

    var isChunked: Bool {
        header("Transfer-Encoding")?.lowercased().contains("chunked") ?? false
    }
}

/// The outcome of looking for a request head at the start of a buffer.
enum HeadParse {
    case incomplete
    /// No end of the head within `HTTPParser.maxHeadBytes`.
    case tooLarge
    case invalid(String)
    /// The head and the number of bytes it took, blank line included.
    case complete(RequestHead, consumed: Int)
}

enum HTTPParser {
    /// The largest request head the worker reads; beyond it the answer is 431.
    static let maxHeadBytes = 16 * 1024

    /// Parses the request head at the start of `bytes`. Empty lines before the request line are
    /// skipped (RFC 9112 §2.2); lines may end in CRLF or a bare LF.
    static func parseHead(_ bytes: [UInt8]) -> HeadParse {
        var start = 0
        while start < bytes.count && (bytes[start] == 13 || bytes[start] == 10) { start += 1 }
        guard let end = headEnd(bytes, from: start) else {
            return bytes.count - start > maxHeadBytes ? .tooLarge : .incomplete
        }
        // Split bytes, not a String: Swift reads "\r\n" as one Character.
        var lines = bytes[start..<end.headEnd].split(separator: 10, omittingEmptySubsequences: false).map { line in
            String(decoding: line.last == 13 ? line.dropLast() : line, as: UTF8.self)
        }
        while lines.last?.isEmpty == true { lines.removeLast() }
        guard let requestLine = lines.first else { return .invalid("empty request") }
        let parts = requestLine.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count == 3, parts[2].hasPrefix("HTTP/1.") else {
            return .invalid("bad request line '\(requestLine.prefix(80))'")
        }
        var headers: [(name: String, value: String)] = []
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { return .invalid("bad header line") }
            headers.append((String(line[..<colon]), String(line[line.index(after: colon)...].trimmingSpaces)))
        }
        let head = RequestHead(method: String(parts[0]), target: String(parts[1]), version: String(parts[2]),
                               headers: headers)
        return .complete(head, consumed: end.consumed)
    }

    /// The end of the head (before the blank line) and the bytes up to after the blank line.
    private static func headEnd(_ bytes: [UInt8], from start: Int) -> (headEnd: Int, consumed: Int)? {
        var index = start
        let limit = min(bytes.count, start + maxHeadBytes + 4)
        while index < limit {
            if bytes[index] == 10 {
                // "\n\n" or "\n\r\n" ends the head.
                if index + 1 < bytes.count && bytes[index + 1] == 10 { return (index, index + 2) }
                if index + 2 < bytes.count && bytes[index + 1] == 13 && bytes[index + 2] == 10 {
                    return (index, index + 3)
                }
            }
            index += 1
        }
        return nil
    }
}

/// A response before framing: the server adds Content-Length and Connection.
struct Response {
    var status: Int
    var body: String
    var headers: [(name: String, value: String)] = []

    /// The status line's reason phrase.
    var reason: String {
        switch status {
        case 200: "OK"
        case 400: "Bad Request"
        case 404: "Not Found"
        case 431: "Request Header Fields Too Large"
        case 501: "Not Implemented"
        default: "Status"
        }
    }

    /// The bytes on the wire. `keepAlive` false sends `Connection: close`; an HTTP/1.0 client
    /// that asked for keep-alive gets `Connection: keep-alive`. HEAD gets the headers only.
    func serialized(keepAlive: Bool, version: String, headOnly: Bool) -> [UInt8] {
        let body = Array(self.body.utf8)
        var text = "HTTP/1.1 \(status) \(reason)\r\nContent-Type: text/plain\r\nContent-Length: \(body.count)\r\n"
        for header in headers { text += "\(header.name): \(header.value)\r\n" }
        if !keepAlive {
            text += "Connection: close\r\n"
        } else if version == "HTTP/1.0" {
            text += "Connection: keep-alive\r\n"
        }
        text += "\r\n"
        return Array(text.utf8) + (headOnly ? [] : body)
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs.
    var trimmingSpaces: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        return String(self[first...last])
    }
}
