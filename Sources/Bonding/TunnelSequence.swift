// The tunnel sequence number: 32 bits on the wire, compared with serial-number arithmetic
// (RFC 1982) because it wraps. The sender stamps one on every inner packet; the receiver's
// duplicate window, reorder buffer and the sender's reinjection ledger all compare them.

/// A 32-bit tunnel sequence number that wraps around.
///
/// Deliberately not `Comparable`: serial numbers have no total order. `a.precedes(b)` is true
/// when `b` lies less than 2^31 ahead of `a`; every window that compares them (reorder hold,
/// duplicate window) spans far fewer than 2^31 packets.
public struct TunnelSequence: Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32

    @inlinable public init(_ rawValue: UInt32) { self.rawValue = rawValue }

    /// The number that follows this one (wrapping).
    @inlinable public var next: TunnelSequence { TunnelSequence(rawValue &+ 1) }

    /// Signed distance from `self` to `other`: positive when `other` is later.
    @inlinable public func distance(to other: TunnelSequence) -> Int32 {
        Int32(bitPattern: other.rawValue &- rawValue)
    }

    /// True when `self` comes strictly before `other` (within half the number space).
    @inlinable public func precedes(_ other: TunnelSequence) -> Bool { distance(to: other) > 0 }

    @inlinable public func advanced(by n: Int32) -> TunnelSequence {
        TunnelSequence(rawValue &+ UInt32(bitPattern: n))
    }

    public var description: String { "#\(rawValue)" }
}
