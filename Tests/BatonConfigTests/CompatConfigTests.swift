import BatonConfig
import BatonCore
import Testing

@Suite struct CompatConfigTests {
    private func program(_ lines: String) throws -> ProgramSpec {
        try ConfigLoader.parse("[program]\nname = \"web\"\ncommand = [\"/bin/web\"]\n" + lines, fileName: "web.toml").program
    }

    @Test func einhornDrainsWithSIGUSR2UnlessTheFileNamesADrainSignal() throws {
        #expect(try program("compat = [\"einhorn\"]\n").drainSignal == 12)
        #expect(try program("compat = [\"einhorn\"]\ndrain_signal = \"SIGTERM\"\n").drainSignal == 15)
        #expect(try program("drain_signal = \"SIGINT\"\ncompat = [\"einhorn\"]\n").drainSignal == 2)
        #expect(try program("compat = [\"server-starter\"]\n").drainSignal == 15)
        #expect(try program("").drainSignal == 15)
    }
}
