import Testing

/// The parent of every integration suite. Integration tests start real processes on real sockets;
/// nesting their suites here (`extension IntegrationTests { @Suite struct … }`) makes them run one
/// at a time, so they never compete for the machine's two cores or for process-wide state.
@Suite(.serialized) struct IntegrationTests {}
