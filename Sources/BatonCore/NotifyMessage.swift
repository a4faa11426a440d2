/// One notification in the grammar of sd_notify(3): newline-separated `KEY=VALUE` assignments.
/// The same grammar serves the notify socket and the channel.
public struct NotifyMessage: Sendable, Equatable {
    /// The largest message accepted (systemd's `NOTIFY_BUFFER_MAX`).
    public static let maximumSize = 4096

    /// Assignments in message order.
    public var fields: [(key: String, value: String)]

    public init(fields: [(key: String, value: String)]) { self.fields = fields }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.fields.elementsEqual(rhs.fields) { $0.key == $1.key && $0.value == $1.value }
    }

    /// The last value given for `key`.
    public subscript(key: String) -> String? {
        fields.last { $0.key == key }?.value
    }

    /// Parses `bytes`. A key is `[A-Z0-9_]+`; a value is any UTF-8 without a newline; empty lines
    /// are allowed (a trailing newline is implied, as in sd_notify).
    public static func parse<Bytes: Collection>(_ bytes: Bytes) -> Result<NotifyMessage, NotifyMessageError>
    where Bytes.Element == UInt8 {
        guard bytes.count <= maximumSize else {
            return .failure(.init("message of \(bytes.count) bytes exceeds \(maximumSize) bytes"))
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            return .failure(.init("message is not valid UTF-8"))
        }
        var fields: [(key: String, value: String)] = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if line.isEmpty { continue }
            guard let equals = line.firstIndex(of: "=") else {
                return .failure(.init("line \(number + 1): expected KEY=VALUE, got \"\(line.prefix(64))\""))
            }
            let key = line[..<equals]
            let validKey = !key.isEmpty && key.utf8.allSatisfy { byte in
                (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x30 && byte <= 0x39) || byte == UInt8(ascii: "_")
            }
            guard validKey else {
                return .failure(.init("line \(number + 1): key \"\(key.prefix(64))\" is not [A-Z0-9_]+"))
            }
            fields.append((String(key), String(line[line.index(after: equals)...])))
        }
        return .success(NotifyMessage(fields: fields))
    }

    /// The text form: `KEY=VALUE` lines joined by newlines.
    public var text: String {
        fields.map { "\($0.key)=\($0.value)" }.joined(separator: "\n")
    }
}

public struct NotifyMessageError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
