// RFC 9002 §7 and Appendix B: NewReno, the default congestion controller of QUIC.

public final class NewReno: CongestionController {
    public private(set) var congestionWindow: Int
    public private(set) var ssthresh: Int = .max
    public private(set) var maxDatagramSize: Int
    private var recoveryStartTime: Timestamp?
    /// Bytes acknowledged in congestion avoidance since the window last grew.
    private var bytesAckedInCA = 0
    private var coupledRemainder = 0.0

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

    public func onPacketSent(bytes: Int, bytesInFlight: Int, now: Timestamp) {}

    public func onPacketAcked(_ packet: AckedPacketInfo, rtt: RTTSample, bytesInFlight: Int, now: Timestamp) {
        // RFC 9002 §7.3.2: no increase for packets sent during recovery.
        if let start = recoveryStartTime, packet.timeSent <= start { return }
        // RFC 9002 §7.8: do not grow the window when the sender is not using it (app-limited).
        if congestionWindow < ssthresh {
            congestionWindow += packet.sentBytes // slow start
        } else if let coupling {
            // Coupled increase (RFC 6356 §3 and its successors), accumulated to whole bytes.
            coupling.update(congestionWindow: congestionWindow, smoothedRTT: rtt.smoothed)
            coupledRemainder += coupling.congestionAvoidanceIncrease(ackedBytes: packet.sentBytes, maxDatagramSize: maxDatagramSize)
            let whole = Int(coupledRemainder)
            congestionWindow += whole
            coupledRemainder -= Double(whole)
        } else {
            bytesAckedInCA += packet.sentBytes
            if bytesAckedInCA >= congestionWindow {
                bytesAckedInCA -= congestionWindow
                congestionWindow += maxDatagramSize
            }
        }
        coupling?.update(congestionWindow: congestionWindow, smoothedRTT: rtt.smoothed)
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
        coupling?.onCongestionEvent()
        coupling?.update(congestionWindow: congestionWindow)
    }

    public func onPersistentCongestion(now: Timestamp) {
        congestionWindow = minimumWindow
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
