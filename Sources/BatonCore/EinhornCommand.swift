/// One line sent to einhorn's command socket (`EINHORN_SOCK_PATH`), as baton reads it with
/// `compat = ["einhorn"]`. einhorn's transport is one serialized mapping per line with `%` and
/// newlines escaped as `%25` and `%0A`; its Ruby client serializes with YAML
/// (`---\ncommand: worker:ack\npid: 4121\n`), clients in other languages with JSON
/// (`{"command":"worker:ack","pid":4121}`), which is YAML too. baton reads both, flat mappings
/// of scalars only: that is all a worker's `worker:ack` needs.
public struct EinhornCommand: Sendable, Equatable {
    /// `worker:ack` is the one command baton acts on (readiness).
    public var command: String
    /// The pid the command is about (`worker:ack` names the worker itself).
    public var pid: Int32?

    public init(command: String, pid: Int32?) {
        self.command = command
        self.pid = pid
    }

    /// The longest line read; einhorn's own commands are far shorter.
    public static let maximumLineSize = 4096

    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    /// Parses one line (without its final newline).
    public static func parse<Bytes: Collection>(line bytes: Bytes) -> Result<EinhornCommand, ParseError>
    where Bytes.Element == UInt8 {
        guard let escaped = String(validating: Array(bytes), as: UTF8.self) else {
            return .failure(ParseError("not UTF-8"))
        }
        let text = unescape(escaped)
        let fields: [String: String]
        let trimmed = text.drop { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        if trimmed.hasPrefix("{") {
            var parser = FlatJSONParser(Array(trimmed.utf8))
            guard let parsed = parser.parseObject() else {
                return .failure(ParseError("expected a JSON object of strings and numbers"))
            }
            fields = parsed
        } else {
            guard let parsed = flatYAML(text) else {
                return .failure(ParseError("expected a mapping of \"key: value\" lines"))
            }
            fields = parsed
        }
        guard let command = fields["command"], !command.isEmpty else {
            return .failure(ParseError("no \"command\""))
        }
        var pid: Int32?
        if let value = fields["pid"] {
            guard let number = Int32(value), number > 0 else {
                return .failure(ParseError("pid \(value.prefix(32)) is not a process id"))
            }
            pid = number
        }
        return .success(EinhornCommand(command: command, pid: pid))
    }

    /// `%0A` → newline and `%25` → `%`, einhorn's only escapes.
    static func unescape(_ text: String) -> String {
        guard text.contains("%") else { return text }
        var result = ""
        var rest = Substring(text)
        while let percent = rest.firstIndex(of: "%") {
            result += rest[..<percent]
            let code = rest[percent...].dropFirst().prefix(2)
            if code == "0A" || code == "0a" {
                result += "\n"
                rest = rest[percent...].dropFirst(3)
            } else if code == "25" {
                result += "%"
                rest = rest[percent...].dropFirst(3)
            } else {
                result += "%"
                rest = rest[percent...].dropFirst()
            }
        }
        return result + rest
    }

    /// A block mapping of plain or quoted scalars (`key: value` lines, an optional `---`).
    static func flatYAML(_ text: String) -> [String: String]? {
        var fields: [String: String] = [:]
        for raw in text.split(separator: "\n") {
            let line = trim(raw)
            if line.isEmpty || line == "---" || line == "..." || line.hasPrefix("#") { continue }
            // The key ends at the first ":" followed by a space or the end ("command: worker:ack").
            var separator: Substring.Index?
            var index = line.startIndex
            while index < line.endIndex {
                let next = line.index(after: index)
                if line[index] == ":" && (next == line.endIndex || line[next] == " ") {
                    separator = index
                    break
                }
                index = next
            }
            guard let separator else { return nil }
            let key = unquote(trim(line[..<separator]))
            let value = unquote(trim(line[line.index(after: separator)...]))
            guard !key.isEmpty else { return nil }
            fields[key] = value
        }
        return fields.isEmpty ? nil : fields
    }

    static func trim(_ text: Substring) -> Substring {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
        guard let first = text.firstIndex(where: { !isSpace($0) }), let last = text.lastIndex(where: { !isSpace($0) })
        else { return "" }
        return text[first...last]
    }

    static func unquote(_ text: Substring) -> String {
        if text.count >= 2, let first = text.first, first == text.last, first == "'" || first == "\"" {
            return String(text.dropFirst().dropLast())
        }
        return String(text)
    }
}

/// A JSON object whose values are strings, numbers, booleans or null, as text (numbers and
/// booleans as written; null leaves the key out). Nested values are not accepted.
struct FlatJSONParser {
    private let bytes: [UInt8]
    private var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func parseObject() -> [String: String]? {
        skipSpace()
        guard take(UInt8(ascii: "{")) else { return nil }
        var fields: [String: String] = [:]
        skipSpace()
        if take(UInt8(ascii: "}")) { return trailingSpaceOnly() ? fields : nil }
        while true {
            skipSpace()
            guard let key = parseString() else { return nil }
            skipSpace()
            guard take(UInt8(ascii: ":")) else { return nil }
            skipSpace()
            guard let value = parseScalar() else { return nil }
            if let value { fields[key] = value }
            skipSpace()
            if take(UInt8(ascii: ",")) { continue }
            guard take(UInt8(ascii: "}")) else { return nil }
            return trailingSpaceOnly() ? fields : nil
        }
    }

    /// nil: not a scalar; .some(nil): JSON null.
    private mutating func parseScalar() -> String?? {
        guard position < bytes.count else { return nil }
        switch bytes[position] {
        case UInt8(ascii: "\""):
            return parseString().map { .some($0) }
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            let start = position
            position += 1
            while position < bytes.count, Self.isNumberByte(bytes[position]) { position += 1 }
            return .some(String(decoding: bytes[start..<position], as: UTF8.self))
        default:
            for word in ["true", "false", "null"] where bytes[position...].starts(with: word.utf8) {
                position += word.utf8.count
                return word == "null" ? .some(nil) : .some(word)
            }
            return nil
        }
    }

    private static func isNumberByte(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: ".")
            || byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") || byte == UInt8(ascii: "+")
            || byte == UInt8(ascii: "-")
    }

    private mutating func parseString() -> String? {
        guard take(UInt8(ascii: "\"")) else { return nil }
        var scalars = String.UnicodeScalarView()
        var raw: [UInt8] = []
        func flushRaw() {
            scalars.append(contentsOf: String(decoding: raw, as: UTF8.self).unicodeScalars)
            raw.removeAll()
        }
        while position < bytes.count {
            let byte = bytes[position]
            position += 1
            switch byte {
            case UInt8(ascii: "\""):
                flushRaw()
                return String(scalars)
            case UInt8(ascii: "\\"):
                guard position < bytes.count else { return nil }
                let escape = bytes[position]
                position += 1
                flushRaw()
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): scalars.append(Unicode.Scalar(escape))
                case UInt8(ascii: "n"): scalars.append("\n")
                case UInt8(ascii: "t"): scalars.append("\t")
                case UInt8(ascii: "r"): scalars.append("\r")
                case UInt8(ascii: "b"): scalars.append("\u{08}")
                case UInt8(ascii: "f"): scalars.append("\u{0C}")
                case UInt8(ascii: "u"):
                    guard position + 4 <= bytes.count,
                        let code = UInt32(String(decoding: bytes[position..<position + 4], as: UTF8.self), radix: 16)
                    else { return nil }
                    position += 4
                    // Surrogate pairs never occur in einhorn's words; an unpaired one becomes U+FFFD.
                    scalars.append(Unicode.Scalar(code) ?? "\u{FFFD}")
                default:
                    return nil
                }
            case 0..<0x20:
                return nil
            default:
                raw.append(byte)
            }
        }
        return nil
    }

    private mutating func skipSpace() {
        while position < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[position]) { position += 1 }
    }

    private mutating func take(_ byte: UInt8) -> Bool {
        guard position < bytes.count, bytes[position] == byte else { return false }
        position += 1
        return true
    }

    private mutating func trailingSpaceOnly() -> Bool {
        skipSpace()
        return position == bytes.count
    }
}
