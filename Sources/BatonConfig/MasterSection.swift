import BatonCore

/// `[master]`: the master's own settings.
enum MasterSection {
    static let keys = ["control", "log_level", "log_format"]

    static func read(_ reader: TableReader) throws(ConfigError) -> MasterSettings {
        try reader.rejectUnknownKeys(keys)
        var master = MasterSettings()
        if let control = try reader.nonEmptyString("control") { master.control = control }
        if let level = try reader.choice("log_level", as: LogLevel.self) { master.logLevel = level }
        if let format = try reader.choice("log_format", as: LogFormat.self) { master.logFormat = format }
        return master
    }
}
