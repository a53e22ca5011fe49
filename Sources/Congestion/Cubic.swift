// CUBIC (RFC 9438) with HyStart++ slow start (RFC 9406), inside QUIC's recovery rules (RFC 9002 §7).
// After a reduction the window follows W_cubic(t) = C(t-K)^3 + W_max: a fast concave climb back
// towards the window of the last loss, a plateau, then a convex probe beyond it. It never grows
// slower than a Reno flow would (the Reno-friendly region) and drops to β·cwnd once per round trip.
//
// Windows are kept in bytes (as Double, so per-ACK fractions add up); C is in segments/s³ and is
// scaled by the maximum datagram size, so K and W_cubic mean what the RFC says. Increases are
// applied once per ACK frame (`onAckProcessed`), which is where an ACK's RTT sample arrives too.

public final class Cubic: CongestionController {
    public typealias HyStartPhase = Congestion.HyStartPhase

    // RFC 9438 §4.2 (C) and §4.6 (β_cubic).
    static let c = 0.4
    static let beta = 0.7
    /// RFC 9438 §4.3: α_cubic = 3(1 − β)/(1 + β), the Reno-equivalent increase per round trip.
    static let alpha = 3 * (1 - beta) / (1 + beta)

    private var cwnd: Double
    public var congestionWindow: Int { Int(cwnd) }
    public private(set) var ssthresh: Int = .max
    public private(set) var maxDatagramSize: Int
    private var hystart = HyStart()
    public var hystartPhase: HyStartPhase { hystart.phase }

    // RFC 9438 §4.1.2 state. W_max is 0 while undefined (before the first loss, after a collapse).
    /// Window just before the last reduction, lowered by fast convergence (bytes).
    public private(set) var wMax: Double = 0
    /// Seconds the curve takes to climb from cwnd_epoch back to W_max (§4.2).
    public private(set) var k: Double = 0
    /// Start of the current congestion-avoidance stage (t_epoch); nil until its first ACK.
    public private(set) var epochStart: Timestamp?
    private var cwndPrior: Double = 0
    private var cwndEpoch: Double = 0
    /// Reno-friendly estimate (bytes, §4.3).
    private var wEst: Double = 0

    /// RFC 9002 §7.3.2: a reduction starts a recovery period; packets sent before it don't grow the window.
    private var recoveryStartTime: Timestamp?

    private var acks = AckedBytesCollector()
    private var lastAckTime: Timestamp?

    /// The connection's coupled group (LIA/OLIA/BALIA), if the paths are coupled.
    public let coupling: CouplingMember?

    public let name = "cubic"
    public var pacingRate: Double? { nil }

    public init(maxDatagramSize: Int = 1200, coupling: CouplingMember? = nil) {
        self.maxDatagramSize = maxDatagramSize
        self.cwnd = Double(NewReno.initialWindow(maxDatagramSize))
        self.coupling = coupling
    }

    /// RFC 9002 §7.2: 2 * max_datagram_size.
    var minimumWindow: Double { Double(2 * maxDatagramSize) }
    private var mss: Double { Double(maxDatagramSize) }

    /// W_cubic(t) in bytes (RFC 9438 §4.2, Figure 1), t in seconds since the epoch.
    public func cubicWindow(at t: Double) -> Double {
        let d = t - k
        return Cubic.c * mss * d * d * d + wMax
    }

    // MARK: - Sending and acknowledgement

    public func onPacketSent(bytes: Int, bytesInFlight: Int, now: Timestamp) {
        hystart.onPacketSent(now: now)
    }

    public func onPacketAcked(_ packet: AckedPacketInfo, rtt: RTTSample, bytesInFlight: Int, now: Timestamp) {
        acks.add(packet, recoveryStart: recoveryStartTime)
    }

    public func onAckProcessed(_ ack: AckSummary) {
        let (acked, newestSent) = acks.take()
        defer {
            lastAckTime = ack.now
            coupling?.update(congestionWindow: congestionWindow, smoothedRTT: ack.rtt.smoothed)
        }

        if hystart.onAck(newestSentAcked: newestSent) { ssthresh = congestionWindow }
        let inSlowStart = cwnd < Double(ssthresh)
        let appLimited = isApplicationLimited(priorBytesInFlight: ack.priorBytesInFlight, inSlowStart: inSlowStart)

        if inSlowStart {
            if acked > 0 && !appLimited {
                // RFC 9406 §4.2: CSS grows by a quarter of slow start. L (the per-ACK cap) is
                // infinite because the connection paces.
                cwnd += Double(acked) / Double(hystart.growthDivisor)
            }
            if ack.hasNewRTTSample { hystart.onRTTSample(ack.rtt.latest) }
        } else if acked > 0 {
            congestionAvoidance(ackedBytes: acked, appLimited: appLimited, ack: ack)
        }
    }

    /// RFC 9002 §7.8, as the Reno-style controllers judge it (RenoGrowth.swift).
    private func isApplicationLimited(priorBytesInFlight: Int, inSlowStart: Bool) -> Bool {
        Congestion.isApplicationLimited(
            priorBytesInFlight: priorBytesInFlight, congestionWindow: cwnd,
            maxDatagramSize: maxDatagramSize, inSlowStart: inSlowStart)
    }

    // MARK: - Congestion avoidance (RFC 9438 §4.2–4.5)

    private func congestionAvoidance(ackedBytes: Int, appLimited: Bool, ack: AckSummary) {
        let now = ack.now
        if appLimited {
            // RFC 9438 §5.8: t must not count time the window sat unused, so the epoch moves
            // forward by the interval this ACK closes.
            if let start = epochStart, let last = lastAckTime { epochStart = start + (now - last) }
            return
        }
        if isCoupled, let coupling {
            // RFC 6356 over CUBIC: while coupled, the linked Reno-like increase replaces the curve;
            // a fresh epoch starts from whatever window coupling left when it ends.
            epochStart = nil
            coupling.update(congestionWindow: congestionWindow, smoothedRTT: ack.rtt.smoothed)
            cwnd += coupling.congestionAvoidanceIncrease(ackedBytes: ackedBytes, maxDatagramSize: maxDatagramSize)
            return
        }
        if epochStart == nil { beginEpoch(now: now) }
        let t = (now - epochStart!).seconds
        let acked = Double(ackedBytes)

        // §4.2: aim for where the curve will be one RTT from now, within [cwnd, 1.5 cwnd].
        let target = min(max(cubicWindow(at: t + ack.rtt.smoothed.seconds), cwnd), 1.5 * cwnd)

        // §4.3: W_est grows like Reno with α_cubic, and with α = 1 once it reaches cwnd_prior.
        let alpha = wEst >= cwndPrior ? 1.0 : Cubic.alpha
        wEst += alpha * acked * mss / cwnd

        let cubicNext = cwnd + (target - cwnd) / cwnd * acked  // §4.4/§4.5, per ACK
        if cubicWindow(at: t) < wEst {
            // Reno-friendly region: cwnd = W_est. Never below where the curve would take it, so a
            // switch of region cannot shrink the window.
            cwnd = max(wEst, cubicNext)
        } else {
            cwnd = cubicNext
        }
    }

    /// §4.2: a congestion-avoidance stage starts at its first ACK.
    private func beginEpoch(now: Timestamp) {
        epochStart = now
        cwndEpoch = cwnd
        wEst = cwnd
        if wMax <= cwnd {
            // W_max undefined: the first avoidance after HyStart++ left slow start without a loss
            // (§4.10), or after a collapse (§4.8). Then K = 0 and W_max = the window now.
            wMax = cwnd
            k = 0
            if cwndPrior == 0 { cwndPrior = cwnd }
        } else {
            k = Cubic.cubeRoot((wMax - cwndEpoch) / (Cubic.c * mss))
        }
    }

    /// Coupled only with a coupling algorithm and another path to couple with; a lone path is
    /// plain CUBIC.
    private var isCoupled: Bool { coupling?.isCoupledWithOthers ?? false }

    // MARK: - Congestion (RFC 9438 §4.6–4.8, RFC 9002 §7.3.2 and §7.6.2)

    public func onCongestionEvent(lostPacketSentTime: Timestamp, now: Timestamp) {
        // RFC 9002 §7.3.2: only one reduction per round trip.
        if let start = recoveryStartTime, lostPacketSentTime <= start { return }
        recoveryStartTime = now
        // §4.7 fast convergence: a loss below the previous W_max means capacity shrank or a new
        // flow arrived, so release some by aiming lower.
        wMax = cwnd < wMax ? cwnd * (1 + Cubic.beta) / 2 : cwnd
        cwndPrior = cwnd
        // §4.6: multiplicative decrease (of cwnd; the RFC allows flight size or cwnd). While
        // coupled, the increase is the coupled algorithm's Reno-like one, so the decrease is its
        // too (0.5, or BALIA's): with β = 0.7 the paths together took 1.4 × a single CUBIC flow's
        // share of a shared bottleneck under OLIA and BALIA (tquic-sim shared-bottleneck).
        let factor = isCoupled ? (coupling?.decreaseFactor() ?? Cubic.beta) : Cubic.beta
        let reduced = max((cwnd * factor).rounded(), minimumWindow)
        ssthresh = Int(reduced)
        cwnd = Double(ssthresh)
        epochStart = nil
        hystart.finish()
        coupling?.onCongestionEvent()
        coupling?.update(congestionWindow: congestionWindow)
    }

    public func onPersistentCongestion(now: Timestamp) {
        if ssthresh == .max { ssthresh = Int(max(cwnd * Cubic.beta, minimumWindow)) }
        cwnd = minimumWindow
        recoveryStartTime = nil
        epochStart = nil
        // §4.8: the first avoidance stage after the collapse uses K = 0 and W_max = its start window.
        wMax = 0
        hystart.finish()
        coupling?.update(congestionWindow: congestionWindow)
    }

    public func onMaxDatagramSizeChanged(_ size: Int) {
        maxDatagramSize = size
        cwnd = max(cwnd, minimumWindow)
    }

    /// ∛x for x ≥ 0 by Newton's method (the standard library has no cbrt without Foundation).
    static func cubeRoot(_ x: Double) -> Double {
        guard x > 0, x.isFinite else { return 0 }
        // Start within a factor of two of the root: 2^(exponent/3).
        var r = Double(sign: .plus, exponent: x.exponent / 3, significand: 1)
        for _ in 0..<16 {
            let next = (2 * r + x / (r * r)) / 3
            if next == r { break }
            r = next
        }
        return r
    }
}
