import BatonTestSupport
import Foundation
import Testing

extension IntegrationTests.SwiftNIOExample {
    /// h2c clients (NIO's HTTP/2 client, prior knowledge) against the example across reloads: the
    /// double GOAWAY of every drained connection loses no request, and every client moves on.
    @Test func http2ClientsAcrossReloadsSeeNoFailureAndMoveToNewConnectionsOnGoAway() throws {
        let clients = 8
        let reloads = 4
        let server = try Binaries.executable(named: "swift-nio-server")
        let baton = try BatonFixture(workers: 2, command: [server])
        defer { baton.cleanup() }
        let load = HTTP2LoadGenerator.start(
            port: baton.port, clients: clients, gap: .milliseconds(50), maxDuration: .seconds(120))
        defer { load.stop() }
        let mark = baton.process.mark()
        // Every client holds a connection to generation 1 and has sent several streams on it.
        try load.waitForReport(timeout: .seconds(30)) { report in
            report.clients.allSatisfy { $0.lastGeneration == "1" && $0.servedByLastGeneration >= 5 }
        }

        for generation in 2...(reloads + 1) {
            let result = try baton.client(["reload", "--wait"])
            #expect(result.status == .exited(0), "\(result.output)")
            #expect(result.output.contains("reload ok: gen=\(generation) serving in "), "\(result.output)")
            // Every client has had its GOAWAY and several answers from the new generation, on a
            // new connection: the next reload drains that one.
            try load.waitForReport(timeout: .seconds(30)) { report in
                report.clients.allSatisfy { $0.lastGeneration == String(generation) && $0.servedByLastGeneration >= 5 }
            }
        }
        for generation in 1...reloads {
            try baton.process.waitForLine(after: mark, timeout: .seconds(30), containing: "gen=\(generation) exited")
        }
        let report = load.stop()
        print("swift-nio example, \(clients) HTTP/2 clients, \(reloads) reloads: \(report)")

        #expect(report.failed == 0, "failures: \(report.failures)")
        #expect(report.perGeneration.keys.sorted() == (1...(reloads + 1)).map(String.init), "\(report)")
        for (index, client) in report.clients.enumerated() {
            // One GOAWAY pair per drained connection, and a new connection after each drain.
            #expect(client.goAways >= 2 * reloads, "h2 client \(index): \(client)")
            #expect(client.movesAfterGoAway >= reloads, "h2 client \(index): \(client)")
            #expect(client.connections == client.movesAfterGoAway + 1, "h2 client \(index): \(client)")
            #expect(client.served >= 5 * (reloads + 1), "h2 client \(index): \(client)")
        }
        #expect(report.closedWithoutGoAway == 0, "\(report)")
        let lines = baton.process.lines[mark...]
        #expect(lines.filter { $0.contains("] drain after signal 15 within 30.0 seconds: stopped accepting") }.count == 2 * reloads)
        #expect(lines.filter { $0.hasSuffix("] drained") }.count == 2 * reloads)
        #expect(!baton.process.lines.contains { $0.contains("killed by") })
    }
}
