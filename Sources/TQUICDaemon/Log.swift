// tquicd's log: one line per event on standard error, which systemd's journal keeps (with the
// level as a syslog prefix it understands, `<N>`, sd-daemon(3)). Levels as in the config file.
import Glibc

public struct Log: Sendable {
    public enum Level: Int, Sendable, Comparable {
        case trace, debug, info, notice, warning, error, critical
        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }

        public init?(name: String) {
            switch name {
            case "trace": self = .trace
            case "debug": self = .debug
            case "info": self = .info
            case "notice": self = .notice
            case "warning": self = .warning
            case "error": self = .error
            case "critical": self = .critical
            default: return nil
            }
        }

        /// The syslog priority (RFC 5424 §6.2.1) journald reads from a `<N>` prefix.
        var syslogPriority: Int {
            switch self {
            case .trace, .debug: return 7
            case .info: return 6
            case .notice: return 5
            case .warning: return 4
            case .error: return 3
            case .critical: return 2
            }
        }
    }

    public var level: Level
    /// The `<N>` prefix (under systemd) instead of a level word.
    let journalPrefix: Bool

    public init(level: Level) {
        self.level = level
        journalPrefix = getenv("JOURNAL_STREAM") != nil
    }

    public func log(_ l: Level, _ message: @autoclosure () -> String) {
        guard l >= level else { return }
        let line = journalPrefix ? "<\(l.syslogPriority)>\(message())\n" : "tquicd: \(l): \(message())\n"
        var bytes = Array(line.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }

    public func info(_ m: @autoclosure () -> String) { log(.info, m()) }
    public func notice(_ m: @autoclosure () -> String) { log(.notice, m()) }
    public func warning(_ m: @autoclosure () -> String) { log(.warning, m()) }
    public func error(_ m: @autoclosure () -> String) { log(.error, m()) }
    public func debug(_ m: @autoclosure () -> String) { log(.debug, m()) }
}
