// RFC 9002 §7 and Appendix B: NewReno, the default congestion controller of QUIC, with HyStart++
// (RFC 9406) in its initial slow start. Growth is applied once per ACK frame (`onAckProcessed`),
// where the ACK's RTT sample and the bytes in flight on its arrival are known.

public final class NewReno: CongestionController {
    public private(set) var congestionWindow: Int
    public private(set) var ssthresh: Int = .max
    public private(set) var maxDatagramSize: Int
    private var recoveryStartTime: Timestamp?
    /// Bytes acknowledged in congestion avoidance since the window last grew.
    private var bytesAckedInCA = 0
    private var coupledRemainder = 0.0
    /// Slow-start bytes not yet added while CSS divides growth (whole bytes only are added).
    private var slowStartRemainder = 0
    private var hystart = HyStart()
    public var hystartPhase: HyStartPhase { hystart.phase }

    // Per-ACK accumulation between `onPacketAcked` and `onAckProcessed`.
    /// Bytes of this ACK sent after the recovery start: the ones that may grow the window.
    private var growthBytes = 0
    private var largestAckedSentTime: Timestamp?

    /// The connection's coupled group (LIA/OLIA/BALIA), if the paths are coupled.
    public let coupling: CouplingMember?

    public let name = "newreno"
    public var pacingRate: Double? { nil }

    public init(maxDatagramSize: Int = 1200, coupling: CouplingMember? = nil) {
        self.maxDatagramSize = maxDatagramSize
        self.congestionWindow = NewReno.initialWindow(maxDatagramSize)
        self.coupling = coupling
    }

    /// RFC 9002 §7.2: min(10 * max_datagram_size, max(14720, 2 * max_datagram_size)).
    static func initialWindow(_ mds: Int) -> Int { min(10 * mds, max(14720, 2 * mds)) }
    /// RFC 9002 §7.2: 2 * max_datagram_size.
    var minimumWindow: Int { 2 * maxDatagramSize }

    public func onPacketSent(bytes: Int, bytesInFlight: Int, now: Timestamp) {
        hystart.onPacketSent(now: now)
    }

    public func onPacketAcked(_ packet: AckedPacketInfo, rtt: RTTSample, bytesInFlight: Int, now: Timestamp) {
        if largestAckedSentTime.map({ packet.timeSent > $0 }) ?? true { largestAckedSentTime = packet.timeSent }
        // RFC 9002 §7.3.2: no increase for packets sent during recovery.
        if let start = recoveryStartTime, packet.timeSent <= start { return }
        growthBytes += packet.sentBytes
    }

    public func onAckProcessed(_ ack: AckSummary) {
        let acked = growthBytes
        let newestSent = largestAckedSentTime
        growthBytes = 0
        largestAckedSentTime = nil
        defer { coupling?.update(congestionWindow: congestionWindow, smoothedRTT: ack.rtt.smoothed) }

        if hystart.onAck(newestSentAcked: newestSent) { ssthresh = congestionWindow }
        let inSlowStart = congestionWindow < ssthresh
        // RFC 9002 §7.8: no growth while the sender does not use the window. Judged as in
        // Cubic.swift: in flight on arrival + 3 MSS below cwnd in congestion avoidance, under
        // half of cwnd in (paced) slow start.
        let appLimited = inSlowStart ? 2 * ack.priorBytesInFlight < congestionWindow
                                     : ack.priorBytesInFlight + 3 * maxDatagramSize < congestionWindow
        if inSlowStart {
            if acked > 0 && !appLimited {
                // RFC 9406 §4.2: CSS grows by a quarter of slow start.
                slowStartRemainder += acked
                let divisor = hystart.growthDivisor
                congestionWindow += slowStartRemainder / divisor
                slowStartRemainder %= divisor
            }
            if ack.hasNewRTTSample { hystart.onRTTSample(ack.rtt.latest) }
        } else if acked > 0 && !appLimited {
            if let coupling {
                // Coupled increase (RFC 6356 §3 and its successors), accumulated to whole bytes.
                coupling.update(congestionWindow: congestionWindow, smoothedRTT: ack.rtt.smoothed)
                coupledRemainder += coupling.congestionAvoidanceIncrease(ackedBytes: acked, maxDatagramSize: maxDatagramSize)
                let whole = Int(coupledRemainder)
                congestionWindow += whole
                coupledRemainder -= Double(whole)
            } else {
                // RFC 9002 §7.3.3: one maximum datagram per window of acknowledged bytes.
                bytesAckedInCA += acked
                while bytesAckedInCA >= congestionWindow {
                    bytesAckedInCA -= congestionWindow
                    congestionWindow += maxDatagramSize
                }
            }
        }
    }

    public func onCongestionEvent(lostPacketSentTime: Timestamp, now: Timestamp) {
        // RFC 9002 §7.3.2: only one reduction per round trip.
        if let start = recoveryStartTime, lostPacketSentTime <= start { return }
        recoveryStartTime = now
        // kLossReductionFactor = 0.5; a coupled path asks its group (BALIA reduces slower paths more).
        let factor = coupling?.decreaseFactor() ?? 0.5
        ssthresh = max(Int(Double(congestionWindow) * factor), minimumWindow)
        congestionWindow = ssthresh
        bytesAckedInCA = 0
        hystart.finish()
        coupling?.onCongestionEvent()
        coupling?.update(congestionWindow: congestionWindow)
    }

    public func onPersistentCongestion(now: Timestamp) {
        congestionWindow = minimumWindow
        hystart.finish()
        recoveryStartTime = nil
        bytesAckedInCA = 0
        // The coupled group must see the collapse, not the window before it.
        coupling?.update(congestionWindow: congestionWindow)
    }

    public func onMaxDatagramSizeChanged(_ size: Int) {
        maxDatagramSize = size
        congestionWindow = max(congestionWindow, minimumWindow)
    }
}
