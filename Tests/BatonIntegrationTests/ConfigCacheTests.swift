import BatonTestSupport
import Foundation
import Testing

extension IntegrationTests {
    /// A reload reads the configuration file every time but parses it again only when its bytes
    /// changed (baton's ConfigurationReloader): the result must always be what the file says now.
    @Suite struct ConfigCache {
        /// Reloads and waits for the master's log to confirm `generation` serves; returns how
        /// many workers that generation started.
        static func reload(_ baton: BatonFixture, expecting generation: Int) throws -> Int {
            let mark = baton.process.mark()
            #expect(try baton.client(["reload", "--wait"]).status == .exited(0))
            try baton.process.waitForLine(after: mark, containing: "reload ok: gen=\(generation) ")
            return baton.workerPIDs(generation: generation).count
        }

        @Test func theFileIsFollowedThroughUnchangedChangedAndChangedBack() throws {
            let one = try ConfigReload.config(workers: 1, listeners: [("http", "tcp://127.0.0.1:0")])
            let two = one.replacingOccurrences(of: "workers = 1", with: "workers = 2")
            #expect(two != one)
            let (baton, path, directory) = try ConfigReload.start(one)
            defer { baton.cleanup(); directory.cleanup() }

            #expect(try Self.reload(baton, expecting: 2) == 1, "unchanged file")
            try two.write(toFile: path, atomically: true, encoding: .utf8)
            #expect(try Self.reload(baton, expecting: 3) == 2, "changed file")
            // Back to bytes parsed before: a cache keyed on anything but the bytes just read
            // would keep two workers here.
            try one.write(toFile: path, atomically: true, encoding: .utf8)
            #expect(try Self.reload(baton, expecting: 4) == 1, "file changed back")

            // A bad edit is refused even though a good parse is cached, and the good file after
            // it is accepted again.
            try one.replacingOccurrences(of: "workers = 1", with: "wrokers = 1")
                .write(toFile: path, atomically: true, encoding: .utf8)
            let refused = try baton.client(["reload", "--wait"])
            #expect(refused.status == .exited(1))
            #expect(refused.output.contains("unknown key \"wrokers\""), "\(refused.output)")
            // (The refused reload used generation 5.)
            try one.write(toFile: path, atomically: true, encoding: .utf8)
            #expect(try Self.reload(baton, expecting: 6) == 1, "good file after a bad one")
            #expect(try baton.get().generation == "6")
        }
    }
}
