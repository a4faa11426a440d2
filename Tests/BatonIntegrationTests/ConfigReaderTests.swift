import BatonTestSupport
import Foundation
import Testing

extension IntegrationTests {
    /// Configuration files are parsed by `baton-config` in a child process, never in the master
    /// (docs/ARCHITECTURE.md): the master's memory holds no TOML parser and no Foundation, and a
    /// parser crash is a refused reload (FaultMatrix/configurationFileBrokenBeforeAReload).
    @Suite struct ConfigReader {
        /// A master started on a configuration file maps neither Foundation (what TOMLKit brings,
        /// with ICU) nor anything else of the parser's, also after a reload that parsed a changed file.
        @Test func theMasterNeverMapsTheParserOrFoundation() throws {
            let text = try ConfigReload.config(workers: 1, listeners: [("http", "tcp://127.0.0.1:0")])
            let (baton, path, directory) = try ConfigReload.start(text)
            defer { baton.cleanup(); directory.cleanup() }
            try text.replacingOccurrences(of: "workers = 1", with: "workers = 2")
                .write(toFile: path, atomically: true, encoding: .utf8)
            let mark = baton.process.mark()
            #expect(try baton.client(["reload", "--wait"]).status == .exited(0))
            try baton.process.waitForLine(after: mark, containing: "reload ok: gen=2 ")
            #expect(baton.workerPIDs(generation: 2).count == 2, "the changed file was parsed")

            // Read to the end: /proc files report size 0, and one read returns a page at most.
            let file = try #require(FileHandle(forReadingAtPath: "/proc/\(baton.process.pid)/maps"))
            let maps = String(decoding: try file.readToEnd() ?? Data(), as: UTF8.self)
            var libraries: Set<String> = []
            for line in maps.split(separator: "\n") {
                guard let path = line.split(separator: " ").last, path.hasPrefix("/"),
                    let file = path.split(separator: "/").last
                else { continue }
                libraries.insert(String(file))
            }
            #expect(libraries.contains { $0.hasPrefix("libswiftCore") }, "\(libraries.sorted())")
            let unwanted = ["libFoundation.so", "libFoundationEssentials.so", "libFoundationInternationalization.so", "lib_FoundationICU.so"]
            for library in unwanted {
                #expect(!libraries.contains(library), "the master maps \(library): \(libraries.sorted())")
            }
            // `baton run` became `baton-master` (same pid); `ps` still shows the command run.
            let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(baton.process.pid)/exe")
            #expect(executable == (try Binaries.batonMaster()))
            let commandLine = try String(contentsOfFile: "/proc/\(baton.process.pid)/cmdline", encoding: .utf8)
            #expect(commandLine.split(separator: "\0").prefix(2) == [Substring(try Binaries.baton()), "run"], "\(commandLine)")
        }

        /// Without `baton-master` beside it, `baton run` says what is missing (and starts nothing);
        /// `baton-master` run by hand says how it is meant to be started.
        @Test func withoutTheMasterBesideItRunSaysSo() throws {
            let directory = try TemporaryDirectory()
            defer { directory.cleanup() }
            let alone = directory.file("baton")
            try FileManager.default.copyItem(atPath: try Binaries.baton(), toPath: alone)
            let refused = try SupervisedProcess.run(alone, ["run", "--listen", "http=tcp://127.0.0.1:0", "--", "/bin/true"])
            #expect(refused.status == .exited(1), "\(refused.output)")
            #expect(refused.output.contains("cannot start \(directory.file("baton-master")): No such file or directory"), "\(refused.output)")
            #expect(refused.output.contains("baton-master is installed beside baton"), "\(refused.output)")

            let byHand = try SupervisedProcess.run(try Binaries.batonMaster(), [])
            #expect(byHand.status == .exited(2), "\(byHand.output)")
            #expect(byHand.output.contains("baton-master is started by `baton run`; run that instead"), "\(byHand.output)")
        }

        /// Without `baton-config` beside it, `baton` says what is missing where a file must be
        /// read, and works from flags alone.
        @Test func withoutTheReaderBesideItBatonSaysSo() throws {
            let directory = try TemporaryDirectory()
            defer { directory.cleanup() }
            let alone = directory.file("baton")
            try FileManager.default.copyItem(atPath: try Binaries.baton(), toPath: alone)
            let config = try directory.write("web.toml", "[program]\ncommand = [\"/bin/true\"]\n")

            let refused = try SupervisedProcess.run(alone, ["check", "--config", config])
            #expect(refused.status == .exited(2), "\(refused.output)")
            #expect(refused.output.contains("\(config): cannot read configuration files: \(directory.file("baton-config")):"), "\(refused.output)")
            #expect(refused.output.contains("baton-config is installed beside baton"), "\(refused.output)")

            let flagsOnly = try SupervisedProcess.run(alone, ["check", "--listen", "http=tcp://127.0.0.1:0", "--", "/bin/true"])
            #expect(flagsOnly.status == .exited(0), "\(flagsOnly.output)")
        }

        /// `baton-config` on its own: JSON for a good file, the loader's message and exit 2 for a bad one.
        @Test func theReaderPrintsJSONOrTheError() throws {
            let directory = try TemporaryDirectory()
            defer { directory.cleanup() }
            let good = try directory.write("good.toml", "[program]\ncommand = [\"/bin/true\"]\nworkers = 3\n")
            let printed = try SupervisedProcess.run(try Binaries.batonConfig(), [good])
            #expect(printed.status == .exited(0), "\(printed.output)")
            let json = try JSONSerialization.jsonObject(with: Data(printed.output.utf8)) as? [String: Any]
            let program = json?["program"] as? [String: Any]
            #expect(program?["workers"] as? Int == 3, "\(printed.output)")
            #expect(program?["command"] as? [String] == ["/bin/true"], "\(printed.output)")

            let bad = try directory.write("bad.toml", "[program]\nworkers = \"three\"\n")
            let refused = try SupervisedProcess.run(try Binaries.batonConfig(), ["--name", "web.toml", bad])
            #expect(refused.status == .exited(2), "\(refused.output)")
            #expect(refused.output == "web.toml:2: program: workers: expected an integer, got a string", "\(refused.output)")
        }
    }
}
