import Glibc

/// Sends sd_notify messages (`READY=1`, `STOPPING=1`) to baton: on the channel when the sockets
/// came over one, else as one datagram to `$NOTIFY_SOCKET` (a path or an `@abstract` name).
struct Notifier {
    private enum Target {
        case none
        case channel(Int32)
        case socket(fd: Int32, address: SocketAddress)
    }

    private let target: Target

    /// Where the messages go; a description for the start-up output.
    let destination: String

    init(channelFD: Int32?) {
        if let channelFD {
            target = .channel(channelFD)
            destination = "channel fd \(channelFD)"
        } else if let path = environment("NOTIFY_SOCKET"), !path.isEmpty {
            let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            target = fd >= 0 ? .socket(fd: fd, address: .unix(path: path)) : .none
            destination = path
        } else {
            target = .none
            destination = "nowhere (no NOTIFY_SOCKET)"
        }
    }

    /// Sends `message` as one datagram. Returns an error text when it could not be sent.
    @discardableResult
    func send(_ message: String) -> String? {
        let bytes = Array(message.utf8)
        var sent: Int
        switch target {
        case .none:
            return nil
        case .channel(let fd):
            repeat {
                sent = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
            } while sent < 0 && errno == EINTR
        case .socket(let fd, let address):
            let result = address.withSockaddr { pointer, length in
                var sent: Int
                repeat {
                    sent = bytes.withUnsafeBytes {
                        sendto(fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL), pointer, length)
                    }
                } while sent < 0 && errno == EINTR
                return sent
            }
            guard let result else { return "NOTIFY_SOCKET=\(address.text) is not a usable address" }
            sent = result
        }
        return sent < 0 ? "sending \(message) to \(destination): \(errnoText())" : nil
    }
}
