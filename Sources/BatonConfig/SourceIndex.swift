/// One step of a path into a TOML document: a key of a table or an index into an array (arrays of
/// tables included).
enum PathItem: Hashable, Sendable {
    case key(String)
    case index(Int)
}

/// Where things are in a TOML document's text.
///
/// TOMLKit hands back tables sorted by key and without source positions, so this scans the raw
/// text once more and records the line of every table header, key and array element, keyed by its
/// path: `[[listener]]` number 2's `backlog` is `listener / 1 / backlog`. It is built only from text
/// TOMLKit has already accepted, so it can be lenient: on anything it does not understand it skips
/// to the next line, and a lookup it cannot answer falls back to the enclosing table's line.
struct SourceIndex {
    private(set) var lines: [[PathItem]: Int] = [:]
    /// The raw text of scalar values (`0o660`, `"30s"`), for messages that depend on how a value
    /// was written.
    private(set) var scalarTexts: [[PathItem]: String] = [:]

    init(text: String) {
        var scanner = Scanner(bytes: Array(text.utf8))
        scanner.scanDocument()
        lines = scanner.lines
        scalarTexts = scanner.scalarTexts
    }

    /// The line of `path`, else of its nearest enclosing table or array that has one.
    func line(of path: [PathItem]) -> Int? {
        var path = path
        while !path.isEmpty {
            if let line = lines[path] { return line }
            path.removeLast()
        }
        return nil
    }

    /// The source text of a scalar value, exactly as written.
    func scalarText(of path: [PathItem]) -> String? {
        scalarTexts[path]
    }
}

private struct Scanner {
    let bytes: [UInt8]
    var position = 0
    var line = 1
    var lines: [[PathItem]: Int] = [:]
    var scalarTexts: [[PathItem]: String] = [:]
    /// How many elements each array of tables has so far, by its path.
    var arrayTableCounts: [[PathItem]: Int] = [:]

    init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    private var atEnd: Bool { position >= bytes.count }

    private func peek(_ offset: Int = 0) -> UInt8? {
        position + offset < bytes.count ? bytes[position + offset] : nil
    }

    private mutating func advance() {
        if bytes[position] == UInt8(ascii: "\n") { line += 1 }
        position += 1
    }

    mutating func scanDocument() {
        var table: [PathItem] = []
        while true {
            skipBlankLinesAndComments()
            guard let byte = peek() else { return }
            let startLine = line
            if byte == UInt8(ascii: "[") {
                let isArray = peek(1) == UInt8(ascii: "[")
                position += isArray ? 2 : 1
                if let keys = scanKeyPath(), expectHeaderEnd(isArray: isArray) {
                    table = resolveHeader(keys, isArray: isArray)
                    record(table, line: startLine)
                }
                skipRestOfLine()
                continue
            }
            guard let keys = scanKeyPath(), consume(UInt8(ascii: "=")) else {
                skipRestOfLine()
                continue
            }
            let path = table + keys.map(PathItem.key)
            record(path, line: startLine)
            scanValue(path)
            skipRestOfLine()
        }
    }

    /// A header's path, with the current element's index after every array of tables in it, so
    /// `[listener.tls]` after the second `[[listener]]` is `listener / 1 / tls`.
    private mutating func resolveHeader(_ keys: [String], isArray: Bool) -> [PathItem] {
        var path: [PathItem] = []
        for (offset, key) in keys.enumerated() {
            path.append(.key(key))
            if isArray, offset == keys.count - 1 {
                let count = arrayTableCounts[path, default: 0]
                arrayTableCounts[path] = count + 1
                path.append(.index(count))
            } else if let count = arrayTableCounts[path] {
                path.append(.index(count - 1))
            }
        }
        return path
    }

    /// The first place a path (or any table above it) appears is its line.
    private mutating func record(_ path: [PathItem], line: Int) {
        guard !path.isEmpty else { return }
        for length in 1...path.count {
            let prefix = Array(path[..<length])
            if lines[prefix] == nil { lines[prefix] = line }
        }
    }

    private mutating func expectHeaderEnd(isArray: Bool) -> Bool {
        skipSpaces()
        guard consume(UInt8(ascii: "]")) else { return false }
        return !isArray || consume(UInt8(ascii: "]"))
    }

    // MARK: Values

    private mutating func scanValue(_ path: [PathItem]) {
        skipSpaces()
        guard let byte = peek() else { return }
        switch byte {
        case UInt8(ascii: "["):
            advance()
            var index = 0
            while true {
                skipBlankLinesAndComments()
                guard let next = peek(), next != UInt8(ascii: "]") else { break }
                let elementPath = path + [.index(index)]
                record(elementPath, line: line)
                let before = position
                scanValue(elementPath)
                index += 1
                skipBlankLinesAndComments()
                if !consume(UInt8(ascii: ",")) && position == before { break }
            }
            _ = consume(UInt8(ascii: "]"))
        case UInt8(ascii: "{"):
            advance()
            while true {
                skipBlankLinesAndComments()
                guard let next = peek(), next != UInt8(ascii: "}") else { break }
                let keyLine = line
                guard let keys = scanKeyPath(), consume(UInt8(ascii: "=")) else { break }
                let keyPath = path + keys.map(PathItem.key)
                record(keyPath, line: keyLine)
                scanValue(keyPath)
                skipBlankLinesAndComments()
                _ = consume(UInt8(ascii: ","))
            }
            _ = consume(UInt8(ascii: "}"))
        case UInt8(ascii: "\""), UInt8(ascii: "'"):
            let start = position
            skipString()
            scalarTexts[path] = String(decoding: bytes[start..<position], as: UTF8.self)
        default:
            // Numbers, booleans and dates: up to the next delimiter (a date may contain a space).
            let start = position
            while let next = peek(), ![",", "]", "}", "#", "\n", "\r"].map(UInt8.init(ascii:)).contains(next) {
                advance()
            }
            var end = position
            while end > start, bytes[end - 1] == UInt8(ascii: " ") || bytes[end - 1] == UInt8(ascii: "\t") {
                end -= 1
            }
            scalarTexts[path] = String(decoding: bytes[start..<end], as: UTF8.self)
        }
    }

    /// Skips a basic, literal or multi-line string starting at the opening quote.
    private mutating func skipString() {
        let quote = bytes[position]
        let isBasic = quote == UInt8(ascii: "\"")
        let isMultiline = peek(1) == quote && peek(2) == quote
        position += isMultiline ? 3 : 1
        while let byte = peek() {
            if isBasic, byte == UInt8(ascii: "\\") {
                advance()
                if !atEnd { advance() }
                continue
            }
            if !isMultiline, byte == UInt8(ascii: "\n") { return }
            if byte == quote {
                if !isMultiline {
                    advance()
                    return
                }
                if peek(1) == quote, peek(2) == quote {
                    position += 3
                    // A multi-line string may end with up to two quotes of its own: `""""a"""""`.
                    for _ in 0..<2 where peek() == quote { position += 1 }
                    return
                }
            }
            advance()
        }
    }

    // MARK: Keys

    /// `a`, `"a b"`, `'a'`, `a.b."c"`; `nil` if there is no key here.
    private mutating func scanKeyPath() -> [String]? {
        var keys: [String] = []
        while true {
            skipSpaces()
            guard let key = scanSimpleKey() else { return nil }
            keys.append(key)
            skipSpaces()
            if !consume(UInt8(ascii: ".")) { return keys }
        }
    }

    private mutating func scanSimpleKey() -> String? {
        guard let byte = peek() else { return nil }
        if byte == UInt8(ascii: "\"") { return scanBasicKey() }
        if byte == UInt8(ascii: "'") {
            let start = position + 1
            guard let close = bytes[start...].firstIndex(of: UInt8(ascii: "'")) else { return nil }
            position = close + 1
            return String(decoding: bytes[start..<close], as: UTF8.self)
        }
        let start = position
        while let next = peek(), Self.isBareKeyByte(next) { position += 1 }
        return position > start ? String(decoding: bytes[start..<position], as: UTF8.self) : nil
    }

    /// A quoted key with its escapes decoded, so it matches the key TOMLKit reports.
    private mutating func scanBasicKey() -> String? {
        position += 1
        var scalars = String.UnicodeScalarView()
        var pending: [UInt8] = []
        func flush() {
            scalars.append(contentsOf: String(decoding: pending, as: UTF8.self).unicodeScalars)
            pending.removeAll()
        }
        while let byte = peek(), byte != UInt8(ascii: "\n") {
            position += 1
            if byte == UInt8(ascii: "\"") {
                flush()
                return String(scalars)
            }
            guard byte == UInt8(ascii: "\\"), let escaped = peek() else {
                pending.append(byte)
                continue
            }
            flush()
            position += 1
            switch escaped {
            case UInt8(ascii: "b"): scalars.append("\u{08}")
            case UInt8(ascii: "t"): scalars.append("\t")
            case UInt8(ascii: "n"): scalars.append("\n")
            case UInt8(ascii: "f"): scalars.append("\u{0C}")
            case UInt8(ascii: "r"): scalars.append("\r")
            case UInt8(ascii: "e"): scalars.append("\u{1B}")
            case UInt8(ascii: "u"), UInt8(ascii: "U"):
                let digits = escaped == UInt8(ascii: "u") ? 4 : 8
                guard position + digits <= bytes.count,
                    let value = UInt32(String(decoding: bytes[position..<position + digits], as: UTF8.self), radix: 16),
                    let scalar = Unicode.Scalar(value)
                else { return nil }
                position += digits
                scalars.append(scalar)
            default: scalars.append(Unicode.Scalar(escaped))
            }
        }
        return nil
    }

    private static func isBareKeyByte(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
            || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
    }

    // MARK: Whitespace

    private mutating func consume(_ byte: UInt8) -> Bool {
        skipSpaces()
        guard peek() == byte else { return false }
        advance()
        return true
    }

    private mutating func skipSpaces() {
        while let byte = peek(), byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") { position += 1 }
    }

    private mutating func skipBlankLinesAndComments() {
        while let byte = peek() {
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"), UInt8(ascii: "\n"): advance()
            case UInt8(ascii: "#"): skipRestOfLine()
            default: return
            }
        }
    }

    /// Skips to just after the next newline (a comment or trailing text included).
    private mutating func skipRestOfLine() {
        while let byte = peek() {
            advance()
            if byte == UInt8(ascii: "\n") { return }
        }
    }
}
