// RFC 9002 §7 and Appendix B: NewReno, the default congestion controller of QUIC, with HyStart++
// (RFC 9406) in its initial slow start. Growth is applied once per ACK frame (`onAckProcessed`),
// where the ACK's RTT sample and the bytes in flight on its arrival are known.

public final class NewReno: CongestionController {
    public private(set) var congestionWindow: Int
    public private(set) var ssthresh: Int = .max
    public private(set) var maxDatagramSize: Int
    private var recoveryStartTime: Timestamp?
    private var growth = RenoWindowGrowth()
    public var hystartPhase: HyStartPhase { growth.hystart.phase }
    private var acks = AckedBytesCollector()

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
        growth.hystart.onPacketSent(now: now)
    }

    public func onPacketAcked(_ packet: AckedPacketInfo, rtt: RTTSample, bytesInFlight: Int, now: Timestamp) {
        acks.add(packet, recoveryStart: recoveryStartTime)
    }

    public func onAckProcessed(_ ack: AckSummary) {
        let (acked, newestSent) = acks.take()
        if growth.hystart.onAck(newestSentAcked: newestSent) { ssthresh = congestionWindow }
        let inSlowStart = congestionWindow < ssthresh
        let appLimited = isApplicationLimited(
            priorBytesInFlight: ack.priorBytesInFlight, congestionWindow: Double(congestionWindow),
            maxDatagramSize: maxDatagramSize, inSlowStart: inSlowStart)
        growth.grow(
            &congestionWindow, inSlowStart: inSlowStart, acked: acked, appLimited: appLimited,
            maxDatagramSize: maxDatagramSize, smoothedRTT: ack.rtt.smoothed, coupling: coupling)
        if inSlowStart && ack.hasNewRTTSample { growth.hystart.onRTTSample(ack.rtt.latest) }
        coupling?.update(congestionWindow: congestionWindow, smoothedRTT: ack.rtt.smoothed)
    }

    public func onCongestionEvent(lostPacketSentTime: Timestamp, now: Timestamp) {
        // RFC 9002 §7.3.2: only one reduction per round trip.
        if let start = recoveryStartTime, lostPacketSentTime <= start { return }
        recoveryStartTime = now
        // kLossReductionFactor = 0.5; a coupled path asks its group (BALIA reduces slower paths more).
        let factor = coupling?.decreaseFactor() ?? 0.5
        ssthresh = max(Int(Double(congestionWindow) * factor), minimumWindow)
        congestionWindow = ssthresh
        growth.onReduction()
        coupling?.onCongestionEvent()
        coupling?.update(congestionWindow: congestionWindow)
    }

    public func onPersistentCongestion(now: Timestamp) {
        congestionWindow = minimumWindow
        growth.onReduction()
        recoveryStartTime = nil
        // The coupled group must see the collapse, not the window before it.
        coupling?.update(congestionWindow: congestionWindow)
    }

    public func onMaxDatagramSizeChanged(_ size: Int) {
        maxDatagramSize = size
        congestionWindow = max(congestionWindow, minimumWindow)
    }
}
