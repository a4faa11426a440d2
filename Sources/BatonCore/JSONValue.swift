/// A JSON document as a value: what `JSONParser` reads and `JSONValue.serialized` writes.
///
/// The master reads and writes JSON (control protocol lines, the configuration `baton-config`
/// hands over) without Foundation: FoundationEssentials' coder alone would add megabytes of mapped
/// library to a process that must stay small (docs/BENCHMARKS.md). Numbers keep their text, so a
/// 64-bit integer survives exactly.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// The number as written, e.g. `-12`, `0.5`, `1e+20`.
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])
}

extension JSONValue {
    /// The value as JSON text: compact on one line (no newline at the end), or indented by two
    /// spaces for people. Object keys are sorted, so equal values give equal bytes. `/` is not
    /// escaped; control characters are, so a value never breaks a newline-delimited framing.
    public func serialized(pretty: Bool = false) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(256)
        write(into: &output, pretty: pretty, depth: 0)
        return output
    }

    private func write(into output: inout [UInt8], pretty: Bool, depth: Int) {
        switch self {
        case .null: output += "null".utf8
        case .bool(let value): output += (value ? "true" : "false").utf8
        case .number(let text): output += text.utf8
        case .string(let text): Self.writeString(text, into: &output)
        case .array(let items):
            guard !items.isEmpty else { return output += "[]".utf8 }
            output.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                Self.newline(into: &output, pretty: pretty, depth: depth + 1)
                item.write(into: &output, pretty: pretty, depth: depth + 1)
            }
            Self.newline(into: &output, pretty: pretty, depth: depth)
            output.append(UInt8(ascii: "]"))
        case .object(let members):
            guard !members.isEmpty else { return output += "{}".utf8 }
            output.append(UInt8(ascii: "{"))
            for (index, key) in members.keys.sorted().enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                Self.newline(into: &output, pretty: pretty, depth: depth + 1)
                Self.writeString(key, into: &output)
                output += (pretty ? " : " : ":").utf8
                members[key]!.write(into: &output, pretty: pretty, depth: depth + 1)
            }
            Self.newline(into: &output, pretty: pretty, depth: depth)
            output.append(UInt8(ascii: "}"))
        }
    }

    private static func newline(into output: inout [UInt8], pretty: Bool, depth: Int) {
        guard pretty else { return }
        output.append(UInt8(ascii: "\n"))
        output += repeatElement(UInt8(ascii: " "), count: 2 * depth)
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    private static func writeString(_ text: String, into output: inout [UInt8]) {
        output.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): output += #"\""#.utf8
            case UInt8(ascii: "\\"): output += #"\\"#.utf8
            case UInt8(ascii: "\n"): output += #"\n"#.utf8
            case UInt8(ascii: "\r"): output += #"\r"#.utf8
            case UInt8(ascii: "\t"): output += #"\t"#.utf8
            case 0x08: output += #"\b"#.utf8
            case 0x0C: output += #"\f"#.utf8
            case ..<0x20:
                output += #"\u00"#.utf8
                output.append(hexDigits[Int(byte >> 4)])
                output.append(hexDigits[Int(byte & 0xF)])
            default: output.append(byte)
            }
        }
        output.append(UInt8(ascii: "\""))
    }
}
