/// Parsing and printing of the configuration's durations: `<int>(ms|s|m|h)`.
public enum DurationText {
    /// `"250ms"`, `"30s"`, `"5m"`, `"1h"`; `nil` for anything else.
    public static func parse(_ text: String) -> Duration? {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        for (suffix, millis) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            // "5ms" also ends in "s"; the digits check below rejects "5m" read as suffix "s".
            guard !number.isEmpty, number.allSatisfy({ $0.isASCII && $0.isNumber }),
                let value = Int64(number), value <= Int64.max / 1_000_000 / millis
            else { continue }
            return .milliseconds(value * millis)
        }
        return nil
    }

    /// The short human form used in logs: `182ms`, `1.5s`, `2m3s`.
    public static func format(_ duration: Duration) -> String {
        let millis = duration.milliseconds
        if millis < 1000 { return "\(millis)ms" }
        if millis < 60_000 {
            let tenths = (millis % 1000) / 100
            return tenths == 0 ? "\(millis / 1000)s" : "\(millis / 1000).\(tenths)s"
        }
        let seconds = millis / 1000
        return seconds % 60 == 0 ? "\(seconds / 60)m" : "\(seconds / 60)m\(seconds % 60)s"
    }
}

extension Duration {
    /// Whole milliseconds, rounded down.
    public var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    /// Whole microseconds, rounded down (`BATON_DRAIN_TIMEOUT_USEC`, `TIMEOUT_USEC=`).
    public var microseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000 + attoseconds / 1_000_000_000_000
    }

    public var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
