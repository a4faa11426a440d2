import BatonRuntime
import Glibc
import Testing

/// The master raises its soft open-file limit to the hard one at start-up.
@Suite struct ResourceLimitsTests {
    @Test func softOpenFileLimitIsRaisedToTheHardLimit() throws {
        var limit = rlimit()
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        try #require(getrlimit(resource, &limit) == 0)
        let original = limit
        defer { var restore = original; _ = setrlimit(resource, &restore) }
        // One below the hard limit: low enough to see the raise, high enough for any other test
        // of this process running meanwhile.
        try #require(limit.rlim_max > 64)
        limit.rlim_cur = limit.rlim_max - 1
        try #require(setrlimit(resource, &limit) == 0)

        let raised = try ResourceLimits.raiseOpenFileLimit().get()
        #expect(raised.previousSoft == UInt64(original.rlim_max - 1))
        #expect(raised.soft == UInt64(original.rlim_max))
        #expect(raised.hard == UInt64(original.rlim_max))
        var now = rlimit()
        try #require(getrlimit(resource, &now) == 0)
        #expect(now.rlim_cur == original.rlim_max)
    }
}
