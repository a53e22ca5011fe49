// A fixed-bucket histogram of durations (queueing delay per link; also usable for one-way delay or
// reorder-buffer hold time): constant memory, exact count of zero samples, quantiles to one bucket.
import Congestion

/// Durations counted in fixed linear buckets.
///
/// Bucket 0 holds exactly-zero samples (a packet that found the link idle waited exactly 0);
/// bucket k ≥ 1 holds samples in ((k-1)·width, k·width]; samples beyond the range go to an overflow
/// count. A quantile is reported as the upper edge of the bucket it falls in, clamped to the largest
/// sample seen, so it is never below the true value and at most one bucket width above it (beyond
/// the range it is the exact maximum).
public struct DelayHistogram: Sendable, Equatable {
    public let bucketWidth: Duration
    public let bucketCount: Int
    private var zeroCount: Int = 0
    private var buckets: [Int]
    private var overflowCount: Int = 0

    public private(set) var count: Int = 0
    /// Sum of all samples, in nanoseconds.
    public private(set) var totalNanoseconds: UInt64 = 0
    public private(set) var minimum: Duration = .zero
    public private(set) var maximum: Duration = .zero

    /// - Parameters:
    ///   - bucketWidth: resolution (default 100 µs).
    ///   - range: largest value with its own bucket (default 3 s); larger samples are counted as
    ///     overflow and only the exact maximum is kept.
    public init(bucketWidth: Duration = .microseconds(100), range: Duration = .milliseconds(3000)) {
        precondition(bucketWidth.nanoseconds > 0, "bucket width must be positive")
        self.bucketWidth = bucketWidth
        self.bucketCount = Int((range.nanoseconds + bucketWidth.nanoseconds - 1) / bucketWidth.nanoseconds)
        self.buckets = Array(repeating: 0, count: bucketCount)
    }

    public mutating func record(_ sample: Duration) {
        let ns = sample.nanoseconds
        if ns == 0 {
            zeroCount += 1
        } else {
            let index = Int((ns - 1) / bucketWidth.nanoseconds)
            if index < bucketCount { buckets[index] += 1 } else { overflowCount += 1 }
        }
        if count == 0 || sample < minimum { minimum = sample }
        if sample > maximum { maximum = sample }
        count += 1
        totalNanoseconds &+= ns
    }

    /// Adds every sample of `other`.
    /// - Precondition: both histograms have the same bucket width and count.
    public mutating func merge(_ other: DelayHistogram) {
        precondition(
            other.bucketWidth == bucketWidth && other.bucketCount == bucketCount,
            "histograms with different buckets cannot be merged")
        guard other.count > 0 else { return }
        zeroCount += other.zeroCount
        for i in 0..<bucketCount { buckets[i] += other.buckets[i] }
        overflowCount += other.overflowCount
        if count == 0 || other.minimum < minimum { minimum = other.minimum }
        if other.maximum > maximum { maximum = other.maximum }
        count += other.count
        totalNanoseconds &+= other.totalNanoseconds
    }

    /// The value below or at which a fraction `q` (0...1) of the samples lie; zero when empty.
    public func quantile(_ q: Double) -> Duration {
        guard count > 0 else { return .zero }
        // ceil(q · count) without libm: a pure module links nothing beyond the Swift runtime.
        let exact = q * Double(count)
        let whole = Int(exact)
        let rank = max(1, Double(whole) < exact ? whole + 1 : whole)
        var seen = zeroCount
        if seen >= rank { return .zero }
        for i in 0..<bucketCount {
            seen += buckets[i]
            if seen >= rank {
                let upper = Duration(nanoseconds: UInt64(i + 1) * bucketWidth.nanoseconds)
                return max(minimum, min(upper, maximum))
            }
        }
        return maximum
    }

    public var p50: Duration { quantile(0.50) }
    public var p99: Duration { quantile(0.99) }

    public var mean: Duration {
        count > 0 ? Duration(nanoseconds: totalNanoseconds / UInt64(count)) : .zero
    }
}
