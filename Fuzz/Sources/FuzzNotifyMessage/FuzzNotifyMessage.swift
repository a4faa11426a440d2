// libFuzzer target: the KEY=VALUE grammar that the notify socket and the channel share. Every
// datagram a worker (or anything in its session) sends reaches NotifyMessage.parse, so no input
// may crash it, and what it accepts must mean the same when written out again.
import BatonCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNotifyMessage(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: data == nil ? 0 : size)
    switch NotifyMessage.parse(bytes) {
    case .success(let message):
        precondition(bytes.count <= NotifyMessage.maximumSize, "accepted \(bytes.count) bytes, over the bound")
        // The text form parses back to the very same assignments, in order.
        guard case .success(let again) = NotifyMessage.parse(Array(message.text.utf8)), again == message else {
            preconditionFailure("round trip changed \(message.fields)")
        }
        for (key, value) in message.fields {
            precondition(!key.isEmpty && !key.contains("=") && !key.contains("\n"), "bad key \(key)")
            precondition(!value.contains("\n"), "a value holds a newline")
        }
        // What the master does with a worker's message on its channel.
        _ = ChannelProtocol.notices(in: message)
    case .failure(let error):
        precondition(!error.description.isEmpty)
    }
    return 0
}
