/// baton's channel (`handoff = "channel"`): one `SOCK_SEQPACKET` socket per worker, at the
/// worker's fd 3 (`BATON_CHANNEL_FD=3`). Every datagram is one message in the grammar of
/// sd_notify (`NotifyMessage`). This is the pure half: what the messages say, and which ones a
/// worker may send; the runtime moves them and their fds.
public enum ChannelProtocol {
    /// The largest message the master sends (a worker's messages are bounded by
    /// `NotifyMessage.maximumSize`, as on the notify socket).
    public static let maximumMessageSize = 65536
    /// The most fds one message carries (the kernel's `SCM_MAX_FD` is 253).
    public static let maximumFDsPerMessage = 252
    /// The words a worker may send on its channel.
    public static let workerKeys = ["READY", "STATUS", "STOPPING", "ERRNO"]

    /// One message of the handover: its text, and the sockets (a range of the handed list) whose
    /// fds travel with it in `SCM_RIGHTS`, in order.
    public struct HandoffMessage: Sendable, Equatable {
        public var text: String
        public var sockets: Range<Int>

        public init(text: String, sockets: Range<Int>) {
            self.text = text
            self.sockets = sockets
        }
    }

    /// The handover of sockets named `names` (in fd order, a name repeated once per socket):
    /// `LISTEN_FDS=n`, `LISTEN_FDNAMES=a:b`, `BATON_GENERATION=g` per message, each naming only
    /// its own fds, at most `maximumFDsPerMessage` fds and `maximumMessageSize` bytes each, and
    /// `MORE=1` on all but the last. No sockets still make one message (`LISTEN_FDS=0`).
    public static func handoff(names: [String], generation: Int) -> [HandoffMessage] {
        func render(_ range: Range<Int>, more: Bool) -> String {
            var fields: [(key: String, value: String)] = [
                ("LISTEN_FDS", String(range.count)),
                ("LISTEN_FDNAMES", names[range].joined(separator: ":")),
                ("BATON_GENERATION", String(generation)),
            ]
            if more { fields.append(("MORE", "1")) }
            return NotifyMessage(fields: fields).text
        }
        // The size of a message of `count` fds whose names take `nameBytes`, MORE=1 included.
        let fixed = "LISTEN_FDS=\nLISTEN_FDNAMES=\nBATON_GENERATION=\(generation)\nMORE=1".utf8.count
        func size(count: Int, nameBytes: Int) -> Int {
            fixed + String(count).utf8.count + nameBytes + max(count - 1, 0)
        }
        var messages: [HandoffMessage] = []
        var start = 0
        repeat {
            var end = start
            var nameBytes = 0
            // Grow the batch while the message still fits.
            while end < names.count, end - start < maximumFDsPerMessage,
                size(count: end - start + 1, nameBytes: nameBytes + names[end].utf8.count) <= maximumMessageSize
            {
                nameBytes += names[end].utf8.count
                end += 1
            }
            // A single name too long for any message cannot happen with valid names (64 bytes).
            if end == start && start < names.count { end += 1 }
            messages.append(HandoffMessage(text: render(start..<end, more: end < names.count), sockets: start..<end))
            start = end
        } while start < names.count
        return messages
    }

    /// `DRAIN=1` with `TIMEOUT_USEC=` (relative, in microseconds): stop accepting and finish
    /// within the timeout.
    public static func drain(timeout: Duration) -> String {
        NotifyMessage(fields: [("DRAIN", "1"), ("TIMEOUT_USEC", String(max(timeout.microseconds, 0)))]).text
    }

    /// What a worker said on its channel.
    public enum Notice: Sendable, Equatable {
        case ready
        case status(String)
        case stopping
        case errno(Int32)
    }

    /// Reads a worker's message. The channel is baton's own protocol, so it is strict: a word
    /// that is not `READY=1`, `STATUS=…`, `STOPPING=1` or `ERRNO=<number>` rejects the whole
    /// message, and nothing in it is acted on.
    public static func notices(in message: NotifyMessage) -> Result<[Notice], NotifyMessageError> {
        var notices: [Notice] = []
        for (key, value) in message.fields {
            switch key {
            case "READY":
                guard value == "1" else { return .failure(.init("READY=\(value.prefix(64)): only READY=1 is defined")) }
                notices.append(.ready)
            case "STOPPING":
                guard value == "1" else {
                    return .failure(.init("STOPPING=\(value.prefix(64)): only STOPPING=1 is defined"))
                }
                notices.append(.stopping)
            case "STATUS":
                notices.append(.status(value))
            case "ERRNO":
                guard let number = Int32(value), number >= 0 else {
                    return .failure(.init("ERRNO=\(value.prefix(64)): expected a non-negative errno number"))
                }
                notices.append(.errno(number))
            default:
                return .failure(.init("unknown key \(key) (a worker may send \(workerKeys.joined(separator: ", ")))"))
            }
        }
        return .success(notices)
    }

    /// Parses and checks a worker's message in one step.
    public static func notices<Bytes: Collection>(parsing bytes: Bytes) -> Result<[Notice], NotifyMessageError>
    where Bytes.Element == UInt8 {
        NotifyMessage.parse(bytes).flatMap { notices(in: $0) }
    }
}
