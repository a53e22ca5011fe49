// A fixed-size latency histogram for per-packet figures on the hot path (the reorder buffer's
// hold times): recording is an index computation and an increment, never an allocation.
// Log-linear buckets in microseconds, 8 per power of two (≤ 12.5 % relative error), up to ~134 s.

import Congestion

public struct LatencyHistogram: Sendable {
    static let subBucketBits = 3
    static let subBuckets = 1 << subBucketBits
    /// Values at or above 2^27 µs land in the last bucket.
    static let maxExponent = 26
    static let bucketCount = subBuckets + (maxExponent - subBucketBits + 1) * subBuckets

    private var buckets: [UInt64]
    public private(set) var count: UInt64 = 0
    public private(set) var maximum: Duration = .zero
    private var sumMicroseconds: UInt64 = 0

    public init() {
        buckets = [UInt64](repeating: 0, count: Self.bucketCount)
    }

    public mutating func record(_ value: Duration) {
        buckets[Self.bucket(of: value.nanoseconds / 1_000)] &+= 1
        count &+= 1
        sumMicroseconds &+= value.nanoseconds / 1_000
        if maximum < value { maximum = value }
    }

    public var mean: Duration {
        count == 0 ? .zero : .microseconds(sumMicroseconds / count)
    }

    /// The value below which a fraction `p` (0...1) of the recorded values fall: exact below
    /// 8 µs, else the upper edge of the bucket holding that rank, never above the largest value
    /// recorded.
    public func percentile(_ p: Double) -> Duration {
        guard count > 0 else { return .zero }
        let rank = max(1, UInt64((min(max(p, 0), 1) * Double(count)).rounded(.up)))
        var seen: UInt64 = 0
        for (index, n) in buckets.enumerated() where n > 0 {
            seen += n
            if seen >= rank {
                if index < Self.subBuckets { return .microseconds(UInt64(index)) }
                return min(.microseconds(Self.upperEdge(of: index)), maximum)
            }
        }
        return maximum
    }

    /// Values recorded at or below `bound`, counted by whole buckets (a bucket straddling the
    /// bound is left out: the figure is a lower bound, within one bucket's 12.5 %). For
    /// Prometheus's cumulative `le` buckets.
    public func cumulativeCount(atMost bound: Duration) -> UInt64 {
        let limit = bound.nanoseconds / 1_000
        var n: UInt64 = 0
        for (index, c) in buckets.enumerated() where c > 0 {
            let top = index < Self.subBuckets ? UInt64(index) : Self.upperEdge(of: index)
            if top <= limit { n += c }
        }
        return n
    }

    /// The sum of the recorded values, in seconds.
    public var sumSeconds: Double { Double(sumMicroseconds) / 1e6 }

    public mutating func reset() {
        for i in buckets.indices { buckets[i] = 0 }
        count = 0
        maximum = .zero
        sumMicroseconds = 0
    }

    static func bucket(of microseconds: UInt64) -> Int {
        if microseconds < UInt64(subBuckets) { return Int(microseconds) }
        let exponent = UInt64.bitWidth - 1 - microseconds.leadingZeroBitCount
        if exponent > maxExponent { return bucketCount - 1 }
        let sub = Int(microseconds >> UInt64(exponent - subBucketBits)) & (subBuckets - 1)
        return subBuckets + (exponent - subBucketBits) * subBuckets + sub
    }

    /// Smallest value (µs) above the bucket.
    static func upperEdge(of index: Int) -> UInt64 {
        if index < subBuckets { return UInt64(index + 1) }
        let k = index - subBuckets
        let shift = UInt64(k / subBuckets)
        return UInt64(subBuckets + k % subBuckets + 1) << shift
    }
}
