// A sorted set of disjoint, non-adjacent integer ranges. Tracks received packet numbers (for ACK
// frames), acknowledged stream bytes, and lost byte ranges awaiting retransmission.

public struct RangeSet: Equatable, Sendable {
    /// Ascending, disjoint, non-adjacent.
    public private(set) var ranges: [ClosedRange<UInt64>] = []

    public init() {}
    public init(_ ranges: [ClosedRange<UInt64>]) { for r in ranges { insert(r) } }

    public var isEmpty: Bool { ranges.isEmpty }
    public var count: Int { ranges.count }
    public var lowerBound: UInt64? { ranges.first?.lowerBound }
    public var upperBound: UInt64? { ranges.last?.upperBound }

    public func contains(_ v: UInt64) -> Bool {
        // Binary search for the last range with lowerBound <= v.
        var lo = 0
        var hi = ranges.count - 1
        while lo <= hi {
            let mid = (lo + hi) / 2
            if ranges[mid].lowerBound <= v {
                if v <= ranges[mid].upperBound { return true }
                lo = mid + 1
            } else {
                hi = mid - 1
            }
        }
        return false
    }

    public mutating func insert(_ v: UInt64) { insert(v...v) }

    public mutating func insert(_ r: ClosedRange<UInt64>) {
        // Fast path: append at the end (the common case for in-order arrivals).
        if let last = ranges.last {
            if r.lowerBound > last.upperBound &+ 1 {
                ranges.append(r)
                return
            }
            if r.lowerBound >= last.lowerBound {
                ranges[ranges.count - 1] = last.lowerBound...max(last.upperBound, r.upperBound)
                return
            }
        } else {
            ranges.append(r)
            return
        }
        var lower = r.lowerBound
        var upper = r.upperBound
        var i = 0
        // Skip ranges entirely below (and not adjacent).
        while i < ranges.count && ranges[i].upperBound &+ 1 < lower { i += 1 }
        var j = i
        while j < ranges.count && ranges[j].lowerBound <= upper &+ 1 {
            lower = min(lower, ranges[j].lowerBound)
            upper = max(upper, ranges[j].upperBound)
            j += 1
        }
        ranges.replaceSubrange(i..<j, with: [lower...upper])
    }

    /// Removes every value in `r`.
    /// In place: trimming acknowledged ranges happens for every ACK of an ACK, so it must not
    /// build a new array each time.
    public mutating func remove(_ r: ClosedRange<UInt64>) {
        // The ranges that overlap r: i ..< j.
        var i = 0
        while i < ranges.count && ranges[i].upperBound < r.lowerBound { i += 1 }
        var j = i
        while j < ranges.count && ranges[j].lowerBound <= r.upperBound { j += 1 }
        guard i < j else { return }
        let first = ranges[i]
        let last = ranges[j - 1]
        // What survives at the edges: the first's part below r, the last's part above it.
        let below: ClosedRange<UInt64>? = first.lowerBound < r.lowerBound ? first.lowerBound...(r.lowerBound - 1) : nil
        let above: ClosedRange<UInt64>? = last.upperBound > r.upperBound ? (r.upperBound + 1)...last.upperBound : nil
        switch (below, above) {
        case (let b?, let a?):
            ranges[i] = b
            if j - i == 1 {
                ranges.insert(a, at: i + 1)
            } else {
                ranges[i + 1] = a
                ranges.removeSubrange(i + 2..<j)
            }
        case (let b?, nil):
            ranges[i] = b
            ranges.removeSubrange(i + 1..<j)
        case (nil, let a?):
            ranges[j - 1] = a
            ranges.removeSubrange(i..<j - 1)
        case (nil, nil):
            ranges.removeSubrange(i..<j)
        }
    }

    /// Removes all values below `v`.
    public mutating func removeBelow(_ v: UInt64) {
        guard v > 0 else { return }
        remove(0...(v - 1))
    }

    public mutating func removeFirst() -> ClosedRange<UInt64>? {
        ranges.isEmpty ? nil : ranges.removeFirst()
    }

    /// Keeps only the `n` highest ranges (bounds the memory of ACK state).
    public mutating func keepHighest(_ n: Int) {
        if ranges.count > n { ranges.removeFirst(ranges.count - n) }
    }

    /// The end of the contiguous run starting at `start` (exclusive), or `start` if `start` is absent.
    public func contiguousEnd(from start: UInt64) -> UInt64 {
        for r in ranges where r.lowerBound <= start && start <= r.upperBound { return r.upperBound + 1 }
        return start
    }
}
