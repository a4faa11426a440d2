/// Keeps systemd's fd store in step with the master's listeners, so that a restarted or crashed
/// master gets its self-bound sockets back (as named `LISTEN_FDS`) and clients wait in the
/// accept queue instead of being refused.
///
/// Self-bound sockets are stored under their listener's name (`FDSTORE=1` + `FDNAME=`); sockets
/// systemd passed are not, it holds them already. systemd removes stored fds by name only
/// (`FDSTOREREMOVE=1`), so when a name loses a socket the whole name is removed and what it still
/// has is stored again, sockets systemd passed included: they may have come from the store, and a
/// socket-unit socket stored twice only comes back as a duplicate that activation closes.
public struct SystemdFDStore: Sendable {
    let notifier: SystemdNotifier
    /// Every socket each name had at the last sync.
    private var current: [String: Set<SocketIdentity>] = [:]
    /// What this master stored, by name.
    private var stored: [String: Set<SocketIdentity>] = [:]

    public init(notifier: SystemdNotifier) {
        self.notifier = notifier
    }

    /// At start-up, after `SocketActivation.activate`: drops from the store the names of fds that
    /// matched no listener (stale entries), then stores the self-bound listeners.
    public mutating func start(_ listeners: ActivatedListeners) {
        let names = Set(listeners.sockets.map(\.name))
        var restoring: Set<String> = []
        var removed: Set<String> = []
        for rejection in listeners.rejected {
            let name = rejection.socket.name
            if names.contains(name) {
                restoring.insert(name)
            } else if removed.insert(name).inserted {
                notifier.removeStoredFDs(name: name)
            }
        }
        sync(listeners.sockets, restoring: restoring)
    }

    /// After the listeners changed (a reload): stores new self-bound sockets, re-stores a name that
    /// lost a socket, removes the names no longer configured. Cheap when nothing changed.
    ///
    /// - Parameter restoring: names to remove and store again whatever happened.
    public mutating func sync(_ sockets: [BoundSocket], restoring: Set<String> = []) {
        var order: [String] = []
        var groups: [String: [BoundSocket]] = [:]
        for socket in sockets {
            if groups[socket.name] == nil { order.append(socket.name) }
            groups[socket.name, default: []].append(socket)
        }
        for name in current.keys.sorted() where groups[name] == nil {
            notifier.removeStoredFDs(name: name)
            stored[name] = nil
        }
        var next: [String: Set<SocketIdentity>] = [:]
        for name in order {
            let group = groups[name]!.compactMap { socket in SocketIdentity(fd: socket.fd).map { (socket, $0) } }
            let identities = Set(group.map(\.1))
            next[name] = identities
            let lostOne = current[name].map { !$0.isSubset(of: identities) } ?? false
            if lostOne || restoring.contains(name) {
                notifier.removeStoredFDs(name: name)
                notifier.storeFDs(name: name, fds: group.map(\.0.fd))
                stored[name] = identities
                continue
            }
            let fresh = group.filter { socket, identity in
                !socket.fromSystemd && !(stored[name]?.contains(identity) ?? false)
            }
            guard !fresh.isEmpty else { continue }
            notifier.storeFDs(name: name, fds: fresh.map(\.0.fd))
            stored[name, default: []].formUnion(fresh.map(\.1))
        }
        current = next
    }
}
