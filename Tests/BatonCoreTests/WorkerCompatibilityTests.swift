import BatonCore
import Testing

@Suite struct WorkerCompatibilityTests {
    @Test func einhornVariablesNameEveryFdTheIndexTheMasterAndTheSocket() {
        let variables = WorkerCompatibility.einhornVariables(fdCount: 2, childIndex: 1, masterPID: 4000, socketPath: "/tmp/e/einhorn.sock")
        #expect(variables.map { "\($0.key)=\($0.value)" } == [
            "EINHORN_FD_COUNT=2", "EINHORN_FD_0=3", "EINHORN_FD_1=4", "EINHORN_CHILD_INDEX=1",
            "EINHORN_MASTER_PID=4000", "EINHORN_SOCK_PATH=/tmp/e/einhorn.sock",
        ])
    }

    @Test func serverStarterPortListsStreamListenersWithTheirFdsInServerStartersFormat() {
        let port = WorkerCompatibility.serverStarterPort(addresses: [
            "tcp://127.0.0.1:8080", "tcp://[::1]:8080", "udp://127.0.0.1:53", "unix:/run/web.sock", "unix:@web",
        ])
        #expect(port == "127.0.0.1:8080=3;[::1]:8080=4;/run/web.sock=6;@web=7")
        #expect(WorkerCompatibility.serverStarterPort(addresses: []) == "")
    }

    @Test func einhornAckIsReadInJSONAndInTheRubyClientsEscapedYAML() {
        let json = EinhornCommand.parse(line: Array(#"{"command":"worker:ack","pid":4121}"#.utf8))
        #expect(json == .success(EinhornCommand(command: "worker:ack", pid: 4121)))
        let yaml = EinhornCommand.parse(line: Array("---%0Acommand: worker:ack%0Apid: 77%0A".utf8))
        #expect(yaml == .success(EinhornCommand(command: "worker:ack", pid: 77)))
        let quoted = EinhornCommand.parse(line: Array("--- %0A'command': \"worker:ack\"%0A".utf8))
        #expect(quoted == .success(EinhornCommand(command: "worker:ack", pid: nil)))
        let spaced = EinhornCommand.parse(line: Array(#" { "pid" : 9 , "command" : "worker:ack", "x": null, "y": true } "#.utf8))
        #expect(spaced == .success(EinhornCommand(command: "worker:ack", pid: 9)))
        let escapedPercent = EinhornCommand.parse(line: Array(#"{"command":"say 100%25"}"#.utf8))
        #expect(escapedPercent == .success(EinhornCommand(command: "say 100%", pid: nil)))
    }

    @Test func malformedEinhornLinesAreRejectedWithAReason() {
        func reason(_ text: String) -> String? {
            if case .failure(let error) = EinhornCommand.parse(line: Array(text.utf8)) { return error.description }
            return nil
        }
        #expect(reason(#"{"command":"worker:ack","pid":"x"}"#) == "pid x is not a process id")
        #expect(reason(#"{"command":"worker:ack","pid":-3}"#) == "pid -3 is not a process id")
        #expect(reason(#"{"pid":3}"#) == "no \"command\"")
        #expect(reason(#"{"command":["worker:ack"]}"#) == "expected a JSON object of strings and numbers")
        #expect(reason(#"{"command":"worker:ack""#) == "expected a JSON object of strings and numbers")
        #expect(reason("hello") == "expected a mapping of \"key: value\" lines")
        #expect(EinhornCommand.parse(line: [0xFF, 0xFE]) == .failure(.init("not UTF-8")))
    }
}
