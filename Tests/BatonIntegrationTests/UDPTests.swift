import BatonTestSupport
import Foundation
import Testing

extension IntegrationTests {
    /// UDP listeners are handed over like the others, in both modes: a datagram socket has no
    /// accept queue, but the same socket serves every generation. One name carries an IPv4 and an
    /// IPv6 socket and repeats in `LISTEN_FDNAMES`.
    @Suite struct UDP {
        @Test(arguments: ["listen-fds", "channel"])
        func workersOfEachGenerationReceiveDatagramsOnTheHandedSocket(handoff: String) throws {
            let baton = try BatonFixture(
                workers: 1, batonArguments: ["--handoff", handoff],
                listen: ["http=tcp://127.0.0.1:0", "dns=udp://127.0.0.1:0", "dns=udp://[::1]:0"])
            defer { baton.cleanup() }
            let v4 = try baton.udpPort(listener: "dns", host: "127.0.0.1")
            let v6 = try baton.udpPort(listener: "dns", host: "[::1]")

            // One name, two sockets: the name repeats, in fd order.
            #expect(try baton.get("/listeners").body == """
                http ipv4 127.0.0.1:\(baton.port)
                dns ipv4 127.0.0.1:\(v4)
                dns ipv6 [::1]:\(v6)

                """)
            if handoff == "listen-fds" {
                #expect(try baton.get("/env").body.contains("LISTEN_FDNAMES=http:dns:dns\n"))
            }

            let first = try #require(baton.workerPIDs(generation: 1).first)
            #expect(try UDPClient.exchange(host: "127.0.0.1", port: v4, payload: "one") == "gen=1 pid=\(first) one")
            #expect(try UDPClient.exchange(host: "::1", port: v6, payload: "two") == "gen=1 pid=\(first) two")

            try baton.reload(to: 2)
            // Gen 1 has exited: the same sockets now reach gen 2 only.
            let second = try #require(baton.workerPIDs(generation: 2).first)
            #expect(try UDPClient.exchange(host: "127.0.0.1", port: v4, payload: "three") == "gen=2 pid=\(second) three")
            #expect(try UDPClient.exchange(host: "::1", port: v6, payload: "four") == "gen=2 pid=\(second) four")
        }
    }
}
