import Foundation
import Synchronization

/// One failed request of a load run.
public struct LoadFailure: Sendable, CustomStringConvertible {
    /// refused, reset, timeout, empty or short reply, bad status, other.
    public var kind: HTTPClientError.Kind
    /// The system call and errno, or the unexpected status.
    public var detail: String
    /// When it happened, counted from the start of the run.
    public var at: Duration
    /// Which client, e.g. "keep-alive 2".
    public var client: String

    public var description: String {
        let milliseconds = Int(at.seconds * 1000)
        return "\(kind.rawValue) at +\(milliseconds)ms (\(client)): \(detail)"
    }
}

/// What a load run saw.
public struct LoadReport: Sendable, CustomStringConvertible {
    /// Requests answered with status 200.
    public var served = 0
    /// Requests that failed in any way.
    public var failed = 0
    /// The first 20 failures.
    public var failures: [LoadFailure] = []
    /// Answers per `gen=` of the body.
    public var perGeneration: [String: Int] = [:]
    /// How long the run lasted.
    public var duration: Duration = .zero

    public var description: String {
        let generations = perGeneration.sorted { $0.key < $1.key }.map { "gen \($0.key): \($0.value)" }
            .joined(separator: ", ")
        var text = "served \(served), failed \(failed) in \(Int(duration.seconds * 1000))ms [\(generations)]"
        for failure in failures { text += "\n  " + failure.description }
        return text
    }
}

/// Keeps requests flowing against a server from dedicated threads until `stop()`, or until
/// `maxDuration` passes (it stops by itself, so a failed test never leaves it running).
///
/// Short clients connect, send one request with `Connection: close` and read to EOF, then pause
/// `shortGap`. Keep-alive clients hold one connection and send a request every `keepAliveGap`; a
/// response with `Connection: close` makes them reconnect for the next request (not a failure).
/// Every error on a request is a failure, and no request is ever retried.
public final class LoadGenerator: Sendable {
    private struct State {
        var report = LoadReport()
        var stopping = false
        var running = 0
    }

    private let state = Mutex(State())
    /// Rung on stop and when a client ends.
    private let doorbell = Doorbell()
    /// Rung after every request, for `waitForReport`.
    private let progress = Doorbell()
    private let started = ContinuousClock.now
    private let deadline: ContinuousClock.Instant

    private init(maxDuration: Duration) {
        deadline = started + maxDuration
    }

    /// Starts the clients against `host:port`.
    public static func start(
        host: String = "127.0.0.1",
        port: Int,
        path: String = "/",
        shortClients: Int = 2,
        keepAliveClients: Int = 2,
        keepAliveGap: Duration = .milliseconds(100),
        shortGap: Duration = .milliseconds(10),
        maxDuration: Duration = .seconds(120)
    ) -> LoadGenerator {
        start(.tcp(host: host, port: port), path: path, shortClients: shortClients,
              keepAliveClients: keepAliveClients, keepAliveGap: keepAliveGap, shortGap: shortGap,
              maxDuration: maxDuration)
    }

    /// Starts the clients against any target (TCP or a Unix socket).
    public static func start(
        _ target: HTTPTarget,
        path: String = "/",
        shortClients: Int = 2,
        keepAliveClients: Int = 2,
        keepAliveGap: Duration = .milliseconds(100),
        shortGap: Duration = .milliseconds(10),
        maxDuration: Duration = .seconds(120)
    ) -> LoadGenerator {
        let generator = LoadGenerator(maxDuration: maxDuration)
        generator.state.withLock { $0.running = shortClients + keepAliveClients }
        for index in 0..<shortClients {
            Thread.detachNewThread {
                generator.runShortClient("short \(index)", target, path: path, gap: shortGap)
            }
        }
        for index in 0..<keepAliveClients {
            Thread.detachNewThread {
                generator.runKeepAliveClient("keep-alive \(index)", target, path: path, gap: keepAliveGap)
            }
        }
        return generator
    }

    /// Stops every client after its current request and returns the report.
    public func stop() -> LoadReport {
        state.withLock { $0.stopping = true }
        doorbell.ring()
        // A request in flight is bounded by the 10 s socket timeouts.
        _ = doorbell.wait(until: .now + .seconds(30)) { state.withLock { $0.running == 0 } }
        return snapshot()
    }

    /// The report so far, while the clients keep running.
    public func snapshot() -> LoadReport {
        state.withLock { state in
            var report = state.report
            report.duration = ContinuousClock.now - started
            return report
        }
    }

    /// Waits until the report so far satisfies `predicate` (e.g. "generation 2 answered 20
    /// requests") and returns it; throws with the report when `timeout` passes first.
    @discardableResult
    public func waitForReport(
        timeout: Duration = .seconds(30), where predicate: (LoadReport) -> Bool
    ) throws -> LoadReport {
        let done = progress.wait(until: .now + timeout) { predicate(snapshot()) }
        let report = snapshot()
        guard done else { throw TestSupportError("load report did not reach the condition within \(timeout): \(report)") }
        return report
    }

    deinit {
        state.withLock { $0.stopping = true }
        doorbell.ring()
    }

    // MARK: - Clients

    private var shouldStop: Bool {
        state.withLock { $0.stopping } || ContinuousClock.now >= deadline
    }

    /// Sleeps `gap` unless stopped first; returns false when the client should end.
    private func pause(_ gap: Duration) -> Bool {
        let wake = min(ContinuousClock.now + gap, deadline)
        _ = doorbell.wait(until: wake) { state.withLock { $0.stopping } }
        return !shouldStop
    }

    private func finish() {
        state.withLock { $0.running -= 1 }
        doorbell.ring()
    }

    private func record(_ response: HTTPResponse, client: String) {
        guard response.status == 200 else {
            record(HTTPClientError(.badStatus, "status \(response.status): \(response.body.prefix(100))"), client: client)
            return
        }
        state.withLock { state in
            state.report.served += 1
            state.report.perGeneration[response.generation ?? "?", default: 0] += 1
        }
        progress.ring()
    }

    private func record(_ error: HTTPClientError, client: String) {
        let failure = LoadFailure(kind: error.kind, detail: error.detail, at: ContinuousClock.now - started, client: client)
        state.withLock { state in
            state.report.failed += 1
            if state.report.failures.count < 20 { state.report.failures.append(failure) }
        }
        progress.ring()
    }

    private func runShortClient(_ name: String, _ target: HTTPTarget, path: String, gap: Duration) {
        defer { finish() }
        while !shouldStop {
            do {
                record(try HTTPClient.get(target, path: path), client: name)
            } catch {
                record(error, client: name)
            }
            if !pause(gap) { return }
        }
    }

    private func runKeepAliveClient(_ name: String, _ target: HTTPTarget, path: String, gap: Duration) {
        defer { finish() }
        var connection: KeepAliveConnection?
        while !shouldStop {
            do throws(HTTPClientError) {
                let current: KeepAliveConnection
                if let connection {
                    current = connection
                } else {
                    current = try KeepAliveConnection(target)
                    connection = current
                }
                let response = try current.get(path)
                record(response, client: name)
                if response.connectionClose {
                    current.close()
                    connection = nil
                }
            } catch {
                record(error, client: name)
                connection?.close()
                connection = nil
            }
            if !pause(gap) { break }
        }
        connection?.close()
    }
}
