import BatonCore
import Foundation
import Testing

/// The Foundation-free JSON coder the master uses, checked against Foundation's own: what one
/// writes the other reads back equal, and the parser refuses what RFC 8259 does not allow.
@Suite struct JSONCodingTests {
    static let configuration = Configuration(
        master: MasterSettings(control: "/run/baton/web.sock", logLevel: .debug, logFormat: .json),
        listeners: [
            ListenerSpec(name: "http", addresses: [.tcp(host: "127.0.0.1", port: 8080), .tcp(host: "::1", port: 8080)]),
            ListenerSpec(name: "dns", addresses: [.udp(host: "0.0.0.0", port: 53)], backlog: 16, reuseport: true),
            ListenerSpec(name: "admin", addresses: [.unixPath("/run/web/admin.sock")], mode: 0o660, owner: "www", group: "adm"),
            ListenerSpec(name: "local", addresses: [.unixAbstract("web-local")], ipv6only: false),
        ],
        program: ProgramSpec(
            name: "web", command: ["/usr/bin/web", "--port", "\"quoted\"\n\u{1}é😀"], env: ["A": "1", "PATH": "/bin"],
            inheritEnv: false, cwd: "/srv", user: "nobody", workers: 8, handoff: .channel, ready: .exec,
            readyCommand: ["curl", "-f", "http://127.0.0.1/health"], readyDelay: .milliseconds(250),
            readyInterval: .nanoseconds(123_456_789), readyTimeout: .seconds(-3), drainSignal: 3,
            drainTimeout: .seconds(86_400 * 365), killMode: .process, output: .inherit, compat: ["einhorn"]))

    @Test func whatThisCoderWritesFoundationReadsBackEqual() throws {
        let bytes = try JSONCoding.encode(Self.configuration)
        #expect(try JSONDecoder().decode(Configuration.self, from: Data(bytes)) == Self.configuration)
        let pretty = try JSONCoding.encode(Self.configuration, pretty: true)
        #expect(try JSONDecoder().decode(Configuration.self, from: Data(pretty)) == Self.configuration)
    }

    @Test func whatFoundationWritesThisCoderReadsBackEqual() throws {
        let data = try JSONEncoder().encode(Self.configuration)
        #expect(try JSONCoding.decode(Configuration.self, from: Array(data)) == Self.configuration)
    }

    @Test func compactOutputIsOneLineWithSortedKeysAndEscapedControlCharacters() throws {
        let value: [String: String] = ["b": "line\nbreak\t\u{7}/slash", "a": "\"q\"\\"]
        let text = String(decoding: try JSONCoding.encode(value), as: UTF8.self)
        #expect(text == #"{"a":"\"q\"\\","b":"line\nbreak\t\u0007/slash"}"#)
    }

    @Test func prettyOutputIsIndentedByTwoSpaces() throws {
        let value = JSONValue.object(["list": .array([.number("1"), .object([:])]), "empty": .array([])])
        let text = String(decoding: value.serialized(pretty: true), as: UTF8.self)
        #expect(text == "{\n  \"empty\" : [],\n  \"list\" : [\n    1,\n    {}\n  ]\n}")
    }

    @Test func everyBMPCharacterAndAnAstralOneSurviveARoundTrip() throws {
        var scalars = String.UnicodeScalarView()
        for code in 0..<0x1_0000 where !(0xD800..<0xE000).contains(code) { scalars.append(Unicode.Scalar(code)!) }
        scalars.append("😀")
        let text = String(scalars)
        #expect(try JSONCoding.decode(String.self, from: JSONCoding.encode(text)) == text)
        #expect(try JSONDecoder().decode(String.self, from: Data(JSONCoding.encode(text))) == text)
    }

    @Test func escapesAreRead() throws {
        let text = #""\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00\u0000""#
        #expect(try JSONCoding.decode(String.self, from: Array(text.utf8)) == "\"\\/\u{8}\u{C}\n\r\té😀\u{0}")
    }

    @Test func numbersKeepTheirTypeAndRange() throws {
        #expect(try JSONCoding.decode([UInt64].self, from: Array("[18446744073709551615, 0]".utf8)) == [.max, 0])
        #expect(try JSONCoding.decode([Int64].self, from: Array("[-9223372036854775808, 3.0, 1e3]".utf8)) == [.min, 3, 1000])
        #expect(try JSONCoding.decode([Double].self, from: Array("[0.1, -2.5e-3, 1E+2]".utf8)) == [0.1, -0.0025, 100])
        let doubles: [Double] = [0.1, 1.0 / 3, 123, -0.000_01, 1e300]
        #expect(try JSONDecoder().decode([Double].self, from: Data(JSONCoding.encode(doubles))) == doubles)
        #expect(String(decoding: try JSONCoding.encode([2.0, 0.5]), as: UTF8.self) == "[2,0.5]")
        #expect(throws: EncodingError.self) { try JSONCoding.encode([Double.nan]) }
    }

    @Test(arguments: [
        ("", "unexpected end"), ("   ", "unexpected end"), ("{", "expected a key"), ("[1,]", "expected a value"),
        ("{\"a\":1,}", "expected a key"), ("01", "unexpected text after"), ("1.", "after the decimal point"),
        (".5", "expected a value"), ("+1", "expected a value"), ("-", "expected a digit"), ("1e", "in the exponent"),
        ("\"a\nb\"", "control character"), ("'a'", "expected a value"), ("NaN", "expected a value"),
        ("tru", "expected a value"), ("{\"a\" 1}", "expected :"), ("[1 2]", "expected , or ]"),
        ("\"\\x\"", "unknown escape"), ("\"\\u12\"", "four hex digits"), ("\"\\ud800\"", "without its low surrogate"),
        ("\"\\ud800\\u0041\"", "no low surrogate"), ("\"\\udc00\"", "lone low surrogate"), ("\"abc", "unterminated"),
        ("{} {}", "unexpected text after"),
    ])
    func malformedTextIsRefusedWithTheReason(text: String, reason: String) {
        #expect {
            try JSONParser.parse(Array(text.utf8))
        } throws: { error in
            (error as? JSONSyntaxError)?.reason.contains(reason) == true
        }
    }

    @Test func invalidUTF8InAStringIsRefused() {
        #expect(throws: JSONSyntaxError.self) { try JSONParser.parse([0x22, 0xC3, 0x28, 0x22]) }
    }

    @Test func nestingIsBoundedSoAHostileLineCannotExhaustTheStack() throws {
        let deepest = String(repeating: "[", count: JSONParser.maximumDepth) + String(repeating: "]", count: JSONParser.maximumDepth)
        _ = try JSONParser.parse(Array(deepest.utf8))
        let tooDeep = String(repeating: "[", count: 100_000)
        #expect {
            try JSONParser.parse(Array(tooDeep.utf8))
        } throws: { error in
            (error as? JSONSyntaxError)?.reason.contains("nested deeper") == true
        }
    }

    @Test func aRepeatedKeyKeepsItsLastValue() throws {
        #expect(try JSONCoding.decode([String: Int].self, from: Array(#"{"a":1,"a":2}"#.utf8)) == ["a": 2])
    }

    struct Sample: Codable, Equatable {
        var name: String
        var count: Int8
        var list: [Int]
        var optional: String?
    }

    @Test func decodingErrorsSayWhatAndWhereAsFoundationsDo() throws {
        func error(_ text: String) -> DecodingError? {
            do {
                _ = try JSONCoding.decode(Sample.self, from: Array(text.utf8))
                return nil
            } catch {
                return error as? DecodingError
            }
        }
        guard case .keyNotFound(let key, _)? = error(#"{"count":1,"list":[]}"#) else { Issue.record("no keyNotFound"); return }
        #expect(key.stringValue == "name")
        guard case .typeMismatch(_, let context)? = error(#"{"name":"x","count":1,"list":[1,"2"]}"#) else {
            Issue.record("no typeMismatch")
            return
        }
        #expect(context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue } == ["list", "1"])
        guard case .dataCorrupted(let corrupted)? = error(#"{"name":"x","count":300,"list":[]}"#) else {
            Issue.record("no dataCorrupted")
            return
        }
        #expect(corrupted.debugDescription.contains("300"))
        guard case .valueNotFound? = error(#"{"name":null,"count":1,"list":[]}"#) else { Issue.record("no valueNotFound"); return }
        guard case .dataCorrupted(let syntax)? = error("{oops") else { Issue.record("no syntax error"); return }
        #expect(syntax.codingPath.isEmpty)
        #expect(try JSONCoding.decode(Sample.self, from: Array(#"{"name":"x","count":1,"list":[],"optional":null}"#.utf8))
            == Sample(name: "x", count: 1, list: [], optional: nil))
    }

    @Test func nilOptionalsAreLeftOut() throws {
        let text = String(decoding: try JSONCoding.encode(Sample(name: "x", count: 1, list: [2], optional: nil)), as: UTF8.self)
        #expect(text == #"{"count":1,"list":[2],"name":"x"}"#)
    }
}
