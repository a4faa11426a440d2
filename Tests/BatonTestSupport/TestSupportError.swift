/// A failure of the test support itself: a missing binary, a process that did not print the
/// expected line, a deadline that passed. The description says what was waited for.
public struct TestSupportError: Error, CustomStringConvertible, Sendable {
    public var description: String

    /// An error that reads `description`.
    public init(_ description: String) {
        self.description = description
    }
}
