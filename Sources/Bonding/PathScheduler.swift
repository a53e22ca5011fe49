// Sender side, between framing and the DATAGRAM send: which WAN path carries this tunnel packet.
// The connection describes each path in a `PathSnapshot`; a `PathScheduler` (one file per
// algorithm, chosen at runtime by `SchedulerKind`) answers "send on these paths" or "wait".
// Rules every scheduler keeps:
// - backup paths carry nothing while a non-backup path is usable; with none usable, backups do;
// - a path is sent on only within its congestion window and its pacing, so no scheduler builds a
//   standing queue on a path to fill it faster: when nothing may send, the answer is "wait".

import Congestion

/// What the connection knows about one path when a packet is to be scheduled.
public struct PathSnapshot: Sendable {
    /// The connection's path ID (the scheduler's decisions name array indices, not IDs).
    public var id: Int
    /// Validated and not failed or abandoned.
    public var isUsable: Bool
    /// Marked backup (PATH_STATUS_BACKUP): used only when no non-backup path is usable.
    public var isBackup: Bool
    public var congestionWindow: Int
    public var bytesInFlight: Int
    public var smoothedRTT: Duration
    public var minRTT: Duration
    public var rttVariation: Duration
    /// Delivery rate estimate in bytes per second (0: unknown).
    public var deliveryRate: Double
    /// Fraction of packets lost recently (0...1).
    public var lossRate: Double
    /// When the pacer lets the next packet leave (nil: now).
    public var nextSendTime: Timestamp?
    /// User weight for the `weighted` scheduler (values below 1 count as 1).
    public var weight: Int

    public init(
        id: Int, isUsable: Bool = true, isBackup: Bool = false, congestionWindow: Int, bytesInFlight: Int = 0,
        smoothedRTT: Duration, minRTT: Duration = .zero, rttVariation: Duration = .zero,
        deliveryRate: Double = 0, lossRate: Double = 0, nextSendTime: Timestamp? = nil, weight: Int = 1
    ) {
        self.id = id
        self.isUsable = isUsable
        self.isBackup = isBackup
        self.congestionWindow = congestionWindow
        self.bytesInFlight = bytesInFlight
        self.smoothedRTT = smoothedRTT
        self.minRTT = minRTT
        self.rttVariation = rttVariation
        self.deliveryRate = deliveryRate
        self.lossRate = lossRate
        self.nextSendTime = nextSendTime
        self.weight = weight
    }

    /// RFC 9002 §7: a packet may not take bytes in flight above the congestion window.
    public func hasWindow(for bytes: Int) -> Bool { bytesInFlight + bytes <= congestionWindow }

    /// The pacer allows a packet at `now`.
    public func isPaced(at now: Timestamp) -> Bool { nextSendTime.map { now < $0 } ?? false }

    /// Window and pacing both allow a packet of `bytes` now.
    public func canSend(_ bytes: Int, now: Timestamp) -> Bool { hasWindow(for: bytes) && !isPaced(at: now) }

    /// Capacity estimate in bytes per second: the larger of the delivery rate and cwnd / sRTT.
    /// The delivery rate alone would trap a path that was app-limited (little sent → low rate →
    /// little sent); cwnd / sRTT alone overshoots while a window is still growing.
    public var estimatedRate: Double {
        let rtt = smoothedRTT > .zero ? smoothedRTT : (minRTT > .zero ? minRTT : .milliseconds(333))
        return max(deliveryRate, Double(max(congestionWindow, 1)) / rtt.seconds, 1)
    }

    /// One-way delay estimate: half the smoothed RTT (else half the minimum RTT).
    public var oneWayDelay: Duration { (smoothedRTT > .zero ? smoothedRTT : minRTT) / 2 }

    /// The RTT schedulers compare: smoothed, else minimum.
    var rtt: Duration { smoothedRTT > .zero ? smoothedRTT : minRTT }
}

/// A set of indices into the snapshot array (at most 64 paths). Iterating allocates nothing.
public struct PathSet: Hashable, Sendable, Sequence, CustomStringConvertible {
    public var bits: UInt64
    public init(bits: UInt64 = 0) { self.bits = bits }
    public init(_ indices: some Sequence<Int>) {
        bits = 0
        for i in indices { insert(i) }
    }
    public static func single(_ index: Int) -> PathSet { PathSet(bits: 1 << UInt64(index)) }

    public var isEmpty: Bool { bits == 0 }
    public var count: Int { bits.nonzeroBitCount }
    public var first: Int? { bits == 0 ? nil : bits.trailingZeroBitCount }
    public func contains(_ index: Int) -> Bool { index >= 0 && index < 64 && bits & (1 << UInt64(index)) != 0 }
    public mutating func insert(_ index: Int) {
        if index >= 0 && index < 64 { bits |= 1 << UInt64(index) }
    }

    public struct Iterator: IteratorProtocol {
        var rest: UInt64
        public mutating func next() -> Int? {
            guard rest != 0 else { return nil }
            let i = rest.trailingZeroBitCount
            rest &= rest - 1
            return i
        }
    }
    public func makeIterator() -> Iterator { Iterator(rest: bits) }
    public var description: String { "PathSet(\(Array(self)))" }
}

/// How the daemon classes an inner packet (see `FlowClassifier`).
public enum TrafficClass: UInt8, Hashable, Sendable {
    /// Throughput matters: may ride a slow path to add its capacity.
    case bulk
    /// Delay matters (VoIP, games, DNS, pings, TCP ACKs): schedulers that look at it keep it on
    /// the path where it arrives first, even if that means waiting a moment for window.
    case interactive
}

/// The packet to be scheduled.
public struct SchedulingRequest: Hashable, Sendable {
    /// Datagram size in bytes (what counts against the window).
    public var size: Int
    public var trafficClass: TrafficClass
    /// Bytes waiting to be sent, this packet included (ECF's k); defaults to `size`.
    public var queuedBytes: Int
    /// The caller gave `queuedBytes`: the sender's backlog is known. Unknown (a saturating or
    /// unmeasured source) is taken as more than any path could drain soon.
    public var backlogIsKnown: Bool

    public init(size: Int, trafficClass: TrafficClass = .bulk, queuedBytes: Int? = nil) {
        self.size = size
        self.trafficClass = trafficClass
        self.queuedBytes = max(queuedBytes ?? size, size)
        self.backlogIsKnown = queuedBytes != nil
    }
}

/// A scheduler's answer.
public enum SchedulingDecision: Hashable, Sendable {
    /// Send on these paths (indices into the snapshot array): one, or several for `redundant`.
    case send(PathSet)
    /// Send nothing now. With a time: ask again then (pacing). Without: ask again when the
    /// window opens (an acknowledgement, a loss, a path change).
    case wait(until: Timestamp?)
}

/// A sender-side path scheduler. Schedulers keep small fixed state (a cursor, deficits), so
/// they are classes; `schedule` assumes the caller sends as told and refreshes the snapshots
/// (bytes in flight, pacing) before the next call.
public protocol PathScheduler: AnyObject {
    var kind: SchedulerKind { get }
    /// - Parameters:
    ///   - packet: the packet to place.
    ///   - paths: every path of the connection, at most 64 (later ones are never chosen).
    ///   - now: the current time.
    func schedule(_ packet: SchedulingRequest, paths: [PathSnapshot], now: Timestamp) -> SchedulingDecision
}

/// The schedulers by the names the configuration and `tquicctl scheduler` use.
public enum SchedulerKind: String, CaseIterable, Hashable, Sendable {
    case aggregate, minrtt, roundrobin, weighted, blest, ecf, redundant

    public static let `default` = SchedulerKind.aggregate

    /// A fresh scheduler of this kind with default parameters.
    public func makeScheduler() -> any PathScheduler {
        switch self {
        case .aggregate: return AggregateScheduler()
        case .minrtt: return MinRTTScheduler()
        case .roundrobin: return RoundRobinScheduler()
        case .weighted: return WeightedScheduler()
        case .blest: return BLESTScheduler()
        case .ecf: return ECFScheduler()
        case .redundant: return RedundantScheduler()
        }
    }

    /// The scheduler named `name` (case-insensitive), or nil.
    public static func makeScheduler(named name: String) -> (any PathScheduler)? {
        SchedulerKind(rawValue: name.lowercased())?.makeScheduler()
    }
}

/// The rules every scheduler shares.
public enum PathEligibility {
    /// Paths allowed to carry traffic now: the usable non-backup paths, or, when there are none,
    /// the usable backup paths.
    public static func eligible(_ paths: [PathSnapshot]) -> PathSet {
        var main = PathSet()
        var backup = PathSet()
        for (i, path) in paths.enumerated() where i < 64 && path.isUsable {
            if path.isBackup { backup.insert(i) } else { main.insert(i) }
        }
        return main.isEmpty ? backup : main
    }

    /// Eligible paths whose window and pacer take a packet of `bytes` now.
    public static func sendable(_ paths: [PathSnapshot], among eligible: PathSet, bytes: Int, now: Timestamp) -> PathSet {
        var set = PathSet()
        for i in eligible where paths[i].canSend(bytes, now: now) { set.insert(i) }
        return set
    }

    /// "Wait": until the earliest pacing time among eligible paths with window, else until the
    /// window opens.
    public static func wait(_ paths: [PathSnapshot], among eligible: PathSet, bytes: Int) -> SchedulingDecision {
        var earliest: Timestamp?
        for i in eligible where paths[i].hasWindow(for: bytes) {
            if let t = paths[i].nextSendTime, earliest.map({ t < $0 }) ?? true { earliest = t }
        }
        return .wait(until: earliest)
    }

    /// The index in `set` with the smallest RTT (ties: lowest index).
    public static func fastest(_ paths: [PathSnapshot], in set: PathSet) -> Int? {
        var best: Int?
        for i in set where best.map({ paths[i].rtt < paths[$0].rtt }) ?? true { best = i }
        return best
    }
}
