// What a link did: packets and bytes offered, delivered and dropped (by reason), its queueing delay
// distribution, and per-interval series of transmitter busy time and delivered bytes, from which
// utilisation and throughput over any interval are read.
import Congestion

/// Why a link did not deliver a packet.
public enum DropReason: String, CaseIterable, Sendable, Hashable {
    /// Independent random loss (`LinkModel.lossProbability`).
    case randomLoss
    /// Loss drawn by the Gilbert–Elliott model (`LinkModel.burstLoss`).
    case burstLoss
    /// The drop-tail queue had no room.
    case queueFull
    /// Offered during an outage, or caught in the queue or in flight when one began.
    case outage
}

/// Counters and distributions for one link. Byte counts are datagram bytes (the UDP payload, what
/// the endpoints send), not wire bytes; `LinkModel.overheadBytes` only affects timing and the queue.
public struct LinkStatistics: Sendable {
    public struct Counter: Sendable, Equatable, CustomStringConvertible {
        public var packets: Int = 0
        public var bytes: Int = 0
        public init(packets: Int = 0, bytes: Int = 0) {
            self.packets = packets
            self.bytes = bytes
        }
        mutating func add(_ size: Int) {
            packets += 1
            bytes += size
        }
        public var description: String { "\(packets) packets / \(bytes) bytes" }
    }

    /// ECN-capable packets the link marked CE instead of dropping (`LinkModel.ecnMarkingThreshold`).
    public internal(set) var ceMarked = 0
    /// Delivered packets that arrive with a byte flipped (`LinkModel.corruptionProbability`).
    public internal(set) var corrupted = 0
    /// Every datagram handed to the link.
    public internal(set) var offered = Counter()
    /// Datagrams that reached the far end.
    public internal(set) var delivered = Counter()
    private var drops: [Counter] = Array(repeating: Counter(), count: DropReason.allCases.count)
    /// Time each transmitted packet waited for the transmitter (zero when it found the link idle).
    public internal(set) var queueingDelay: DelayHistogram
    /// Most wire bytes ever waiting in the queue at once.
    public internal(set) var maxQueuedBytes: Int = 0

    /// Width of the intervals of the busy-time and delivered-bytes series.
    public let seriesInterval: Duration
    private var busySeries: [Int64] = []
    private var deliveredSeries: [Int64] = []

    init(seriesInterval: Duration, histogram: DelayHistogram) {
        precondition(seriesInterval.nanoseconds > 0, "series interval must be positive")
        self.seriesInterval = seriesInterval
        self.queueingDelay = histogram
    }

    public func dropped(_ reason: DropReason) -> Counter {
        drops[DropReason.allCases.firstIndex(of: reason)!]
    }

    public var droppedTotal: Counter {
        drops.reduce(into: Counter()) { total, c in
            total.packets += c.packets
            total.bytes += c.bytes
        }
    }

    mutating func recordDrop(_ reason: DropReason, size: Int) {
        drops[DropReason.allCases.firstIndex(of: reason)!].add(size)
    }

    // MARK: Series

    /// Adds (or with `sign` -1 removes) transmitter busy time over `start ..< end`.
    mutating func addBusy(from start: Timestamp, to end: Timestamp, sign: Int64 = 1) {
        guard end > start else { return }
        let width = seriesInterval.nanoseconds
        var t = start.nanoseconds
        while t < end.nanoseconds {
            let index = Int(t / width)
            let bucketEnd = (UInt64(index) + 1) * width
            let until = min(bucketEnd, end.nanoseconds)
            Self.add(&busySeries, index, sign * Int64(until - t))
            t = until
        }
    }

    mutating func addDelivered(bytes: Int, at time: Timestamp) {
        Self.add(&deliveredSeries, Int(time.nanoseconds / seriesInterval.nanoseconds), Int64(bytes))
    }

    private static func add(_ series: inout [Int64], _ index: Int, _ amount: Int64) {
        if index >= series.count { series.append(contentsOf: repeatElement(0, count: index + 1 - series.count)) }
        series[index] += amount
    }

    /// Sum of a series over `from ..< to`, taking a proportional share of partly covered intervals
    /// (exact when `from` and `to` fall on interval boundaries).
    private func sum(_ series: [Int64], from: Timestamp, to: Timestamp) -> Double {
        guard to > from else { return 0 }
        let width = seriesInterval.nanoseconds
        var total = 0.0
        var t = from.nanoseconds
        while t < to.nanoseconds {
            let index = Int(t / width)
            let bucketStart = UInt64(index) * width
            let bucketEnd = bucketStart + width
            let until = min(bucketEnd, to.nanoseconds)
            if index < series.count {
                total += Double(series[index]) * Double(until - t) / Double(width)
            } else {
                break
            }
            t = until
        }
        return total
    }

    /// Fraction of `from ..< to` during which the transmitter was busy serialising (0...1).
    /// A link with unlimited rate never is.
    public func utilisation(from: Timestamp, to: Timestamp) -> Double {
        guard to > from else { return 0 }
        return sum(busySeries, from: from, to: to) / Double((to - from).nanoseconds)
    }

    /// Datagram bytes that reached the far end during `from ..< to`.
    public func deliveredBytes(from: Timestamp, to: Timestamp) -> Double {
        sum(deliveredSeries, from: from, to: to)
    }

    /// Delivered datagram bits per second over `from ..< to`.
    public func deliveredBitsPerSecond(from: Timestamp, to: Timestamp) -> Double {
        guard to > from else { return 0 }
        return deliveredBytes(from: from, to: to) * 8 / (to - from).seconds
    }
}
