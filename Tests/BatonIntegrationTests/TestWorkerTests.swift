import BatonTestSupport
import CBaton
import Foundation
import Testing

extension IntegrationTests {
    /// `baton-test-worker` on its own: started directly, sockets bound with `--listen` or handed
    /// over like systemd does, drained with signals.
    @Suite struct TestWorker {
        /// A running worker and the port of its first TCP listener.
        struct Started {
            let process: SupervisedProcess
            let port: Int
        }

        /// Starts the worker on 127.0.0.1:0 and waits until it is ready (it accepts only then).
        func startWorker(
            _ arguments: [String] = [],
            environment: [String: String] = [:]
        ) throws -> Started {
            let process = try SupervisedProcess(
                executable: try Binaries.testWorker(),
                arguments: ["--listen", "127.0.0.1:0"] + arguments,
                environment: SupervisedProcess.cleanEnvironment().merging(environment) { $1 }
            )
            let listener = try process.waitForLine(containing: "listener http ipv4 ")
            let port = try #require(Self.port(in: listener), "no port in '\(listener)'")
            try process.waitForLine(where: Self.isReadyLine)
            return Started(process: process, port: port)
        }

        /// "worker pid=N ready", printed once READY=1 was sent.
        static func isReadyLine(_ line: String) -> Bool {
            line.hasPrefix("worker pid=") && line.hasSuffix(" ready")
        }

        /// The port at the end of a "listener NAME FAMILY HOST:PORT" line.
        static func port(in line: String) -> Int? {
            line.split(separator: ":").last.flatMap { Int($0) }
        }

        @Test func answersWithItsIdentity() throws {
            let worker = try startWorker(environment: ["BATON_GENERATION": "7", "BATON_WORKER": "2"])
            defer { worker.process.cleanup() }
            let startLine = try worker.process.waitForLine(containing: "listening on")
            #expect(startLine == "worker pid=\(worker.process.pid) gen=7 listening on 1 sockets")

            let response = try HTTPClient.get(port: worker.port)
            #expect(response.status == 200)
            #expect(response.body == "pid=\(worker.process.pid) gen=7 worker=2\n")
            #expect(response.header("X-Baton-Generation") == "7")
            #expect(response.header("Content-Length") == "\(response.body.utf8.count)")

            let missing = try HTTPClient.get(port: worker.port, path: "/nothing-here")
            #expect(missing.status == 404)
        }

        @Test func keepAliveAndPipelining() throws {
            let worker = try startWorker()
            defer { worker.process.cleanup() }
            let connection = try KeepAliveConnection(port: worker.port)
            for _ in 0..<3 {
                let response = try connection.get()
                #expect(response.status == 200)
                #expect(response.pid == worker.process.pid)
                #expect(!response.connectionClose)
            }

            // Three requests in one write, the first held back: answers come in request order.
            // A POST body in between is read and discarded.
            try connection.send(
                connection.request("/slow?ms=200")
                    + "POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello"
                    + connection.request("/listeners")
            )
            let slow = try connection.readResponse()
            let posted = try connection.readResponse()
            let listeners = try connection.readResponse()
            #expect(slow.body.hasPrefix("pid=\(worker.process.pid) "))
            #expect(posted.status == 200 && posted.body.hasPrefix("pid="))
            #expect(listeners.body == "http ipv4 127.0.0.1:\(worker.port)\n")

            // Connection: close is honoured.
            let last = try connection.get(extraHeaders: ["Connection": "close"])
            #expect(last.connectionClose)
            #expect(try connection.waitForServerClose() < .seconds(5))
        }

        @Test func manyPipelinedRequestsAreAnsweredInOrder() throws {
            let worker = try startWorker(["--idle-grace", "100"], environment: ["PADDING": String(repeating: "x", count: 4000)])
            defer { worker.process.cleanup() }
            let connection = try KeepAliveConnection(port: worker.port)
            // Far more response bytes than the socket buffers hold before the client reads any:
            // the worker must stop reading, keep its partial writes, and resume.
            let count = 600
            try connection.send((0..<count).map { connection.request($0 % 2 == 0 ? "/env" : "/") }.joined())
            for index in 0..<count {
                let response = try connection.readResponse()
                #expect(response.status == 200)
                if index % 2 == 0 {
                    #expect(response.body.contains("PADDING=xxx"), "response \(index)")
                } else {
                    #expect(response.body.hasPrefix("pid="), "response \(index)")
                }
            }
        }

        @Test func rejectsAnOversizedRequestHead() throws {
            let worker = try startWorker()
            defer { worker.process.cleanup() }
            let connection = try KeepAliveConnection(port: worker.port)
            try connection.send("GET / HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: 20_000) + "\r\n\r\n")
            let response = try connection.readResponse()
            #expect(response.status == 431)
            #expect(response.connectionClose)
        }

        @Test func neverReadyNeverAccepts() throws {
            let directory = try TemporaryDirectory()
            let notify = try NotifySocket(directory.file("notify"))
            let worker = try SupervisedProcess(
                executable: try Binaries.testWorker(),
                arguments: ["--listen", "127.0.0.1:0", "--never-ready"],
                environment: SupervisedProcess.cleanEnvironment().merging(["NOTIFY_SOCKET": notify.environmentValue]) { $1 }
            )
            defer { worker.cleanup() }
            let line = try worker.waitForLine(containing: "listener http ipv4 ")
            let port = try #require(Self.port(in: line))
            // The connection waits in the accept queue and is never answered.
            #expect(throws: HTTPClientError.self) { try HTTPClient.get(port: port, timeout: .milliseconds(500)) }
            #expect(throws: TestSupportError.self) { try notify.receive(timeout: .milliseconds(100)) }
            worker.signal(SIGTERM)
            #expect(try worker.waitForExit() == .exited(0))
        }

        @Test func requestWithinGraceIsAnsweredWithConnectionClose() throws {
            let worker = try startWorker(["--idle-grace", "5000"])
            defer { worker.process.cleanup() }
            let connection = try KeepAliveConnection(port: worker.port)
            #expect(try !connection.get().connectionClose)

            let mark = worker.process.mark()
            worker.process.signal(SIGTERM)
            try worker.process.waitForLine(after: mark, containing: "draining after SIGTERM")

            // The idle connection survived the signal; its next request gets the last answer.
            let response = try connection.get()
            #expect(response.status == 200)
            #expect(response.connectionClose)
            #expect(try connection.waitForServerClose() < .seconds(5))
            connection.close()  // else the worker waits up to 2 s for our side to close

            // Its listener is closed (it was the only holder): new connections are refused.
            #expect(throws: HTTPClientError.self) { try HTTPClient.get(port: worker.port) }
            #expect(try worker.process.waitForExit() == .exited(0))
            // The line may still be in the pipe when the exit is seen: wait for it.
            try worker.process.waitForLine(containing: "drained")
        }

        @Test func idleConnectionIsClosedAfterTheGrace() throws {
            let worker = try startWorker(["--idle-grace", "400"])
            defer { worker.process.cleanup() }
            let connection = try KeepAliveConnection(port: worker.port)
            _ = try connection.get()

            let signalled = ContinuousClock.now
            worker.process.signal(SIGTERM)
            _ = try connection.waitForServerClose()
            let closedAfter = ContinuousClock.now - signalled
            #expect(closedAfter >= .milliseconds(350), "closed after \(closedAfter), before the grace")
            #expect(closedAfter < .seconds(10))
            #expect(try worker.process.waitForExit() == .exited(0))
            #expect(worker.process.lines.last == "drained")
        }

        @Test func drainDeadlineClosesEverything() throws {
            let worker = try startWorker(["--idle-grace", "60000"], environment: ["BATON_DRAIN_TIMEOUT_USEC": "300000"])
            defer { worker.process.cleanup() }
            let connection = try KeepAliveConnection(port: worker.port)
            _ = try connection.get()

            let signalled = ContinuousClock.now
            worker.process.signal(SIGINT)
            _ = try connection.waitForServerClose()
            let closedAfter = ContinuousClock.now - signalled
            #expect(closedAfter >= .milliseconds(250) && closedAfter < .seconds(10), "closed after \(closedAfter)")
            try worker.process.waitForLine(containing: "drain deadline reached: closing 1 connections")
            #expect(try worker.process.waitForExit() == .exited(0))
        }

        @Test func slowRequestCompletesAfterSIGTERM() throws {
            let worker = try startWorker()
            defer { worker.process.cleanup() }
            let connection = try KeepAliveConnection(port: worker.port)
            _ = try connection.get()  // the connection is accepted before the drain begins

            let sent = ContinuousClock.now
            try connection.send(connection.request("/slow?ms=700"))
            worker.process.signal(SIGTERM)
            try worker.process.waitForLine(containing: "draining after SIGTERM")
            let response = try connection.readResponse()
            connection.close()
            #expect(ContinuousClock.now - sent >= .milliseconds(650))
            #expect(response.status == 200)
            #expect(response.connectionClose)
            #expect(try worker.process.waitForExit() == .exited(0))
        }

        @Test func ignoreDrainSurvivesSIGTERM() throws {
            let worker = try startWorker(["--ignore-drain"])
            defer { worker.process.cleanup() }
            let mark = worker.process.mark()
            worker.process.signal(SIGTERM)
            try worker.process.waitForLine(after: mark, containing: "ignoring SIGTERM")
            let response = try HTTPClient.get(port: worker.port)
            #expect(response.status == 200)
            #expect(worker.process.exitStatus == nil)

            worker.process.signal(SIGKILL)
            #expect(try worker.process.waitForExit() == .signaled(SIGKILL))
        }

        @Test func drainDelayHoldsTheExit() throws {
            let worker = try startWorker(["--drain-delay", "500"])
            defer { worker.process.cleanup() }
            let signalled = ContinuousClock.now
            worker.process.signal(SIGUSR2)
            #expect(try worker.process.waitForExit() == .exited(0))
            #expect(ContinuousClock.now - signalled >= .milliseconds(450))
        }

        @Test func crashAfterAborts() throws {
            let worker = try startWorker(["--crash-after", "2"])
            defer { worker.process.cleanup() }
            #expect(try HTTPClient.get(port: worker.port).status == 200)
            #expect(try HTTPClient.get(port: worker.port).status == 200)
            #expect(try worker.process.waitForExit() == .signaled(SIGABRT))
            try worker.process.waitForLine(containing: "crashing after 2 requests")
        }

        @Test func switchesFileChangesTheNextStart() throws {
            let directory = try TemporaryDirectory()
            let switches = directory.file("switches")
            let worker = try SupervisedProcess(
                executable: try Binaries.testWorker(),
                arguments: ["--listen", "127.0.0.1:0", "--switches-file", switches]
            )
            defer { worker.cleanup() }
            try worker.waitForLine(where: Self.isReadyLine)  // no file: a normal start
            worker.cleanup()

            try directory.write("switches", "--ready-delay 100\n--exit-before-ready 3\n")
            let failing = try SupervisedProcess(
                executable: try Binaries.testWorker(),
                arguments: ["--listen", "127.0.0.1:0", "--switches-file", switches]
            )
            defer { failing.cleanup() }
            #expect(try failing.waitForExit() == .exited(3))
            try failing.waitForLine(containing: "exiting with 3 before ready")
            #expect(!failing.lines.contains(where: Self.isReadyLine))
        }

        @Test func notifiesReadinessAfterTheDelay() throws {
            let directory = try TemporaryDirectory()
            for address in [directory.file("notify"), "@baton-test-notify-\(getpid())"] {
                let notify = try NotifySocket(address)
                let started = ContinuousClock.now
                let worker = try startWorker(["--ready-delay", "300"], environment: ["NOTIFY_SOCKET": notify.environmentValue])
                defer { worker.process.cleanup() }
                #expect(try notify.receive() == "READY=1")
                #expect(ContinuousClock.now - started >= .milliseconds(250))

                worker.process.signal(SIGTERM)
                #expect(try notify.receive() == "STOPPING=1")
                #expect(try worker.process.waitForExit() == .exited(0))
            }
        }

        @Test func servesSocketsHandedOverWithListenFDs() throws {
            let directory = try TemporaryDirectory()
            let tcp = try ListeningSocket()
            let unix = try ListeningSocket(unixPath: directory.file("admin.sock"))
            // LISTEN_PID must be the worker's own pid: the shell exports its $$ and execs it.
            let worker = try SupervisedProcess(
                executable: "/bin/sh",
                arguments: ["-c", "export LISTEN_PID=$$; exec \"$0\" \"$@\"", try Binaries.testWorker()],
                environment: SupervisedProcess.cleanEnvironment().merging([
                    "LISTEN_FDS": "2", "LISTEN_FDNAMES": "web:admin",
                ]) { $1 },
                passing: [tcp.fd, unix.fd]
            )
            defer { worker.cleanup() }
            try worker.waitForLine(where: Self.isReadyLine)
            #expect(worker.lines.contains("listener web ipv4 127.0.0.1:\(tcp.port)"))
            #expect(tcp.isNonBlocking)

            #expect(try HTTPClient.get(port: tcp.port).pid == worker.pid)
            let listeners = try HTTPClient.get(unixPath: directory.file("admin.sock"), path: "/listeners")
            #expect(listeners.body == "web ipv4 127.0.0.1:\(tcp.port)\nadmin unix \(directory.file("admin.sock"))\n")
            let fds = try HTTPClient.get(port: tcp.port, path: "/fds").body
            #expect(fds.contains("\n3 socket:[") && fds.contains("\n4 socket:["))
            #expect(fds.hasPrefix("0 /dev/null\n"))

            worker.signal(SIGTERM)
            #expect(try worker.waitForExit() == .exited(0))
            // The worker closed its copies but never shut the shared sockets down.
            #expect(tcp.isListening && unix.isListening)
        }

        @Test func servesSocketsHandedOverOnAChannel() throws {
            let web = try ListeningSocket()
            let admin = try ListeningSocket()
            var pair: [Int32] = [-1, -1]
            try #require(socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0)
            defer { close(pair[0]) }
            let worker: SupervisedProcess
            do {
                defer { close(pair[1]) }
                worker = try SupervisedProcess(
                    executable: try Binaries.testWorker(),
                    environment: SupervisedProcess.cleanEnvironment().merging(["BATON_CHANNEL_FD": "3"]) { $1 },
                    passing: [pair[1]]
                )
            }
            defer { worker.cleanup() }
            // Two messages, the first with MORE=1, each naming its own fds.
            try Self.send(pair[0], "LISTEN_FDS=1\nLISTEN_FDNAMES=web\nMORE=1\n", fds: [web.fd])
            try Self.send(pair[0], "LISTEN_FDS=1\nLISTEN_FDNAMES=admin\nBATON_GENERATION=5\n", fds: [admin.fd])
            #expect(try Self.receive(pair[0]) == "READY=1")

            let response = try HTTPClient.get(port: web.port)
            #expect(response.body == "pid=\(worker.pid) gen=5 worker=0\n")
            let listeners = try HTTPClient.get(port: admin.port, path: "/listeners").body
            #expect(listeners == "web ipv4 127.0.0.1:\(web.port)\nadmin ipv4 127.0.0.1:\(admin.port)\n")

            try Self.send(pair[0], "DRAIN=1\nTIMEOUT_USEC=10000000\n", fds: [])
            #expect(try Self.receive(pair[0]) == "STOPPING=1")
            #expect(try worker.waitForExit() == .exited(0))
            #expect(worker.lines.contains { $0.hasPrefix("draining after DRAIN=1: stopped accepting") })
        }

        static func send(_ fd: Int32, _ text: String, fds: [Int32]) throws {
            let bytes = Array(text.utf8)
            let sent = bytes.withUnsafeBytes { raw in
                fds.withUnsafeBufferPointer { baton_send_with_fds(fd, raw.baseAddress, raw.count, $0.baseAddress, Int32(fds.count)) }
            }
            try #require(sent == bytes.count, "send on the channel: \(String(cString: strerror(errno)))")
        }

        static func receive(_ fd: Int32, timeout: Int32 = 30_000) throws -> String {
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            try #require(poll(&entry, 1, timeout) == 1, "nothing on the channel within \(timeout) ms")
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, Int32(MSG_DONTWAIT)) }
            try #require(count >= 0)
            return String(decoding: buffer.prefix(count), as: UTF8.self)
        }

        @Test func listenPidParentUnderAShellWrapper() throws {
            let tcp = try ListeningSocket()
            let wrapper = try SupervisedProcess(
                executable: "/bin/sh",
                arguments: ["-c", "export LISTEN_PID=$$; \"$0\" --listen-pid-parent; exit $?", try Binaries.testWorker()],
                environment: SupervisedProcess.cleanEnvironment().merging(["LISTEN_FDS": "1"]) { $1 },
                passing: [tcp.fd]
            )
            defer { wrapper.cleanup() }
            try wrapper.waitForLine(where: Self.isReadyLine)
            let response = try HTTPClient.get(port: tcp.port)
            #expect(response.status == 200)
            #expect(response.pid != nil && response.pid != wrapper.pid)
            #expect(wrapper.lines.contains("listener unknown ipv4 127.0.0.1:\(tcp.port)"))
        }

        @Test func refusesListenFDsMeantForAnotherProcess() throws {
            let worker = try SupervisedProcess(
                executable: try Binaries.testWorker(),
                environment: SupervisedProcess.cleanEnvironment().merging(["LISTEN_FDS": "1", "LISTEN_PID": "1"]) { $1 }
            )
            defer { worker.cleanup() }
            #expect(try worker.waitForExit() == .exited(1))
            try worker.waitForLine(containing: "LISTEN_PID=1 is not this process")
        }

        @Test func printsEnvironmentAndOutputLines() throws {
            let worker = try startWorker(["--print-env", "--output-lines", "3"], environment: ["MARKER": "yes"])
            defer { worker.process.cleanup() }
            let lines = worker.process.lines
            #expect(lines.contains("MARKER=yes"))
            #expect(lines.contains("output line 1") && lines.contains("output line 3"))
            #expect(!lines.contains("output line 4"))
            #expect(try HTTPClient.get(port: worker.port, path: "/env").body.contains("MARKER=yes\n"))
        }

        /// A reload done by hand: two generations share one listening socket, the old one drains
        /// under load, and not one request fails.
        @Test func handoverBetweenTwoWorkersLosesNoRequest() throws {
            let shared = try ListeningSocket()
            func start(generation: String) throws -> SupervisedProcess {
                let worker = try SupervisedProcess(
                    executable: "/bin/sh",
                    arguments: ["-c", "export LISTEN_PID=$$; exec \"$0\" \"$@\"", try Binaries.testWorker()],
                    environment: SupervisedProcess.cleanEnvironment().merging([
                        "LISTEN_FDS": "1", "LISTEN_FDNAMES": "http", "BATON_GENERATION": generation,
                    ]) { $1 },
                    passing: [shared.fd]
                )
                try worker.waitForLine(where: Self.isReadyLine)
                return worker
            }
            var serving = try start(generation: "1")
            defer { serving.cleanup() }
            let load = LoadGenerator.start(port: shared.port, shortClients: 2, keepAliveClients: 4,
                                           keepAliveGap: .milliseconds(50), maxDuration: .seconds(60))
            defer { _ = load.stop() }
            try load.waitForReport { $0.perGeneration["1", default: 0] >= 20 }

            for generation in 2...5 {
                let next = try start(generation: "\(generation)")
                serving.signal(SIGTERM)
                #expect(try serving.waitForExit() == .exited(0), "generation \(generation - 1)")
                serving.cleanup()
                serving = next
                try load.waitForReport { $0.perGeneration["\(generation)", default: 0] >= 20 }
            }
            let report = load.stop()
            #expect(report.failed == 0, "\(report)")
            #expect(report.perGeneration.keys.sorted() == ["1", "2", "3", "4", "5"], "\(report)")
            #expect(shared.isListening)
        }

        @Test func loadGeneratorSeesNoFailures() throws {
            let worker = try startWorker()
            defer { worker.process.cleanup() }
            let load = LoadGenerator.start(port: worker.port, shortClients: 2, keepAliveClients: 2,
                                           keepAliveGap: .milliseconds(50), maxDuration: .seconds(30))
            Thread.sleep(forTimeInterval: 1)  // a second of traffic, not a synchronisation
            let report = load.stop()
            #expect(report.served > 0, "\(report)")
            #expect(report.failed == 0, "\(report)")
            #expect(report.perGeneration == ["0": report.served], "\(report)")
        }
    }
}
