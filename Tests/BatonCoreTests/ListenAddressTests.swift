import BatonCore
import Testing

@Suite struct ListenAddressTests {
    @Test(arguments: [
        ("tcp://127.0.0.1:8080", ListenAddress.tcp(host: "127.0.0.1", port: 8080)),
        ("tcp://0.0.0.0:0", .tcp(host: "0.0.0.0", port: 0)),
        ("tcp://[::]:8080", .tcp(host: "::", port: 8080)),
        ("tcp://[::1]:65535", .tcp(host: "::1", port: 65535)),
        ("tcp://localhost:80", .tcp(host: "localhost", port: 80)),
        ("udp://127.0.0.1:53", .udp(host: "127.0.0.1", port: 53)),
        ("udp://[fe80::1]:53", .udp(host: "fe80::1", port: 53)),
        ("unix:/run/web.sock", .unixPath("/run/web.sock")),
        ("unix:@baton-test", .unixAbstract("baton-test")),
    ])
    func parsesAndPrintsBack(text: String, address: ListenAddress) throws {
        #expect(try ListenAddress.parse(text).get() == address)
        #expect(address.description == text)
    }

    @Test(arguments: [
        ("http://127.0.0.1:80", "\"http://127.0.0.1:80\": expected tcp://, unix: or udp://"),
        ("127.0.0.1:80", "\"127.0.0.1:80\": expected tcp://, unix: or udp://"),
        ("tcp://127.0.0.1", "\"tcp://127.0.0.1\": expected HOST:PORT"),
        ("tcp://:80", "\"tcp://:80\": missing host (use 0.0.0.0 or [::] for all addresses)"),
        ("tcp://[::1]:", "\"tcp://[::1]:\": port must be a number from 0 to 65535"),
        ("tcp://[::1]8080", "\"tcp://[::1]8080\": expected :PORT after ]"),
        ("tcp://[::1:8080", "\"tcp://[::1:8080\": missing ] after the IPv6 address"),
        ("tcp://::1:8080", "\"tcp://::1:8080\": put an IPv6 address in brackets, e.g. tcp://[::1]:8080"),
        ("tcp://host:65536", "\"tcp://host:65536\": port must be a number from 0 to 65535"),
        ("tcp://host:http", "\"tcp://host:http\": port must be a number from 0 to 65535"),
        ("unix:relative.sock", "\"unix:relative.sock\": expected unix:/absolute/path or unix:@name"),
        ("unix:@", "\"unix:@\": an abstract name needs 1 to 107 bytes"),
    ])
    func explainsWhatIsWrong(text: String, message: String) {
        #expect(throws: AddressError(message)) { try ListenAddress.parse(text).get() }
    }

    @Test func limitsUnixPathsToWhatSunPathHolds() throws {
        let longest = "/" + String(repeating: "a", count: 106)
        #expect(try ListenAddress.parse("unix:" + longest).get() == .unixPath(longest))
        #expect(throws: AddressError.self) { try ListenAddress.parse("unix:" + longest + "a").get() }
        let name = String(repeating: "b", count: 107)
        #expect(try ListenAddress.parse("unix:@" + name).get() == .unixAbstract(name))
        #expect(throws: AddressError.self) { try ListenAddress.parse("unix:@" + name + "b").get() }
    }

    @Test func validatesListenerNames() {
        #expect(ListenerSpec.nameProblem("http") == nil)
        #expect(ListenerSpec.nameProblem("a-b_c.9") == nil)
        #expect(ListenerSpec.nameProblem(String(repeating: "x", count: 64)) == nil)
        #expect(ListenerSpec.nameProblem(String(repeating: "x", count: 65)) == "a listener name needs 1 to 64 characters")
        #expect(ListenerSpec.nameProblem("") == "a listener name needs 1 to 64 characters")
        #expect(ListenerSpec.nameProblem("stored") == "\"stored\" is reserved by systemd")
        #expect(ListenerSpec.nameProblem("a:b") == "\"a:b\" may contain only A-Z, a-z, 0-9, _, . and -")
        #expect(ListenerSpec.nameProblem("é") == "\"é\" may contain only A-Z, a-z, 0-9, _, . and -")
    }
}
