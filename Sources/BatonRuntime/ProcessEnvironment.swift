import Glibc

public enum ProcessEnvironment {
    /// The process environment in order, read from `environ`.
    public static func read() -> [(key: String, value: String)] {
        var result: [(key: String, value: String)] = []
        var cursor = environ
        while let entry = cursor.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                result.append((String(text[..<equals]), String(text[text.index(after: equals)...])))
            }
            cursor += 1
        }
        return result
    }
}
