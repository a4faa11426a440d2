// libFuzzer target: the control socket's newline-delimited JSON. The master decodes every line a
// local client sends (decodeRequest); a client decodes every line the master sends back
// (decodeMessage). No input may crash either, and an accepted request must survive encoding.
import BatonRuntime

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzControlProtocol(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: data == nil ? 0 : size)
    switch ControlCodec.decodeRequest(bytes) {
    case .success(let request):
        let line = ControlCodec.encode(request)
        precondition(line.last == UInt8(ascii: "\n") && !line.dropLast().contains(UInt8(ascii: "\n")), "not one line")
        guard case .success(let again) = ControlCodec.decodeRequest(line.dropLast()), again == request else {
            preconditionFailure("round trip changed \(request)")
        }
    case .failure(let error):
        precondition(!error.message.isEmpty)
    }
    _ = try? ControlCodec.decodeMessage(bytes)
    return 0
}
