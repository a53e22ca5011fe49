// Where the tunnel's bulk traffic comes from in a simulated run: a source that always has another
// inner packet (the links' capacity test), one that offers a fixed rate (a user's download that
// does not need the whole bond), or a simple inner TCP-like flow whose window is clocked by the
// acknowledgements of the packets the VPS delivered, so tunnel delay and reordering feed back
// into how much it sends.
import Congestion

public enum TunnelSource: Equatable, Sendable, CustomStringConvertible {
    case saturating
    /// A constant bit rate of inner packets (Mbit/s of inner packet bytes).
    case rateLimited(mbps: Double)
    /// One inner Reno-like flow: window in packets, slow start then +1 per window, halved on a
    /// loss (a packet not acknowledged within the inner RTO); acknowledgements return from the VPS
    /// after the shortest path's one-way delay.
    case innerTCP

    /// `saturating`, `rate:MBPS` or `tcp`.
    public init?(argument: String) {
        if argument == "saturating" {
            self = .saturating
            return
        }
        if argument == "tcp" {
            self = .innerTCP
            return
        }
        if argument.hasPrefix("rate:"), let v = Double(argument.dropFirst(5)), v > 0 {
            self = .rateLimited(mbps: v)
            return
        }
        return nil
    }

    public var description: String {
        switch self {
        case .saturating: return "saturating"
        case .rateLimited(let mbps): return "rate:\(mbps)"
        case .innerTCP: return "tcp"
        }
    }
}

/// The bulk source's state during a run.
struct BulkSource {
    let kind: TunnelSource
    let packetBytes: Int
    // Rate-limited: a token bucket of inner bytes. What it saves up is what waits in the daemon's
    // TUN queue while the tunnel cannot keep up: at most `burst`, 32 packets (more are dropped
    // there). Its size is the backlog the scheduler sees. A 500-packet queue (a TUN device's
    // default txqueuelen) let 600 kB out at once after a pause and cost 25 packets on `equal`.
    private var credit: Double
    private var lastRefill = Timestamp.zero
    private let burst: Double
    // Inner TCP-like flow.
    private(set) var window: Double = 10
    private var ssthresh = Double.infinity
    /// Tunnel sequence → when the packet was handed to the tunnel.
    private var outstanding: [UInt32: Timestamp] = [:]
    private var smoothedRTT: Duration?
    private var recoveryUntil = Timestamp.zero
    private(set) var innerLosses = 0

    init(kind: TunnelSource, packetBytes: Int) {
        self.kind = kind
        self.packetBytes = packetBytes
        burst = Double(32 * packetBytes)
        credit = Double(packetBytes)
    }

    /// Whether a bulk packet may be handed to the tunnel now; if not, when to ask again (nil: on
    /// the next event, e.g. an inner acknowledgement).
    mutating func available(now: Timestamp) -> (ok: Bool, retryAt: Timestamp?) {
        switch kind {
        case .saturating:
            return (true, nil)
        case .rateLimited(let mbps):
            let rate = mbps * 1e6 / 8
            credit = min(burst, credit + rate * (now - lastRefill).seconds)
            lastRefill = now
            if credit >= Double(packetBytes) { return (true, nil) }
            let wait = (Double(packetBytes) - credit) / rate
            return (false, now + Duration(nanoseconds: UInt64((wait * 1e9).rounded(.up)) + 1))
        case .innerTCP:
            expireLosses(now: now)
            return (Double(outstanding.count) < window, outstanding.isEmpty ? nil : now + rto)
        }
    }

    /// Inner bytes ready to go into the tunnel now (after `available` said yes), as the daemon
    /// would see its TUN queue: what the token bucket holds, or what the inner flow's window
    /// allows beyond what is outstanding. nil for a saturating source: more than any path drains.
    func backlogBytes() -> Int? {
        switch kind {
        case .saturating: return nil
        case .rateLimited: return max(Int(credit), packetBytes)
        case .innerTCP: return max(Int((window - Double(outstanding.count)).rounded(.up)), 1) * packetBytes
        }
    }

    mutating func onHanded(sequence: UInt32, now: Timestamp) {
        switch kind {
        case .saturating: break
        case .rateLimited: credit -= Double(packetBytes)
        case .innerTCP: outstanding[sequence] = now
        }
    }

    /// The inner acknowledgement of `sequence` reached the sender.
    mutating func onAcknowledged(sequence: UInt32, now: Timestamp) {
        guard case .innerTCP = kind, let sent = outstanding.removeValue(forKey: sequence) else { return }
        let sample = now - sent
        smoothedRTT = smoothedRTT.map { Duration(nanoseconds: ($0.nanoseconds * 7 + sample.nanoseconds) / 8) } ?? sample
        window += window < ssthresh ? 1 : 1 / window
    }

    /// The inner RTO: twice the smoothed RTT, at least 1 s (RFC 6298's floor, which also covers
    /// the reorder buffer's longest hold).
    var rto: Duration { max(.seconds(1), (smoothedRTT ?? .seconds(1)) * 2) }

    /// Packets outstanding longer than the RTO are lost: halve once per round trip.
    private mutating func expireLosses(now: Timestamp) {
        let limit = rto
        var lost = false
        for (seq, sent) in outstanding where now - sent > limit {
            outstanding[seq] = nil
            innerLosses += 1
            lost = true
        }
        if lost && now >= recoveryUntil {
            ssthresh = max(window / 2, 2)
            window = ssthresh
            recoveryUntil = now + (smoothedRTT ?? .seconds(1))
        }
    }
}
