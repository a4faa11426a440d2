// libFuzzer target: the configuration loader (TOMLKit, then baton's own reading and checks). The
// master parses the file on every reload, so no file may crash it, and every refusal must name
// the file, as the operator reads it.
import BatonConfig
import BatonCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfigLoader(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    // ConfigFile refuses invalid UTF-8 before parsing; only text reaches the parser.
    guard let text = String(validating: UnsafeBufferPointer(start: data, count: data == nil ? 0 : size), as: UTF8.self)
    else { return 0 }
    do {
        let configuration = try ConfigLoader.parse(text, fileName: "fuzz.toml")
        _ = configuration.problems()
        _ = configuration.effectiveProgramName
    } catch {
        precondition(error.description.hasPrefix("fuzz.toml"), "an error without the file name: \(error)")
    }
    return 0
}
