import BatonCLI
import BatonRuntime

/// Every `baton: …` error, on stderr: red when stderr itself is a terminal (judged apart from
/// stdout, so `baton status | jq` still shows a red error on screen), plain in a pipe or the journal.
enum ErrorOutput {
    static var style: TerminalStyle { TerminalStyle.of(fd: 2, environment: CLIEnvironment.current) }

    static func print(_ text: String) {
        FileOutput.standardError(style.paint(text, .red))
    }
}
