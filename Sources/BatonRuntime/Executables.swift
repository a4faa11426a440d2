import Glibc

/// baton's executables find each other in one directory: `baton`, `baton-master` and
/// `baton-config` are installed side by side, as `swift build` leaves them.
public enum Executables {
    /// The master process: `baton run` becomes it (exec, same pid).
    public static let master = "baton-master"

    /// The path of the executable `name` in the directory of the running one; just `name` when
    /// that directory cannot be told.
    public static func beside(_ name: String) -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return name }
        let executable = String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let slash = executable.lastIndex(of: "/") else { return name }
        return String(executable[...slash]) + name
    }
}
