// Westwood+ (Mascolo et al., MobiCom 2001; Grieco & Mascolo, ACM CCR 2004): Reno growth, but a
// loss sets the window to the measured bandwidth-delay product instead of halving it. The
// bandwidth estimate is the bytes acknowledged over each RTT, low-pass filtered; a random
// (non-congestion) loss therefore costs little, which suits lossy radio links. The initial slow
// start runs HyStart++ (RFC 9406), as NewReno's and CUBIC's do.
//
// One departure from the papers: while in slow start each RTT sample replaces the estimate
// instead of being filtered. The samples of a slow start climb by up to 2x per round, and the
// 7/8 filter trails them: on a 600 ms satellite path it still read 30 % of the link rate when the
// slow start ended in a loss, so ssthresh came out at a third of the pipe and Reno growth took
// minutes to recover (tquic-sim satellite: 30 % utilisation). The filter exists to smooth ACK
// compression in a steady state, which a slow start is not.

public final class Westwood: CongestionController {
    public private(set) var congestionWindow: Int
    public private(set) var ssthresh: Int = .max
    public private(set) var maxDatagramSize: Int
    /// BWE in bytes per second; 0 until the first RTT of ACKs has been measured.
    public private(set) var bandwidthEstimate: Double = 0
    /// RTT_min (RFC 9002 min_rtt) as last reported with an ACK.
    public private(set) var minRTT = Duration.zero

    // The RTT interval being measured: one bandwidth sample per RTT (Westwood+), which filters
    // out ACK compression that per-ACK samples (original Westwood) would alias.
    private var intervalStart: Timestamp?
    private var intervalBytes = 0
    private var intervalAppLimited = false

    private var recoveryStartTime: Timestamp?
    private var growth = RenoWindowGrowth()
    public var hystartPhase: HyStartPhase { growth.hystart.phase }
    private var acks = AckedBytesCollector()

    /// The connection's coupled group (LIA/OLIA/BALIA), if the paths are coupled.
    public let coupling: CouplingMember?

    public let name = "westwood"
    public var pacingRate: Double? { nil }

    public init(maxDatagramSize: Int = 1200, coupling: CouplingMember? = nil) {
        self.maxDatagramSize = maxDatagramSize
        self.congestionWindow = NewReno.initialWindow(maxDatagramSize)
        self.coupling = coupling
    }

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
        if ack.rtt.minimum.nanoseconds > 0 { minRTT = ack.rtt.minimum }
        if growth.hystart.onAck(newestSentAcked: newestSent) { ssthresh = congestionWindow }
        let inSlowStart = congestionWindow < ssthresh
        let appLimited = isApplicationLimited(
            priorBytesInFlight: ack.priorBytesInFlight, congestionWindow: Double(congestionWindow),
            maxDatagramSize: maxDatagramSize, inSlowStart: inSlowStart)
        sampleBandwidth(ack, appLimited: appLimited, inSlowStart: inSlowStart)
        growth.grow(
            &congestionWindow, inSlowStart: inSlowStart, acked: acked, appLimited: appLimited,
            maxDatagramSize: maxDatagramSize, smoothedRTT: ack.rtt.smoothed, coupling: coupling)
        if inSlowStart && ack.hasNewRTTSample { growth.hystart.onRTTSample(ack.rtt.latest) }
        coupling?.update(congestionWindow: congestionWindow, smoothedRTT: ack.rtt.smoothed)
    }

    /// Westwood+: b_k = bytes acknowledged during the last RTT / its length;
    /// BWE_k = 7/8 BWE_{k-1} + 1/8 b_k (the first sample seeds the filter; in slow start each
    /// sample replaces the estimate, see the top of this file).
    private func sampleBandwidth(_ ack: AckSummary, appLimited: Bool, inSlowStart: Bool) {
        guard let start = intervalStart else {
            // The first ACK opens the first interval; what it acknowledged took an unknown time.
            intervalStart = ack.now
            return
        }
        intervalBytes += ack.ackedBytes
        intervalAppLimited = intervalAppLimited || appLimited
        let elapsed = ack.now - start
        // One RTT (smoothed; at least 1 ms so a tiny RTT cannot make every ACK a sample).
        guard elapsed >= max(ack.rtt.smoothed, .milliseconds(1)) else { return }
        let sample = Double(intervalBytes) / elapsed.seconds
        // An app-limited interval shows what the application sent, not what the path carries:
        // it may raise the estimate but not lower it.
        if bandwidthEstimate == 0 || (inSlowStart && !intervalAppLimited) {
            bandwidthEstimate = sample
        } else if !intervalAppLimited || sample > bandwidthEstimate {
            bandwidthEstimate = (7 * bandwidthEstimate + sample) / 8
        }
        intervalStart = ack.now
        intervalBytes = 0
        intervalAppLimited = false
    }

    /// ssthresh = max(BWE × RTT_min, 2 MSS); before any estimate, Reno's half of the window.
    private var bandwidthDelayThreshold: Int {
        guard bandwidthEstimate > 0, minRTT.nanoseconds > 0 else { return max(congestionWindow / 2, minimumWindow) }
        return max(Int(bandwidthEstimate * minRTT.seconds), minimumWindow)
    }

    public func onCongestionEvent(lostPacketSentTime: Timestamp, now: Timestamp) {
        // RFC 9002 §7.3.2: only one reduction per round trip.
        if let start = recoveryStartTime, lostPacketSentTime <= start { return }
        recoveryStartTime = now
        if let coupling, coupling.isCoupledWithOthers {
            // While coupled, the increase is the coupled algorithm's Reno-like one, so the
            // decrease is its too (as for coupled CUBIC). Westwood+'s own decrease keeps each
            // path at the share it already holds, so the coupled increase alone never gave back
            // what two paths took in slow start: LIA over it took 1.7 × a single flow's share
            // of a shared bottleneck (tquic-sim shared-bottleneck).
            ssthresh = max(Int(Double(congestionWindow) * coupling.decreaseFactor()), minimumWindow)
        } else {
            // Westwood+: back to the pipe size the path was seen to carry, not a blind fraction.
            ssthresh = bandwidthDelayThreshold
        }
        congestionWindow = min(congestionWindow, ssthresh)
        growth.onReduction()
        coupling?.onCongestionEvent()
        coupling?.update(congestionWindow: congestionWindow)
    }

    public func onPersistentCongestion(now: Timestamp) {
        // RFC 9002 §7.6.2 collapses the window; slow start then climbs back to the estimated pipe.
        ssthresh = bandwidthDelayThreshold
        congestionWindow = minimumWindow
        growth.onReduction()
        recoveryStartTime = nil
        coupling?.update(congestionWindow: congestionWindow)
    }

    public func onMaxDatagramSizeChanged(_ size: Int) {
        maxDatagramSize = size
        congestionWindow = max(congestionWindow, minimumWindow)
    }
}
