// Time as the sans-I/O layers see it: a monotonic instant the caller passes in (nanoseconds since
// an arbitrary origin). Nothing in the pure modules reads a clock.

public struct Timestamp: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var nanoseconds: UInt64
    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }
    public static let zero = Timestamp(nanoseconds: 0)

    public static func < (a: Timestamp, b: Timestamp) -> Bool { a.nanoseconds < b.nanoseconds }
    public static func + (a: Timestamp, d: Duration) -> Timestamp { Timestamp(nanoseconds: a.nanoseconds &+ d.nanoseconds) }
    public static func - (a: Timestamp, d: Duration) -> Timestamp {
        Timestamp(nanoseconds: a.nanoseconds > d.nanoseconds ? a.nanoseconds - d.nanoseconds : 0)
    }
    /// Saturating difference (zero if `b` is later).
    public static func - (a: Timestamp, b: Timestamp) -> Duration {
        Duration(nanoseconds: a.nanoseconds > b.nanoseconds ? a.nanoseconds - b.nanoseconds : 0)
    }
    public var description: String { "\(Double(nanoseconds) / 1e6)ms" }
}

/// A non-negative span of time in nanoseconds (cheaper than Swift.Duration on hot paths).
public struct Duration: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var nanoseconds: UInt64
    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }
    public static let zero = Duration(nanoseconds: 0)
    public static func milliseconds(_ ms: UInt64) -> Duration { Duration(nanoseconds: ms * 1_000_000) }
    public static func microseconds(_ us: UInt64) -> Duration { Duration(nanoseconds: us * 1_000) }
    public static func seconds(_ s: Double) -> Duration { Duration(nanoseconds: UInt64(max(0, s) * 1e9)) }

    public static func < (a: Duration, b: Duration) -> Bool { a.nanoseconds < b.nanoseconds }
    public static func + (a: Duration, b: Duration) -> Duration { Duration(nanoseconds: a.nanoseconds &+ b.nanoseconds) }
    public static func - (a: Duration, b: Duration) -> Duration {
        Duration(nanoseconds: a.nanoseconds > b.nanoseconds ? a.nanoseconds - b.nanoseconds : 0)
    }
    public static func * (a: Duration, k: UInt64) -> Duration { Duration(nanoseconds: a.nanoseconds &* k) }
    public static func / (a: Duration, k: UInt64) -> Duration { Duration(nanoseconds: a.nanoseconds / k) }
    public var milliseconds: Double { Double(nanoseconds) / 1e6 }
    public var seconds: Double { Double(nanoseconds) / 1e9 }
    public var description: String { "\(milliseconds)ms" }
}
