/// Builds `Decodable` values from `JSONValue`s the way Foundation's `JSONDecoder` does, and fails
/// with the same `DecodingError`s (the coding path says where): `keyNotFound`, `typeMismatch`,
/// `valueNotFound` for a `null` where a value is needed, `dataCorrupted` for a number that does
/// not fit its type.
public struct JSONValueDecoder {
    public init() {}

    public func decode<Value: Decodable>(_ type: Value.Type, from json: JSONValue) throws -> Value {
        try Value(from: NodeDecoder(json: json, codingPath: []))
    }
}

/// Reading primitive values out of a `JSONValue`, shared by the three containers.
private enum Unbox {
    static func bool(_ json: JSONValue, _ path: [any CodingKey]) throws -> Bool {
        guard case .bool(let value) = json else { throw mismatch(Bool.self, json, path) }
        return value
    }

    static func string(_ json: JSONValue, _ path: [any CodingKey]) throws -> String {
        guard case .string(let value) = json else { throw mismatch(String.self, json, path) }
        return value
    }

    static func double(_ json: JSONValue, _ path: [any CodingKey]) throws -> Double {
        guard case .number(let text) = json else { throw mismatch(Double.self, json, path) }
        guard let value = Double(text), value.isFinite else { throw corrupted(text, Double.self, path) }
        return value
    }

    static func integer<Value: FixedWidthInteger>(_ json: JSONValue, _ path: [any CodingKey]) throws -> Value {
        guard case .number(let text) = json else { throw mismatch(Value.self, json, path) }
        if let value = Value(text) { return value }
        // `3.0` or `1e3` are integers too, when exact.
        if let double = Double(text), double == double.rounded(), let value = Value(exactly: double) { return value }
        throw corrupted(text, Value.self, path)
    }

    static func mismatch(_ type: Any.Type, _ json: JSONValue, _ path: [any CodingKey]) -> DecodingError {
        if json == .null {
            return .valueNotFound(type, .init(codingPath: path, debugDescription: "null where a value is needed"))
        }
        return .typeMismatch(type, .init(codingPath: path, debugDescription: "expected \(type), found \(json.kindName)"))
    }

    static func corrupted(_ text: String, _ type: Any.Type, _ path: [any CodingKey]) -> DecodingError {
        .dataCorrupted(.init(codingPath: path, debugDescription: "the number \(text) does not fit in \(type)"))
    }
}

extension JSONValue {
    /// What kind of value this is, for error messages.
    var kindName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}

private struct NodeDecoder: Decoder {
    let json: JSONValue
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let members) = json else { throw Unbox.mismatch([String: JSONValue].self, json, codingPath) }
        return KeyedDecodingContainer(KeyedNodeDecoder<Key>(members: members, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let items) = json else { throw Unbox.mismatch([JSONValue].self, json, codingPath) }
        return UnkeyedNodeDecoder(items: items, codingPath: codingPath)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        SingleNodeDecoder(json: json, codingPath: codingPath)
    }
}

private struct KeyedNodeDecoder<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let members: [String: JSONValue]
    let codingPath: [any CodingKey]

    var allKeys: [Key] { members.keys.compactMap { Key(stringValue: $0) } }

    func contains(_ key: Key) -> Bool { members[key.stringValue] != nil }

    private func member(_ key: Key) throws -> JSONValue {
        guard let json = members[key.stringValue] else {
            throw DecodingError.keyNotFound(
                key, .init(codingPath: codingPath, debugDescription: "no value for the key \"\(key.stringValue)\""))
        }
        return json
    }

    func decodeNil(forKey key: Key) throws -> Bool { try member(key) == .null }
    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try Unbox.bool(member(key), codingPath + [key]) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try Unbox.string(member(key), codingPath + [key]) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try Unbox.double(member(key), codingPath + [key]) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { Float(try decode(Double.self, forKey: key)) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try integer(key) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try integer(key) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try integer(key) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try integer(key) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try integer(key) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try integer(key) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try integer(key) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try integer(key) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try integer(key) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try integer(key) }

    private func integer<Value: FixedWidthInteger>(_ key: Key) throws -> Value {
        try Unbox.integer(member(key), codingPath + [key])
    }

    func decode<Value: Decodable>(_ type: Value.Type, forKey key: Key) throws -> Value {
        try Value(from: NodeDecoder(json: member(key), codingPath: codingPath + [key]))
    }

    func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type, forKey key: Key
    ) throws -> KeyedDecodingContainer<NestedKey> {
        try NodeDecoder(json: member(key), codingPath: codingPath + [key]).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try NodeDecoder(json: member(key), codingPath: codingPath + [key]).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        let key = JSONCodingKey(stringValue: "super")
        return NodeDecoder(json: members[key.stringValue] ?? .null, codingPath: codingPath + [key])
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        NodeDecoder(json: members[key.stringValue] ?? .null, codingPath: codingPath + [key])
    }
}

private struct UnkeyedNodeDecoder: UnkeyedDecodingContainer {
    let items: [JSONValue]
    let codingPath: [any CodingKey]
    var currentIndex = 0

    init(items: [JSONValue], codingPath: [any CodingKey]) {
        self.items = items
        self.codingPath = codingPath
    }

    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }
    private var path: [any CodingKey] { codingPath + [JSONCodingKey(intValue: currentIndex)] }

    /// The next item, for a value of `type`; the index moves on only when decoding it succeeded.
    private mutating func next<Value>(_ type: Value.Type, _ read: (JSONValue, [any CodingKey]) throws -> Value) throws -> Value {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(type, .init(codingPath: path, debugDescription: "the array has no more items"))
        }
        let value = try read(items[currentIndex], path)
        currentIndex += 1
        return value
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, items[currentIndex] == .null else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { try next(type, Unbox.bool) }
    mutating func decode(_ type: String.Type) throws -> String { try next(type, Unbox.string) }
    mutating func decode(_ type: Double.Type) throws -> Double { try next(type, Unbox.double) }
    mutating func decode(_ type: Float.Type) throws -> Float { Float(try decode(Double.self)) }
    mutating func decode(_ type: Int.Type) throws -> Int { try next(type, Unbox.integer) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try next(type, Unbox.integer) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try next(type, Unbox.integer) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try next(type, Unbox.integer) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try next(type, Unbox.integer) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try next(type, Unbox.integer) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try next(type, Unbox.integer) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try next(type, Unbox.integer) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try next(type, Unbox.integer) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try next(type, Unbox.integer) }

    mutating func decode<Value: Decodable>(_ type: Value.Type) throws -> Value {
        try next(type) { json, path in try Value(from: NodeDecoder(json: json, codingPath: path)) }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        try next(KeyedDecodingContainer<NestedKey>.self) { json, path in
            try NodeDecoder(json: json, codingPath: path).container(keyedBy: type)
        }
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try next((any UnkeyedDecodingContainer).self) { json, path in
            try NodeDecoder(json: json, codingPath: path).unkeyedContainer()
        }
    }

    mutating func superDecoder() throws -> any Decoder {
        try next((any Decoder).self) { json, path in NodeDecoder(json: json, codingPath: path) }
    }
}

private struct SingleNodeDecoder: SingleValueDecodingContainer {
    let json: JSONValue
    let codingPath: [any CodingKey]

    func decodeNil() -> Bool { json == .null }
    func decode(_ type: Bool.Type) throws -> Bool { try Unbox.bool(json, codingPath) }
    func decode(_ type: String.Type) throws -> String { try Unbox.string(json, codingPath) }
    func decode(_ type: Double.Type) throws -> Double { try Unbox.double(json, codingPath) }
    func decode(_ type: Float.Type) throws -> Float { Float(try decode(Double.self)) }
    func decode(_ type: Int.Type) throws -> Int { try Unbox.integer(json, codingPath) }
    func decode(_ type: Int8.Type) throws -> Int8 { try Unbox.integer(json, codingPath) }
    func decode(_ type: Int16.Type) throws -> Int16 { try Unbox.integer(json, codingPath) }
    func decode(_ type: Int32.Type) throws -> Int32 { try Unbox.integer(json, codingPath) }
    func decode(_ type: Int64.Type) throws -> Int64 { try Unbox.integer(json, codingPath) }
    func decode(_ type: UInt.Type) throws -> UInt { try Unbox.integer(json, codingPath) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try Unbox.integer(json, codingPath) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try Unbox.integer(json, codingPath) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try Unbox.integer(json, codingPath) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try Unbox.integer(json, codingPath) }

    func decode<Value: Decodable>(_ type: Value.Type) throws -> Value {
        try Value(from: NodeDecoder(json: json, codingPath: codingPath))
    }
}

/// JSON text to and from `Codable` values, without Foundation.
public enum JSONCoding {
    /// `value` as JSON text (see `JSONValue.serialized`).
    public static func encode(_ value: some Encodable, pretty: Bool = false) throws -> [UInt8] {
        try JSONValueEncoder().encode(value).serialized(pretty: pretty)
    }

    /// The value of `type` in the JSON text `bytes`. Text that is not JSON throws
    /// `DecodingError.dataCorrupted` with an empty coding path; the description says where.
    public static func decode<Value: Decodable>(_ type: Value.Type, from bytes: some Collection<UInt8>) throws -> Value {
        let json: JSONValue
        do {
            json = try JSONParser.parse(bytes)
        } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "not JSON: \(error)", underlyingError: error))
        }
        return try JSONValueDecoder().decode(type, from: json)
    }
}
