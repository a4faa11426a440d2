import BatonCore
import Testing

@Suite struct ValidationTests {
    /// A configuration with no problems, for each test to break in one place.
    private func valid() -> Configuration {
        Configuration(
            listeners: [
                ListenerSpec(name: "http", addresses: [.tcp(host: "127.0.0.1", port: 8080)]),
                ListenerSpec(name: "admin", addresses: [.unixPath("/run/web/admin.sock")], mode: 0o660, owner: "web"),
            ],
            program: ProgramSpec(name: "web", command: ["/usr/bin/web"])
        )
    }

    @Test func acceptsAValidConfiguration() {
        #expect(valid().problems() == [])
    }

    @Test func needsACommand() {
        var configuration = valid()
        configuration.program.command = []
        #expect(configuration.problems() == ["program: command is empty: set command in [program] or give it after --"])
        configuration.program.command = [""]
        #expect(configuration.problems() == ["program: command is empty: set command in [program] or give it after --"])
    }

    @Test(arguments: [0, -1, 4097])
    func boundsWorkers(workers: Int) {
        var configuration = valid()
        configuration.program.workers = workers
        #expect(configuration.problems() == ["program: workers must be 1 to 4096"])
    }

    @Test func acceptsTheWorkerBounds() {
        var configuration = valid()
        configuration.program.workers = 1
        #expect(configuration.problems() == [])
        configuration.program.workers = 4096
        #expect(configuration.problems() == [])
    }

    @Test func needsAListener() {
        var configuration = valid()
        configuration.listeners = []
        #expect(configuration.problems() == ["no listener: add a [[listener]] to the file or give --listen NAME=ADDRESS"])
    }

    @Test func checksListenerNames() {
        var configuration = valid()
        configuration.listeners[1].name = "connection"
        configuration.listeners.append(ListenerSpec(name: "http", addresses: [.tcp(host: "127.0.0.1", port: 8081)]))
        configuration.listeners.append(ListenerSpec(name: "http", addresses: [.tcp(host: "127.0.0.1", port: 8082)]))
        #expect(
            configuration.problems() == [
                "listener 2: \"connection\" is reserved by systemd",
                "listener \"http\": more than one listener has this name",
            ])
    }

    @Test func checksEachListener() {
        var configuration = valid()
        configuration.listeners[0].addresses = []
        configuration.listeners[0].backlog = 0
        configuration.listeners[1].backlog = 65536
        configuration.listeners[1].mode = 0o10000
        configuration.listeners[1].group = ""
        #expect(
            configuration.problems() == [
                "listener \"http\": needs at least one address",
                "listener \"http\": backlog must be 1 to 65535",
                "listener \"admin\": backlog must be 1 to 65535",
                "listener \"admin\": mode must be at most 0o7777",
                "listener \"admin\": group must not be empty",
            ])
    }

    @Test func keepsUnixFileSettingsToUnixPaths() {
        var configuration = valid()
        configuration.listeners[0].owner = "web"
        configuration.listeners[1].addresses = [.unixAbstract("admin")]
        #expect(
            configuration.problems() == [
                "listener \"http\": mode, owner and group apply only to unix:/path addresses",
                "listener \"admin\": mode, owner and group apply only to unix:/path addresses",
            ])
    }

    @Test func findsDuplicateAddresses() {
        var configuration = valid()
        configuration.listeners[1].addresses.append(.tcp(host: "127.0.0.1", port: 8080))
        configuration.listeners[0].addresses.append(.tcp(host: "127.0.0.1", port: 8080))
        #expect(
            configuration.problems() == [
                "listener \"http\": address tcp://127.0.0.1:8080 is listed twice",
                "listener \"admin\": address tcp://127.0.0.1:8080 is also used by listener \"http\"",
            ])
    }

    @Test func letsListenersShareTheKernelsPortZeroAndTheSamePortOnUDP() {
        var configuration = valid()
        configuration.listeners[0].addresses = [.tcp(host: "127.0.0.1", port: 0), .udp(host: "127.0.0.1", port: 8080)]
        configuration.listeners[1].addresses = [.tcp(host: "127.0.0.1", port: 0), .tcp(host: "127.0.0.1", port: 8080)]
        configuration.listeners[1].mode = nil
        configuration.listeners[1].owner = nil
        #expect(configuration.problems() == [])
    }

    @Test func checksTimingsAndLimits() {
        var configuration = valid()
        configuration.program.readyTimeout = .zero
        configuration.program.drainTimeout = .seconds(-1)
        configuration.program.readyInterval = .zero
        configuration.program.readyDelay = .milliseconds(-1)
        configuration.program.maxDraining = 0
        configuration.program.drainSignal = 65
        #expect(
            configuration.problems() == [
                "program: ready_delay must not be negative",
                "program: ready_interval must be more than 0",
                "program: ready_timeout must be more than 0",
                "program: drain_timeout must be more than 0",
                "program: drain_signal must be a signal number from 1 to 64",
                "program: max_draining must be at least 1",
            ])
    }

    @Test func execReadinessNeedsACommand() {
        var configuration = valid()
        configuration.program.ready = .exec
        #expect(configuration.problems() == ["program: ready = \"exec\" needs ready_command"])
        configuration.program.readyCommand = ["/usr/bin/probe"]
        #expect(configuration.problems() == [])
    }

    @Test func checksCompat() {
        var configuration = valid()
        configuration.program.compat = ["einhorn", "server-starter"]
        #expect(configuration.problems() == [])
        configuration.program.compat = ["einhorn", "foreman", "einhorn"]
        #expect(
            configuration.problems() == [
                "program: compat: unknown value \"foreman\" (expected \"einhorn\" or \"server-starter\")",
                "program: compat: \"einhorn\" is listed twice",
            ])
        configuration.program.compat = ["einhorn"]
        configuration.program.handoff = .channel
        #expect(configuration.problems() == ["program: compat needs handoff = \"listen-fds\""])
    }

    @Test func checksProgramStrings() {
        var configuration = valid()
        configuration.program.name = "a/b"
        configuration.program.env = ["GOOD": "1", "A=B": "2", "": "3"]
        configuration.program.cwd = ""
        configuration.program.user = ""
        configuration.program.group = ""
        #expect(
            configuration.problems() == [
                "program: name \"a/b\" must not contain /",
                "program: env: \"\" is not a variable name",
                "program: env: \"A=B\" is not a variable name",
                "program: cwd must not be empty",
                "program: user must not be empty",
                "program: group must not be empty",
            ])
    }

    @Test func reportsEveryProblemAtOnce() {
        var configuration = valid()
        configuration.listeners = []
        configuration.program.command = []
        configuration.program.workers = 0
        #expect(configuration.problems().count == 3)
    }

    @Test func namesTheProgram() {
        var configuration = valid()
        #expect(configuration.effectiveProgramName == "web")
        configuration.program.name = ""
        configuration.program.command = ["/usr/local/bin/api-server", "--port"]
        #expect(configuration.effectiveProgramName == "api-server")
        configuration.program.command = ["gunicorn"]
        #expect(configuration.effectiveProgramName == "gunicorn")
        configuration.program.command = ["/usr/bin/web/"]
        #expect(configuration.effectiveProgramName == "web")
        configuration.program.command = []
        #expect(configuration.effectiveProgramName == "baton")
        configuration.program.command = ["/"]
        #expect(configuration.effectiveProgramName == "baton")
    }

    @Test func labelsListeners() {
        #expect(Configuration.listenerLabel("http", position: 0) == "listener \"http\"")
        #expect(Configuration.listenerLabel("bad name", position: 2) == "listener 3")
    }
}
