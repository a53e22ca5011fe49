// What a one-directional WAN link is, as plain data: rate, propagation delay, jitter, random and
// burst loss, a drop-tail queue, and a schedule of outages and rate changes. `Link` runs a model;
// `Scenario` builds models for named test situations.
import Congestion

/// The parameters of one direction of one WAN path.
///
/// A packet offered to the link waits in a drop-tail queue until the transmitter is free, is
/// serialised at the current rate, then propagates for `delay` (± jitter) to the far end:
///
///     start     = max(offer time, transmitter busy until)
///     departure = start + wireBytes * 8 / rate        (integrated across scheduled rate changes)
///     arrival   = departure + delay + jitter offset
///     queueing delay = start - offer time = departure - offer time - serialisation time
///
/// `wireBytes` is the datagram size plus `overheadBytes` (the IP and UDP headers the datagram rides
/// in): it is what the rate and the queue capacity are counted in.
public struct LinkModel: Sendable, Equatable {
    /// Serialisation rate in bit/s; 0 means unlimited (no serialisation time, never a queue).
    public var rateBitsPerSecond: UInt64
    /// One-way propagation delay, added after serialisation.
    public var delay: Duration
    public var jitter: Jitter
    /// Independent per-packet loss probability (0...1).
    public var lossProbability: Double
    /// Correlated (bursty) loss, or nil for none. Applies on top of `lossProbability`.
    public var burstLoss: GilbertElliott?
    /// Bytes (on the wire) that may wait for the transmitter; a packet that does not fit is dropped
    /// (drop-tail). A packet that finds the transmitter idle never waits, so even capacity 0 passes
    /// traffic that arrives slower than the rate. nil means unbounded.
    public var queueCapacityBytes: Int?
    /// Bytes added to each datagram on the wire (28 for IPv4 + UDP, 48 for IPv6 + UDP).
    public var overheadBytes: Int
    /// Windows in which the link carries nothing (see `Outage` for what is lost).
    public var outages: [Outage]
    /// Points in time where the rate changes, in any order (kept sorted).
    public var rateChanges: [RateChange]
    /// ECN marking (RFC 3168): an ECN-capable packet that waits at least this long in the queue
    /// leaves CE-marked instead of being dropped later (a step AQM); nil: the link never marks.
    public var ecnMarkingThreshold: Duration? = nil
    /// Probability (0...1) that a delivered packet arrives with one byte flipped (netem's
    /// `corrupt`). The packet is not dropped by the link; whoever checks it (a checksum, an AEAD)
    /// decides. Drawn from its own stream, after the loss draws, only for packets not lost.
    public var corruptionProbability: Double = 0

    /// IPv4 (20) + UDP (8) header bytes, the usual `overheadBytes` for a WAN link carrying QUIC.
    public static let ipv4UDPOverhead = 28

    public init(
        rateBitsPerSecond: UInt64 = 0,
        delay: Duration = .zero,
        jitter: Jitter = .none,
        lossProbability: Double = 0,
        burstLoss: GilbertElliott? = nil,
        queueCapacityBytes: Int? = nil,
        overheadBytes: Int = 0,
        outages: [Outage] = [],
        rateChanges: [RateChange] = []
    ) {
        self.rateBitsPerSecond = rateBitsPerSecond
        self.delay = delay
        self.jitter = jitter
        self.lossProbability = lossProbability
        self.burstLoss = burstLoss
        self.queueCapacityBytes = queueCapacityBytes
        self.overheadBytes = overheadBytes
        self.outages = outages.sorted { $0.start < $1.start }
        self.rateChanges = rateChanges.sorted { $0.time < $1.time }
    }

    /// `megabits` Mbit/s in bit/s (1 Mbit = 10^6 bit, as tc and ISPs count).
    public static func mbps(_ megabits: Double) -> UInt64 {
        UInt64(max(0, megabits) * 1_000_000 + 0.5)  // rounded, without libm
    }

    /// The rate in force at `time` (the last rate change at or before it, else the initial rate).
    public func rate(at time: Timestamp) -> UInt64 {
        var rate = rateBitsPerSecond
        for change in rateChanges {
            guard change.time <= time else { break }
            rate = change.rateBitsPerSecond
        }
        return rate
    }

    /// False while an outage is in force at `time`.
    public func isUp(at time: Timestamp) -> Bool {
        !outages.contains { $0.contains(time) }
    }

    /// Bytes that one round trip `rtt` holds at `rate` (the bandwidth-delay product).
    public static func bandwidthDelayProduct(rate: UInt64, rtt: Duration) -> Int {
        Int(Double(rate) * rtt.seconds / 8)
    }

    /// Adds an outage, keeping the schedule sorted.
    public mutating func addOutage(_ outage: Outage) {
        outages.append(outage)
        outages.sort { $0.start < $1.start }
    }

    /// Adds a rate change, keeping the schedule sorted (a later change at the same time wins).
    public mutating func addRateChange(_ change: RateChange) {
        rateChanges.append(change)
        rateChanges.sort { $0.time < $1.time }
    }
}

/// Delay variation added to each packet's propagation delay.
///
/// The offset is drawn uniformly (`symmetric`: -amplitude...+amplitude, `positive`: 0...amplitude)
/// and the propagation delay never goes below zero. By default (`ordering: .preserved`) a packet
/// never overtakes one sent before it on the same link (its arrival is held back to the previous
/// arrival), as on an LTE bearer whose radio layer delivers in order: jitter then shows as delay
/// variation and bunching, not reordering. `.reordering` lets each packet keep its own draw, which
/// reorders packets closer together than the jitter (netem's behaviour).
///
/// With `holdTime` zero every packet draws a fresh offset; a non-zero `holdTime` keeps an offset for
/// that long before drawing the next, a slowly wandering delay rather than per-packet noise (with
/// per-packet draws and preserved order, a busy link's delay sits near `delay + amplitude`).
public struct Jitter: Sendable, Equatable {
    public enum Distribution: String, Sendable { case symmetric, positive }
    public enum Ordering: String, Sendable { case preserved, reordering }

    public var amplitude: Duration
    public var distribution: Distribution
    public var ordering: Ordering
    public var holdTime: Duration

    public init(
        amplitude: Duration,
        distribution: Distribution = .symmetric,
        ordering: Ordering = .preserved,
        holdTime: Duration = .zero
    ) {
        self.amplitude = amplitude
        self.distribution = distribution
        self.ordering = ordering
        self.holdTime = holdTime
    }

    public static let none = Jitter(amplitude: .zero)
}

/// The Gilbert–Elliott two-state loss model, stepped once per packet the link transmits.
///
/// In the good state a packet is lost with probability `lossInGood`, in the bad state with
/// `lossInBad`; after each packet the chain moves good → bad with probability `goodToBad` and
/// bad → good with `badToGood`. With the defaults (lossless good state, lossy bad state) this is
/// Gilbert's model: bursts of mean length 1/`badToGood` packets.
public struct GilbertElliott: Sendable, Equatable {
    public var goodToBad: Double
    public var badToGood: Double
    public var lossInBad: Double
    public var lossInGood: Double

    public init(goodToBad: Double, badToGood: Double, lossInBad: Double = 1, lossInGood: Double = 0) {
        self.goodToBad = goodToBad
        self.badToGood = badToGood
        self.lossInBad = lossInBad
        self.lossInGood = lossInGood
    }

    /// Long-run fraction of packets in the bad state: p / (p + r).
    public var badStateProbability: Double {
        goodToBad + badToGood > 0 ? goodToBad / (goodToBad + badToGood) : 0
    }

    /// Long-run loss rate of this model alone.
    public var meanLossRate: Double {
        let bad = badStateProbability
        return bad * lossInBad + (1 - bad) * lossInGood
    }

    /// Mean number of consecutive packets spent in the bad state.
    public var meanBadRunLength: Double {
        badToGood > 0 ? 1 / badToGood : .infinity
    }
}

/// A window `start ..< end` in which the link is cut.
///
/// What is lost: every packet offered during the window, and every packet accepted before `start`
/// that has not reached the far end by `start` (waiting in the queue, being serialised, or
/// propagating): a cut cable or a dead modem loses what it holds. The queue is empty when the link
/// comes back, so the first packet after `end` sees an idle link.
public struct Outage: Sendable, Equatable {
    public var start: Timestamp
    public var end: Timestamp

    /// - Parameters:
    ///   - start: first instant of the cut (a packet arriving exactly then is lost).
    ///   - end: first instant the link carries traffic again; nil for "never" (cut for good).
    public init(from start: Timestamp, to end: Timestamp? = nil) {
        self.start = start
        self.end = end ?? Timestamp(nanoseconds: .max)
        precondition(self.end >= start, "an outage must not end before it starts")
    }

    public var isPermanent: Bool { end.nanoseconds == .max }

    public func contains(_ time: Timestamp) -> Bool {
        start <= time && time < end
    }
}

/// At `time` the link's rate becomes `rateBitsPerSecond` (0 = unlimited).
///
/// Scheduled changes are known in advance, so a packet whose serialisation spans the change is
/// serialised exactly: the part before at the old rate, the rest at the new one.
public struct RateChange: Sendable, Equatable {
    public var time: Timestamp
    public var rateBitsPerSecond: UInt64

    public init(at time: Timestamp, rateBitsPerSecond: UInt64) {
        self.time = time
        self.rateBitsPerSecond = rateBitsPerSecond
    }
}
