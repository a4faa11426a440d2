import Testing

@testable import BatonConfig

/// The line index that lets every error name its line, on the TOML that is easy to mis-scan.
@Suite struct SourceIndexTests {
    private func line(_ text: String, _ path: PathItem...) -> Int? {
        SourceIndex(text: text).line(of: path)
    }

    @Test func findsHeadersKeysAndArrayElements() {
        let text = """
            top = 1
            [master]
            log_level = "info"

            [[listener]]
            name = "a"
            [[listener]]
            name = "b"
            address = [
              "tcp://127.0.0.1:1",  # first
              # a comment line
              "tcp://127.0.0.1:2",
            ]
            [listener.extra]
            key = 1
            """
        #expect(line(text, .key("top")) == 1)
        #expect(line(text, .key("master")) == 2)
        #expect(line(text, .key("master"), .key("log_level")) == 3)
        #expect(line(text, .key("listener")) == 5)
        #expect(line(text, .key("listener"), .index(0)) == 5)
        #expect(line(text, .key("listener"), .index(0), .key("name")) == 6)
        #expect(line(text, .key("listener"), .index(1)) == 7)
        #expect(line(text, .key("listener"), .index(1), .key("name")) == 8)
        #expect(line(text, .key("listener"), .index(1), .key("address"), .index(0)) == 10)
        #expect(line(text, .key("listener"), .index(1), .key("address"), .index(1)) == 12)
        #expect(line(text, .key("listener"), .index(1), .key("extra")) == 14)
        #expect(line(text, .key("listener"), .index(1), .key("extra"), .key("key")) == 15)
        // Unknown paths fall back to the nearest enclosing one.
        #expect(line(text, .key("listener"), .index(1), .key("missing")) == 7)
        #expect(line(text, .key("nowhere")) == nil)
    }

    @Test func skipsWhatOnlyLooksLikeHeadersAndKeys() {
        let text = #"""
            [program]
            a = """
            [master]
            workers = 1 \"""
            still = "inside"
            """
            b = '''
            [[listener]]
            '''
            c = "a # not a comment [x]"
            d = 'C:\dir\'
            e = ["]", "[", { f = "}" }]
            workers = 4
            """#
        let index = SourceIndex(text: text)
        #expect(index.line(of: [.key("master")]) == nil)
        #expect(index.line(of: [.key("listener")]) == nil)
        #expect(index.line(of: [.key("program"), .key("workers")]) == 13)
        #expect(index.line(of: [.key("program"), .key("still")]) == 1)
        #expect(index.line(of: [.key("program"), .key("e"), .index(2), .key("f")]) == 12)
    }

    @Test func readsQuotedAndDottedKeys() {
        let text = #"""
            [ "program" ]
            "quoted key" = 1
            'literal.key' = 2
            env.PATH = "/bin"
            "esc\u0041ped" = 3
            site."a.b".c = 4
            inline = { x = 1, y.z = 2 }
            """#
        #expect(line(text, .key("program"), .key("quoted key")) == 2)
        #expect(line(text, .key("program"), .key("literal.key")) == 3)
        #expect(line(text, .key("program"), .key("env")) == 4)
        #expect(line(text, .key("program"), .key("env"), .key("PATH")) == 4)
        #expect(line(text, .key("program"), .key("escAped")) == 5)
        #expect(line(text, .key("program"), .key("site"), .key("a.b"), .key("c")) == 6)
        #expect(line(text, .key("program"), .key("inline"), .key("y"), .key("z")) == 7)
    }

    @Test func countsArraysOfTablesPerParent() {
        let text = """
            [[a]]
            [[a.b]]
            [[a.b]]
            [[a]]
            [[a.b]]
            x = 1
            """
        #expect(line(text, .key("a"), .index(0), .key("b"), .index(1)) == 3)
        #expect(line(text, .key("a"), .index(1)) == 4)
        #expect(line(text, .key("a"), .index(1), .key("b"), .index(0)) == 5)
        #expect(line(text, .key("a"), .index(1), .key("b"), .index(0), .key("x")) == 6)
    }

    @Test func handlesWindowsLineEndings() {
        let text = "[program]\r\nname = \"web\"\r\n\r\nworkers = 2\r\n"
        #expect(line(text, .key("program"), .key("workers")) == 4)
    }

    @Test func keepsTheTextOfScalars() {
        let index = SourceIndex(text: "mode = 0o660 # octal\nwhen = 1979-05-27 07:32:00Z\nname = \"x\"\n")
        #expect(index.scalarText(of: [.key("mode")]) == "0o660")
        #expect(index.scalarText(of: [.key("when")]) == "1979-05-27 07:32:00Z")
        #expect(index.scalarText(of: [.key("name")]) == "\"x\"")
    }

    @Test func suggestsCloseWordsOnly() {
        #expect(Suggestion.closest(to: "wrokers", in: ProgramSection.keys) == "workers")
        #expect(Suggestion.closest(to: "ready-timeout", in: ProgramSection.keys) == "ready_timeout")
        #expect(Suggestion.closest(to: "Workers", in: ProgramSection.keys) == "workers")
        #expect(Suggestion.closest(to: "colour", in: ProgramSection.keys) == nil)
        #expect(Suggestion.closest(to: "x", in: ["y"]) == nil)
        #expect(Suggestion.closest(to: "cdw", in: ["cwd"]) == "cwd")
        #expect(Suggestion.closest(to: "ab", in: ["cd"]) == nil)
    }
}
