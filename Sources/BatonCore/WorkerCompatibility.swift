/// Opt-in environments of other supervisors (`compat = [...]`, `handoff = "listen-fds"` only), so
/// that their workers move to baton unchanged. The variables come on top of baton's own
/// (`LISTEN_FDS` and the rest), which such workers simply ignore.
public enum WorkerCompatibility {
    /// einhorn's graceful-shutdown signal: with `compat = ["einhorn"]` it is the drain signal
    /// unless the configuration names `drain_signal` itself.
    public static let einhornDrainSignal: Int32 = 12  // SIGUSR2

    /// What einhorn sets in a worker's environment (its `prepare_child_environment`): the number
    /// of sockets and the fd of each (baton's fds 3, 4, …), the child's index in its generation,
    /// the master's pid (einhorn's worker library checks that it is the worker's parent) and the
    /// path of the socket that takes `worker:ack`.
    public static func einhornVariables(
        fdCount: Int, childIndex: Int, masterPID: Int32, socketPath: String
    ) -> [(key: String, value: String)] {
        var variables: [(key: String, value: String)] = [("EINHORN_FD_COUNT", String(fdCount))]
        for index in 0..<fdCount {
            variables.append(("EINHORN_FD_\(index)", String(3 + index)))
        }
        variables.append(("EINHORN_CHILD_INDEX", String(childIndex)))
        variables.append(("EINHORN_MASTER_PID", String(masterPID)))
        variables.append(("EINHORN_SOCK_PATH", socketPath))
        return variables
    }

    /// `SERVER_STARTER_PORT` in Server::Starter's format, `addr=fd;addr=fd`, for the sockets at
    /// fds 3, 4, … whose bound addresses (in the configuration's syntax) are `addresses`:
    /// `127.0.0.1:8080=3;[::1]:8080=4;/run/web.sock=5`. Datagram sockets are left out (the
    /// convention describes stream listeners only), but they keep their fd numbers.
    public static func serverStarterPort(addresses: [String]) -> String {
        var entries: [String] = []
        for (index, address) in addresses.enumerated() {
            guard let key = serverStarterAddress(address) else { continue }
            entries.append("\(key)=\(3 + index)")
        }
        return entries.joined(separator: ";")
    }

    /// `tcp://127.0.0.1:8080` → `127.0.0.1:8080`, `tcp://[::1]:8080` → `[::1]:8080`,
    /// `unix:/path` → `/path`, `unix:@name` → `@name`; nil for `udp://`.
    public static func serverStarterAddress(_ address: String) -> String? {
        if address.hasPrefix("tcp://") { return String(address.dropFirst("tcp://".count)) }
        if address.hasPrefix("unix:") { return String(address.dropFirst("unix:".count)) }
        return nil
    }
}
