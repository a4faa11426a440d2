import Foundation
import Synchronization

/// A fresh directory under /tmp (mkdtemp), removed with everything in it by `cleanup()` or when the
/// last reference goes. Paths stay short, so Unix socket paths fit in `sun_path`.
public final class TemporaryDirectory: Sendable {
    /// The absolute path of the directory.
    public let path: String
    private let removed = Mutex(false)

    /// Creates `/tmp/<prefix>.XXXXXX`.
    public init(prefix: String = "baton-test") throws {
        var template = Array("/tmp/\(prefix).XXXXXX".utf8CString)
        let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard created != nil else {
            throw TestSupportError("mkdtemp /tmp/\(prefix).XXXXXX: \(String(cString: strerror(errno)))")
        }
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The path of `name` inside the directory (nothing is created).
    public func file(_ name: String) -> String {
        path + "/" + name
    }

    /// Writes `text` to `name` inside the directory and returns its path.
    @discardableResult
    public func write(_ name: String, _ text: String) throws -> String {
        let target = file(name)
        try text.write(toFile: target, atomically: true, encoding: .utf8)
        return target
    }

    /// Removes the directory and its content; safe to call more than once.
    public func cleanup() {
        let first = removed.withLock { removed in
            defer { removed = true }
            return !removed
        }
        if first { try? FileManager.default.removeItem(atPath: path) }
    }

    deinit {
        cleanup()
    }
}
