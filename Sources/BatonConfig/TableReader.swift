import BatonCore
import TOMLKit

/// The file being loaded, for errors that point at a line.
struct Document {
    let fileName: String
    let index: SourceIndex

    func error(at path: [PathItem], _ message: String) -> ConfigError {
        ConfigError(file: fileName, line: index.line(of: path), message: message)
    }
}

/// Reads typed values out of one TOML table. Every failure names the table (`label`), the key and
/// the key's line; a key that is absent reads as `nil`, so the model's default stays.
struct TableReader {
    let table: TOMLTable
    /// Where the table is in the document, e.g. `listener / 0`.
    let path: [PathItem]
    /// How messages name the table: `master`, `listener "http"`, `program`; empty at the top level.
    let label: String
    let document: Document

    func path(of key: String) -> [PathItem] { path + [.key(key)] }

    /// The table's keys in the order they appear in the file (TOMLKit sorts them by name).
    var keysInFileOrder: [String] {
        table.keys.enumerated()
            .map { (line: document.index.line(of: path(of: $0.element)) ?? Int.max, offset: $0.offset, key: $0.element) }
            .sorted { ($0.line, $0.offset) < ($1.line, $1.offset) }
            .map(\.key)
    }

    /// `label: message`, at the line of `path`.
    func fail(at path: [PathItem], _ message: String) -> ConfigError {
        document.error(at: path, label.isEmpty ? message : "\(label): \(message)")
    }

    /// `label: message`, at the line of `key`.
    func fail(_ key: String, _ message: String) -> ConfigError {
        fail(at: path(of: key), message)
    }

    /// `label: key: expected …, got …`.
    func typeError(_ key: String, expected: String, got value: TOMLValueConvertible) -> ConfigError {
        fail(key, "\(key): expected \(expected), got \(value.type.withArticle)")
    }

    /// Fails on the first key, in file order, that is not one of `known`.
    func rejectUnknownKeys(_ known: [String]) throws(ConfigError) {
        for key in keysInFileOrder where !known.contains(key) {
            throw fail(key, "unknown key \"\(key)\"" + Suggestion.hint(for: key, in: known))
        }
    }

    func value(_ key: String) -> TOMLValueConvertible? {
        table[key]
    }

    func table(_ key: String, label: String) throws(ConfigError) -> TableReader? {
        guard let value = value(key) else { return nil }
        guard let table = value.table else { throw typeError(key, expected: "a table", got: value) }
        return TableReader(table: table, path: path(of: key), label: label, document: document)
    }

    func string(_ key: String) throws(ConfigError) -> String? {
        guard let value = value(key) else { return nil }
        guard let string = value.string else { throw typeError(key, expected: "a string", got: value) }
        return string
    }

    /// A string that must not be empty when given (a path, a user name).
    func nonEmptyString(_ key: String) throws(ConfigError) -> String? {
        guard let string = try string(key) else { return nil }
        if string.isEmpty { throw fail(key, "\(key) must not be empty") }
        return string
    }

    func bool(_ key: String) throws(ConfigError) -> Bool? {
        guard let value = value(key) else { return nil }
        guard let bool = value.bool else { throw typeError(key, expected: "true or false", got: value) }
        return bool
    }

    func integer(_ key: String) throws(ConfigError) -> Int? {
        guard let value = value(key) else { return nil }
        guard let int = value.int else { throw typeError(key, expected: "an integer", got: value) }
        return int
    }

    /// An integer in `range`; outside it, fails with `label: key must be …` (`rangeText`).
    func integer(_ key: String, in range: ClosedRange<Int>, _ rangeText: String) throws(ConfigError) -> Int? {
        guard let int = try integer(key) else { return nil }
        guard range.contains(int) else { throw fail(key, "\(key) must be \(rangeText)") }
        return int
    }

    /// An array of strings (`command = ["/usr/bin/web", "--flag"]`).
    func strings(_ key: String) throws(ConfigError) -> [String]? {
        guard let value = value(key) else { return nil }
        guard let array = value.array else { throw typeError(key, expected: "an array of strings", got: value) }
        return try strings(in: array, key: key)
    }

    /// A string or an array of strings, each with its path (for messages about one element).
    func stringOrStrings(_ key: String) throws(ConfigError) -> [(String, [PathItem])]? {
        guard let value = value(key) else { return nil }
        if let string = value.string { return [(string, path(of: key))] }
        guard let array = value.array else {
            throw typeError(key, expected: "a string or an array of strings", got: value)
        }
        let strings = try strings(in: array, key: key)
        return strings.enumerated().map { ($0.element, path(of: key) + [.index($0.offset)]) }
    }

    private func strings(in array: TOMLArray, key: String) throws(ConfigError) -> [String] {
        var strings: [String] = []
        for offset in 0..<array.count {
            let element = array[offset]
            guard let string = element.string else {
                throw fail(
                    at: path(of: key) + [.index(offset)],
                    "\(key): item \(offset + 1): expected a string, got \(element.type.withArticle)")
            }
            strings.append(string)
        }
        return strings
    }

    /// `"30s"`, `"250ms"`: see `DurationText`.
    func duration(_ key: String) throws(ConfigError) -> Duration? {
        guard let value = value(key) else { return nil }
        guard let text = value.string else {
            throw typeError(key, expected: "a duration like \"30s\"", got: value)
        }
        guard let duration = DurationText.parse(text) else {
            throw fail(key, "\(key): \"\(text)\" is not a duration (expected a whole number and ms, s, m or h, like \"30s\")")
        }
        return duration
    }

    /// A duration that must be more than zero.
    func positiveDuration(_ key: String) throws(ConfigError) -> Duration? {
        guard let duration = try duration(key) else { return nil }
        if duration <= .zero { throw fail(key, "\(key) must be more than 0") }
        return duration
    }

    /// One of an enumeration's raw values, e.g. `handoff = "channel"`.
    func choice<Choice: RawRepresentable & CaseIterable>(_ key: String, as _: Choice.Type) throws(ConfigError) -> Choice?
    where Choice.RawValue == String {
        guard let value = value(key) else { return nil }
        let options = Choice.allCases.map(\.rawValue)
        guard let text = value.string else {
            throw typeError(key, expected: "a string (\(Self.alternatives(options)))", got: value)
        }
        guard let choice = Choice(rawValue: text) else {
            throw fail(
                key, "\(key): expected \(Self.alternatives(options)), got \"\(text)\"" + Suggestion.hint(for: text, in: options))
        }
        return choice
    }

    /// `"a", "b" or "c"`.
    static func alternatives(_ options: [String]) -> String {
        let quoted = options.map { "\"\($0)\"" }
        guard quoted.count > 1 else { return quoted.first ?? "" }
        return quoted.dropLast().joined(separator: ", ") + " or " + quoted.last!
    }
}

extension TOMLType {
    /// `a string`, `an integer`: the type as a message names it.
    var withArticle: String {
        switch self {
        case .table: return "a table"
        case .array: return "an array"
        case .string: return "a string"
        case .int: return "an integer"
        case .double: return "a floating-point number"
        case .bool: return "a boolean"
        case .date: return "a date"
        case .time: return "a time"
        case .dateTime: return "a date-time"
        }
    }
}
