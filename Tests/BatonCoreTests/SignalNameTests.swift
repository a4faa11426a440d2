import BatonCore
import Testing

@Suite struct SignalNameTests {
    @Test(arguments: [
        ("SIGTERM", 15), ("TERM", 15), ("SIGHUP", 1), ("INT", 2), ("SIGKILL", 9), ("SIGUSR1", 10),
        ("USR2", 12), ("SIGCHLD", 17), ("SIGWINCH", 28), ("SIGIO", 29), ("POLL", 29), ("SIGIOT", 6),
        ("SIGSYS", 31), ("SIGSTKFLT", 16), ("1", 1), ("15", 15), ("64", 64),
    ] as [(String, Int32)])
    func parsesNamesAndNumbers(text: String, number: Int32) {
        #expect(SignalName.parse(text) == number)
    }

    @Test(arguments: ["sigterm", "term", "SigTerm", "SIG", "", "0", "65", "-1", "015", "1x", "SIGFOO", "SIGTERM ", " 15", "99999999999"])
    func refusesEverythingElse(text: String) {
        #expect(SignalName.parse(text) == nil)
    }

    @Test func namesEveryStandardSignalAndRoundTrips() {
        let expected = [
            "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE", "SIGKILL",
            "SIGUSR1", "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM", "SIGSTKFLT", "SIGCHLD",
            "SIGCONT", "SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGURG", "SIGXCPU", "SIGXFSZ",
            "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO", "SIGPWR", "SIGSYS",
        ]
        for (offset, name) in expected.enumerated() {
            let number = Int32(offset + 1)
            #expect(SignalName.name(number) == name)
            #expect(SignalName.parse(name) == number)
        }
    }

    @Test func namesOtherNumbersPlainly() {
        #expect(SignalName.name(42) == "signal 42")
        #expect(SignalName.name(0) == "signal 0")
        #expect(SignalName.name(-3) == "signal -3")
        #expect(SignalName.name(32) == "signal 32")
    }
}
