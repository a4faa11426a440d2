import BatonCore

/// One `[[listener]]`.
enum ListenerSection {
    static let keys = ["name", "address", "backlog", "reuseport", "ipv6only", "mode", "owner", "group"]

    /// Reads one listener; `reader.label` is `listener N` (its place in the file), used until the
    /// name is known, then messages say `listener "NAME"`.
    static func read(_ reader: TableReader) throws(ConfigError) -> ListenerSpec {
        guard let name = try reader.string("name") else {
            throw reader.fail(at: reader.path, "missing key \"name\"")
        }
        if let problem = ListenerSpec.nameProblem(name) { throw reader.fail("name", "name: \(problem)") }
        let reader = TableReader(
            table: reader.table, path: reader.path, label: "listener \"\(name)\"", document: reader.document)
        try reader.rejectUnknownKeys(keys)

        guard let addressTexts = try reader.stringOrStrings("address") else {
            throw reader.fail(at: reader.path, "missing key \"address\"")
        }
        if addressTexts.isEmpty { throw reader.fail("address", "address: needs at least one address") }
        var listener = ListenerSpec(name: name, addresses: [])
        for (text, path) in addressTexts {
            switch ListenAddress.parse(text) {
            case .success(let address): listener.addresses.append(address)
            case .failure(let error): throw reader.fail(at: path, "address: \(error.description)")
            }
        }
        if let backlog = try reader.integer("backlog", in: 1...65535, "1 to 65535") { listener.backlog = Int32(backlog) }
        if let reuseport = try reader.bool("reuseport") { listener.reuseport = reuseport }
        if let ipv6only = try reader.bool("ipv6only") { listener.ipv6only = ipv6only }
        listener.mode = try mode(reader)
        listener.owner = try reader.nonEmptyString("owner")
        listener.group = try reader.nonEmptyString("group")
        return listener
    }

    /// `mode = "0660"` or `mode = 0o660`. A decimal integer is refused: `mode = 660` is almost
    /// certainly meant as octal, and read as decimal it is a strange mode (0o1224).
    private static func mode(_ reader: TableReader) throws(ConfigError) -> UInt32? {
        guard let value = reader.value("mode") else { return nil }
        let mode: Int
        if let text = value.string {
            let digits = text.hasPrefix("0o") ? String(text.dropFirst(2)) : text
            guard (1...5).contains(digits.utf8.count), digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x37 }),
                let parsed = Int(digits, radix: 8)
            else {
                throw reader.fail("mode", "mode: \"\(text)\" is not an octal mode like \"0660\"")
            }
            mode = parsed
        } else if let int = value.int {
            if int > 7, let written = reader.document.index.scalarText(of: reader.path(of: "mode")),
                !written.hasPrefix("0o")
            {
                throw reader.fail("mode", "mode: \(written) is not octal: write \"0660\" or 0o660")
            }
            mode = int
        } else {
            throw reader.typeError("mode", expected: "an octal string like \"0660\" or an integer like 0o660", got: value)
        }
        guard (0...0o7777).contains(mode) else { throw reader.fail("mode", "mode must be at most 0o7777") }
        return UInt32(mode)
    }
}
