/// Signal names and numbers as configured (`drain_signal = "SIGTERM"`) and as reported in logs.
///
/// The numbers are Linux's on x86_64 and aarch64 (the generic table; not alpha, mips or sparc).
/// BatonCore is pure, so it keeps its own table instead of asking Glibc.
public enum SignalName {
    /// The standard signals, by number. Index 0 is unused.
    private static let names: [String] = [
        "", "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
        "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG", "XCPU",
        "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
    ]

    /// Other spellings of the same numbers, accepted but never printed.
    private static let aliases: [String: Int32] = ["IOT": 6, "POLL": 29, "CLD": 17]

    /// The highest signal number Linux has (`SIGRTMAX`).
    public static let maximum: Int32 = 64

    /// Parses `"SIGTERM"`, `"TERM"` or a number from 1 to 64 (`"15"`).
    ///
    /// Names are upper case, as in kill(1), signal(7) and systemd's `KillSignal=`; `"sigterm"` is
    /// refused rather than guessed at. Returns `nil` for anything else.
    public static func parse(_ text: String) -> Int32? {
        if let first = text.utf8.first, first >= UInt8(ascii: "0"), first <= UInt8(ascii: "9") {
            guard text.utf8.count <= 2, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                let number = Int32(text), (1...maximum).contains(number)
            else { return nil }
            return number
        }
        let bare = text.hasPrefix("SIG") ? String(text.dropFirst(3)) : text
        guard !bare.isEmpty else { return nil }
        if let index = names.firstIndex(of: bare), index > 0 { return Int32(index) }
        return aliases[bare]
    }

    /// `"SIGTERM"` for a standard signal, `"signal 42"` for the others (real-time signals included).
    public static func name(_ number: Int32) -> String {
        if number > 0, Int(number) < names.count { return "SIG" + names[Int(number)] }
        return "signal \(number)"
    }
}
