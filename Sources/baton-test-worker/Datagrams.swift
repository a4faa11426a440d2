import Glibc

// UDP: a handed datagram socket is served as an echo, so a test can see which worker (and
// generation) received a datagram.
extension Listener {
    /// A datagram socket (UDP): echoed, never accepted on.
    var isDatagram: Bool { Sockets.typeName(fd) == "dgram" }
}

extension Server {
    /// Answers every datagram queued now with `gen=<gen> pid=<pid> <payload>`. MSG_DONTWAIT: the
    /// socket is shared with the master and other workers, which may take a datagram first, and
    /// its blocking mode belongs to the shared description, so it is left alone.
    func echoAll(_ fd: Int32) {
        var peer = sockaddr_storage()
        while true {
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let count = withUnsafeMutablePointer(to: &peer) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                    scratch.withUnsafeMutableBytes { recvfrom(fd, $0.baseAddress!, $0.count, Int32(MSG_DONTWAIT), address, &length) }
                }
            }
            if count < 0 {
                if errno == EINTR { continue }
                return  // EAGAIN: nothing left (or another process took it)
            }
            let reply = Array("gen=\(endpoints.identity.generation) pid=\(endpoints.identity.pid) ".utf8) + scratch[0..<count]
            _ = withUnsafePointer(to: &peer) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                    reply.withUnsafeBytes { sendto(fd, $0.baseAddress!, $0.count, Int32(MSG_DONTWAIT), address, length) }
                }
            }
        }
    }
}
