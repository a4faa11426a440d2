import Glibc

/// An inet address to bind, as `getaddrinfo(AI_PASSIVE)` resolves a configured host and port: what
/// the binder binds (the first result) and what socket activation compares received sockets with
/// (every result). One place for the lookup, so both see the same addresses.
struct PassiveAddress {
    var family: CInt
    var socketType: CInt
    var storage: sockaddr_storage
    var length: socklen_t

    /// Every address `host:port` resolves to, in getaddrinfo's order; the error text of
    /// `gai_strerror` when it resolves to none.
    static func resolve(host: String, port: UInt16, datagram: Bool) -> Result<[PassiveAddress], ResolveError> {
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        hints.ai_socktype = CInt(datagram ? SOCK_DGRAM.rawValue : SOCK_STREAM.rawValue)
        var results: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &results)
        guard status == 0 else { return .failure(ResolveError(description: String(cString: gai_strerror(status)))) }
        defer { freeaddrinfo(results) }
        var found: [PassiveAddress] = []
        var cursor = results
        while let info = cursor {
            var storage = sockaddr_storage()
            withUnsafeMutableBytes(of: &storage) { raw in
                raw.copyMemory(from: UnsafeRawBufferPointer(start: info.pointee.ai_addr, count: Int(info.pointee.ai_addrlen)))
            }
            found.append(PassiveAddress(
                family: info.pointee.ai_family, socketType: info.pointee.ai_socktype, storage: storage,
                length: info.pointee.ai_addrlen))
            cursor = info.pointee.ai_next
        }
        guard !found.isEmpty else { return .failure(ResolveError(description: "no address")) }
        return .success(found)
    }

    struct ResolveError: Error {
        var description: String
    }
}
