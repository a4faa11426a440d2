/// Turns `Encodable` values into `JSONValue`s the way Foundation's `JSONEncoder` does: keys as
/// the coding keys say, `nil` optionals left out, a value that encodes nothing as `{}`.
/// Non-finite floating-point numbers cannot be written in JSON and are refused.
public struct JSONValueEncoder {
    public init() {}

    public func encode(_ value: some Encodable) throws -> JSONValue {
        let root = EncodingNode()
        try value.encode(to: NodeEncoder(node: root, codingPath: []))
        return root.json
    }
}

/// What one encoded value has become so far. A class: nested containers keep writing into their
/// parent's node after the call that made them returned.
private final class EncodingNode {
    enum Content {
        case unset
        case value(JSONValue)
        case object([String: EncodingNode])
        case array([EncodingNode])
    }

    var content = Content.unset

    init() {}
    init(_ value: JSONValue) { content = .value(value) }

    var json: JSONValue {
        switch content {
        case .unset: return .object([:])
        case .value(let value): return value
        case .object(let members): return .object(members.mapValues(\.json))
        case .array(let items): return .array(items.map(\.json))
        }
    }

    func set(_ key: String, _ node: EncodingNode) {
        guard case .object(var members) = content else { return content = .object([key: node]) }
        content = .unset  // so `members` is the only reference and is changed in place
        members[key] = node
        content = .object(members)
    }

    func append(_ node: EncodingNode) {
        guard case .array(var items) = content else { return content = .array([node]) }
        content = .unset
        items.append(node)
        content = .array(items)
    }

    var count: Int {
        if case .array(let items) = content { return items.count }
        return 0
    }
}

/// A coding key for an array position or a made-up name (`super`).
struct JSONCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int?

    init(stringValue: String) {
        self.stringValue = stringValue
    }

    init(intValue: Int) {
        self.stringValue = String(intValue)
        self.intValue = intValue
    }
}

/// The JSON form of the primitive values every container writes.
private enum Primitive {
    static func double(_ value: Double, _ codingPath: [any CodingKey]) throws -> JSONValue {
        guard value.isFinite else {
            throw EncodingError.invalidValue(
                value, .init(codingPath: codingPath, debugDescription: "\(value) cannot be written in JSON"))
        }
        // Swift prints the shortest text that reads back as the same number.
        return .number(value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : value.description)
    }

    static func integer(_ value: some BinaryInteger) -> JSONValue { .number(String(value)) }
}

/// The primitive `encode` methods, which unkeyed and single-value containers spell alike.
private protocol PrimitiveEncoding {
    /// Where the next value goes, for error messages.
    var nextPath: [any CodingKey] { get }
    func put(_ value: JSONValue)
}

extension PrimitiveEncoding {
    mutating func encodeNil() throws { put(.null) }
    mutating func encode(_ value: Bool) throws { put(.bool(value)) }
    mutating func encode(_ value: String) throws { put(.string(value)) }
    mutating func encode(_ value: Double) throws { put(try Primitive.double(value, nextPath)) }
    mutating func encode(_ value: Float) throws { try encode(Double(value)) }
    mutating func encode(_ value: Int) throws { put(Primitive.integer(value)) }
    mutating func encode(_ value: Int8) throws { put(Primitive.integer(value)) }
    mutating func encode(_ value: Int16) throws { put(Primitive.integer(value)) }
    mutating func encode(_ value: Int32) throws { put(Primitive.integer(value)) }
    mutating func encode(_ value: Int64) throws { put(Primitive.integer(value)) }
    mutating func encode(_ value: UInt) throws { put(Primitive.integer(value)) }
    mutating func encode(_ value: UInt8) throws { put(Primitive.integer(value)) }
    mutating func encode(_ value: UInt16) throws { put(Primitive.integer(value)) }
    mutating func encode(_ value: UInt32) throws { put(Primitive.integer(value)) }
    mutating func encode(_ value: UInt64) throws { put(Primitive.integer(value)) }

}

private struct NodeEncoder: Encoder {
    let node: EncodingNode
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if case .object = node.content {} else { node.content = .object([:]) }
        return KeyedEncodingContainer(KeyedNodeEncoder<Key>(node: node, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        if case .array = node.content {} else { node.content = .array([]) }
        return UnkeyedNodeEncoder(node: node, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        SingleNodeEncoder(node: node, codingPath: codingPath)
    }
}

private struct KeyedNodeEncoder<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let node: EncodingNode
    let codingPath: [any CodingKey]

    private func put(_ value: JSONValue, _ key: Key) { node.set(key.stringValue, EncodingNode(value)) }

    mutating func encodeNil(forKey key: Key) throws { put(.null, key) }
    mutating func encode(_ value: Bool, forKey key: Key) throws { put(.bool(value), key) }
    mutating func encode(_ value: String, forKey key: Key) throws { put(.string(value), key) }
    mutating func encode(_ value: Double, forKey key: Key) throws { put(try Primitive.double(value, codingPath + [key]), key) }
    mutating func encode(_ value: Float, forKey key: Key) throws { try encode(Double(value), forKey: key) }
    mutating func encode(_ value: Int, forKey key: Key) throws { put(Primitive.integer(value), key) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { put(Primitive.integer(value), key) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { put(Primitive.integer(value), key) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { put(Primitive.integer(value), key) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { put(Primitive.integer(value), key) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { put(Primitive.integer(value), key) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { put(Primitive.integer(value), key) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { put(Primitive.integer(value), key) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { put(Primitive.integer(value), key) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { put(Primitive.integer(value), key) }

    mutating func encode(_ value: some Encodable, forKey key: Key) throws {
        let child = EncodingNode()
        try value.encode(to: NodeEncoder(node: child, codingPath: codingPath + [key]))
        node.set(key.stringValue, child)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type, forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        NodeEncoder(node: child(key.stringValue), codingPath: codingPath + [key]).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        NodeEncoder(node: child(key.stringValue), codingPath: codingPath + [key]).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        NodeEncoder(node: child("super"), codingPath: codingPath + [JSONCodingKey(stringValue: "super")])
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        NodeEncoder(node: child(key.stringValue), codingPath: codingPath + [key])
    }

    private func child(_ key: String) -> EncodingNode {
        let child = EncodingNode()
        node.set(key, child)
        return child
    }
}

private struct UnkeyedNodeEncoder: UnkeyedEncodingContainer, PrimitiveEncoding {
    let node: EncodingNode
    let codingPath: [any CodingKey]
    var count: Int { node.count }

    func put(_ value: JSONValue) { node.append(EncodingNode(value)) }
    var nextPath: [any CodingKey] { codingPath + [JSONCodingKey(intValue: count)] }

    mutating func encode(_ value: some Encodable) throws {
        let child = EncodingNode()
        try value.encode(to: NodeEncoder(node: child, codingPath: nextPath))
        node.append(child)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let path = nextPath
        return NodeEncoder(node: child(), codingPath: path).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let path = nextPath
        return NodeEncoder(node: child(), codingPath: path).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        let path = nextPath
        return NodeEncoder(node: child(), codingPath: path)
    }

    private func child() -> EncodingNode {
        let child = EncodingNode()
        node.append(child)
        return child
    }
}

private struct SingleNodeEncoder: SingleValueEncodingContainer, PrimitiveEncoding {
    let node: EncodingNode
    let codingPath: [any CodingKey]

    func put(_ value: JSONValue) { node.content = .value(value) }
    var nextPath: [any CodingKey] { codingPath }

    mutating func encode(_ value: some Encodable) throws {
        try value.encode(to: NodeEncoder(node: node, codingPath: codingPath))
    }
}
