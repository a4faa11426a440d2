import BatonCore
import Testing

@Suite struct DurationTextTests {
    @Test(arguments: [
        ("250ms", Duration.milliseconds(250)), ("0ms", .zero), ("0s", .zero), ("30s", .seconds(30)),
        ("5m", .seconds(300)), ("1h", .seconds(3600)), ("1500ms", .milliseconds(1500)),
    ])
    func parses(text: String, duration: Duration) {
        #expect(DurationText.parse(text) == duration)
    }

    @Test(arguments: ["", "s", "10", "1.5s", "-1s", "+1s", "1 s", " 1s", "1S", "1d", "1sec", "1m30s", "ms", "１s", "99999999999999999999s"])
    func refuses(text: String) {
        #expect(DurationText.parse(text) == nil)
    }

    @Test func refusesWhatWouldOverflowNanoseconds() {
        // Int64 nanoseconds hold about 292 years; anything that would not fit is refused.
        #expect(DurationText.parse("9223372036854775807ms") == nil)
        #expect(DurationText.parse("2562047h") == .seconds(2_562_047 * 3600))
    }

    @Test(arguments: [
        (Duration.milliseconds(182), "182ms"), (.zero, "0ms"), (.seconds(1), "1s"), (.milliseconds(1500), "1.5s"),
        (.milliseconds(1999), "1.9s"), (.seconds(60), "1m"), (.seconds(123), "2m3s"), (.seconds(3600), "60m"),
    ])
    func formats(duration: Duration, text: String) {
        #expect(DurationText.format(duration) == text)
    }

    @Test func convertsToWholeUnits() {
        let duration = Duration.milliseconds(1500) + .nanoseconds(999)
        #expect(duration.milliseconds == 1500)
        #expect(duration.microseconds == 1_500_000)
        #expect(duration.nanoseconds == 1_500_000_999)
    }
}
