import BatonTestSupport
import Foundation
import Testing

extension IntegrationTests {
    /// The master binds a privileged port as root; its workers run unprivileged.
    @Suite struct Privileges {
        /// A free TCP port below 1024 on 127.0.0.1, or nil.
        static func freePrivilegedPort() -> Int? {
            for port in (700..<1000).shuffled() {
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                defer { close(fd) }
                var address = sockaddr_in()
                address.sin_family = sa_family_t(AF_INET)
                address.sin_port = UInt16(port).bigEndian
                address.sin_addr.s_addr = inet_addr("127.0.0.1")
                let bound = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
                if bound == 0 { return port }
            }
            return nil
        }

        static func uid(of pid: pid_t) -> String? {
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
            return status.split(separator: "\n").first { $0.hasPrefix("Uid:") }?
                .split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().first.map(String.init)
        }

        @Test(.enabled(if: getuid() == 0, "needs root to bind below 1024 and change user"))
        func workerRunsAsNobodyOnAPrivilegedPort() throws {
            let port = try #require(Self.freePrivilegedPort(), "no free port below 1024")
            let directory = try TemporaryDirectory()
            defer { directory.cleanup() }
            let config = try directory.write("web.toml", """
                [[listener]]
                name = "http"
                address = "tcp://127.0.0.1:\(port)"

                [program]
                name = "web"
                command = ["\(try Binaries.testWorker())", "--ready-delay", "20"]
                user = "nobody"
                workers = 1

                """)
            let baton = try BatonFixture(workers: nil, batonArguments: ["--config", config], listen: [], command: [])
            defer { baton.cleanup() }
            #expect(baton.port == port)
            let response = try baton.get()
            let pid = try #require(response.pid)
            #expect(Self.uid(of: pid) == "65534")
            #expect(Self.uid(of: baton.process.pid) == "0")
            // PR_SET_PDEATHSIG was set after the credential change, so it survived it.
            baton.process.signal(SIGKILL)
            _ = try baton.process.waitForExit()
            #expect(waitUntilGone(pid, timeout: .seconds(20)), "worker \(pid) outlived its master")
        }
    }
}
