import BatonCore
import TOMLKit

/// Loads a baton configuration file (TOML) into a `Configuration`.
///
/// Errors name the file, the line and the key; unknown tables and keys are errors. The result is
/// not validated as a whole: the command line may still add listeners or the program's command,
/// so call `Configuration.problems()` once everything is merged.
public enum ConfigLoader {
    /// The top-level tables: `[master]`, `[[listener]]`, `[program]`.
    private static let sections = ["master", "listener", "program"]

    /// Reads and parses the file at `path`. The program's command may be missing (it can be given
    /// on the command line).
    public static func load(path: String) throws(ConfigError) -> Configuration {
        try load(path: path, reportingAs: path)
    }

    /// As `load(path:)`, with errors naming the file `name`: the file the user gave, when `path`
    /// is another way to it (`baton-config` reads the master's copy through `/dev/fd/3`).
    public static func load(path: String, reportingAs name: String) throws(ConfigError) -> Configuration {
        let text = try ConfigFile.contents(of: path, reportingAs: name)
        return try parse(text, fileName: name)
    }

    /// Parses the text of a configuration file; `fileName` is used in error messages only.
    public static func parse(_ text: String, fileName: String) throws(ConfigError) -> Configuration {
        if let nul = text.utf8.firstIndex(of: 0) {
            // TOMLKit hands the text to C++ as a C string, which would silently end at the NUL.
            let line = text.utf8[..<nul].reduce(1) { $1 == UInt8(ascii: "\n") ? $0 + 1 : $0 }
            throw ConfigError(file: fileName, line: line, message: "the file contains a NUL byte")
        }
        let root: TOMLTable
        do {
            root = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw syntaxError(error, fileName: fileName)
        } catch {
            throw ConfigError(file: fileName, line: nil, message: "\(error)")
        }
        let document = Document(fileName: fileName, index: SourceIndex(text: text))
        let top = TableReader(table: root, path: [], label: "", document: document)
        try rejectUnknownTopLevelKeys(top)

        var configuration = Configuration(program: ProgramSpec(name: "", command: []))
        if let master = try section("master", of: top) {
            configuration.master = try MasterSection.read(master)
        }
        configuration.listeners = try listeners(top)
        if let program = try section("program", of: top) {
            configuration.program = try ProgramSection.read(program)
        }
        return configuration
    }

    /// `message (column C)` at the line toml++ reports.
    private static func syntaxError(_ error: TOMLParseError, fileName: String) -> ConfigError {
        let position = error.source.begin
        let line = position.line > 0 ? position.line : nil
        let column = position.column > 0 ? " (column \(position.column))" : ""
        // toml++ says "Error while parsing array: …"; keep its words but read as one sentence.
        let prefix = "Error while parsing "
        let text = error.description.hasPrefix(prefix)
            ? "TOML syntax error while parsing " + error.description.dropFirst(prefix.count)
            : "TOML syntax error: " + error.description
        return ConfigError(file: fileName, line: line, message: text + column)
    }

    private static func rejectUnknownTopLevelKeys(_ top: TableReader) throws(ConfigError) {
        for key in top.keysInFileOrder where !sections.contains(key) {
            let isTable = top.value(key)?.table != nil
            if isTable {
                let hint = Suggestion.closest(to: key, in: sections).map { " (did you mean [\($0)]?)" } ?? ""
                throw top.fail(key, "unknown table [\(key)]\(hint)")
            }
            if let owner = owningSection(of: key) {
                throw top.fail(key, "key \"\(key)\" is outside any table: it belongs in \(owner)")
            }
            throw top.fail(key, "unknown key \"\(key)\" outside any table")
        }
    }

    /// `[program]` for `workers`, for a key put above every table header by mistake.
    private static func owningSection(of key: String) -> String? {
        if MasterSection.keys.contains(key) { return "[master]" }
        if ListenerSection.keys.contains(key) { return "[[listener]]" }
        if ProgramSection.keys.contains(key) { return "[program]" }
        return nil
    }

    private static func section(_ name: String, of top: TableReader) throws(ConfigError) -> TableReader? {
        guard let value = top.value(name) else { return nil }
        guard value.table != nil else {
            throw top.fail(name, "\(name): expected a table ([\(name)]), got \(value.type.withArticle)")
        }
        return try top.table(name, label: name)
    }

    /// Every `[[listener]]`, in file order; names and fixed addresses unique.
    private static func listeners(_ top: TableReader) throws(ConfigError) -> [ListenerSpec] {
        guard let value = top.value("listener") else { return [] }
        let expected = "listener: expected an array of tables ([[listener]])"
        guard let array = value.array else {
            throw top.fail("listener", "\(expected), got \(value.type.withArticle)")
        }
        var listeners: [ListenerSpec] = []
        var firstLineOfName: [String: Int] = [:]
        var ownerOfAddress: [ListenAddress: String] = [:]
        for offset in 0..<array.count {
            let path = top.path(of: "listener") + [.index(offset)]
            let element = array[offset]
            guard let table = element.table else {
                throw top.fail(at: path, "\(expected), got an array holding \(element.type.withArticle)")
            }
            let reader = TableReader(table: table, path: path, label: "listener \(offset + 1)", document: top.document)
            let listener = try ListenerSection.read(reader)
            let label = "listener \"\(listener.name)\""
            let line = top.document.index.line(of: path) ?? 0
            if let first = firstLineOfName[listener.name] {
                throw top.fail(at: path + [.key("name")], "\(label): the name is already used by the listener at line \(first)")
            }
            firstLineOfName[listener.name] = line
            for (position, address) in listener.addresses.enumerated() {
                // Port 0 gets a fresh port at every bind, so two such addresses never collide.
                if case .tcp(_, 0) = address { continue }
                if case .udp(_, 0) = address { continue }
                let addressPath = reader.path(of: "address")
                if let owner = ownerOfAddress[address] {
                    let elementPath = table["address"]?.array != nil ? addressPath + [.index(position)] : addressPath
                    let message = owner == label ? "is listed twice" : "is also used by \(owner)"
                    throw top.fail(at: elementPath, "\(label): address \(address) \(message)")
                }
                ownerOfAddress[address] = label
            }
            listeners.append(listener)
        }
        return listeners
    }
}
