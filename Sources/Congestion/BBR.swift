// BBR version 3 (draft-ietf-ccwg-bbr-03): a model-based controller. From delivery-rate samples
// and RTTs it keeps a model of the path (max_bw, min_rtt, and loss-derived bounds on rate and
// inflight), paces at pacing_gain × bw and caps inflight at cwnd_gain × BDP. A state machine
// (Startup → Drain → ProbeBW DOWN/CRUISE/REFILL/UP, with periodic ProbeRTT) decides when to
// probe for more bandwidth, when to drain the queue and when to re-measure the propagation RTT.
// Section numbers below refer to draft-ietf-ccwg-bbr-03; where a later revision fixed a bug or
// added a safeguard we adopted, the comment says "-06".

/// The states of the BBR state machine (draft §4.1.1), named as in the draft.
public enum BBRState: String, Sendable, CaseIterable {
    case startup = "Startup"
    case drain = "Drain"
    case probeBWDown = "ProbeBW_DOWN"
    case probeBWCruise = "ProbeBW_CRUISE"
    case probeBWRefill = "ProbeBW_REFILL"
    case probeBWUp = "ProbeBW_UP"
    case probeRTT = "ProbeRTT"

    /// IsInAProbeBWState().
    public var isProbeBW: Bool {
        switch self {
        case .probeBWDown, .probeBWCruise, .probeBWRefill, .probeBWUp: return true
        default: return false
        }
    }
}

public final class BBR: CongestionController {
    // MARK: Constants (draft §2)

    /// 4 ln 2: the smallest gain that still doubles the sending rate every round.
    static let startupPacingGain = 2.77
    /// Drains Startup's queue in about a round (§4.3.2; -06 raised it to 0.5).
    static let drainPacingGain = 0.35
    static let defaultCwndGain = 2.0
    static let probeDownPacingGain = 0.90
    static let probeUpPacingGain = 1.25
    static let probeUpCwndGain = 2.25
    static let probeRTTCwndGain = 0.5
    /// Pace 1 % below bw so queues drain on average (PacingMarginPercent).
    static let pacingMargin = 0.01
    /// The highest per-round loss rate tolerated while probing.
    static let lossThresh = 0.02
    /// Multiplicative decrease of the short-term bounds per lossy round, and floor for inflight_longterm.
    static let beta = 0.7
    /// Fraction of inflight_longterm left free for other flows while cruising.
    static let headroom = 0.15
    /// Loss events in a round needed, with the loss rate over LossThresh, to leave Startup.
    static let startupFullLossCount = 6
    static let fullBwGrowth = 1.25
    static let fullBwRounds = 3
    /// max_bw covers the current and the previous ProbeBW cycle.
    static let maxBwFilterLen: UInt64 = 2
    static let extraAckedFilterLen: UInt64 = 10
    static let minRTTFilterLen = Duration.milliseconds(10_000)
    static let probeRTTInterval = Duration.milliseconds(5_000)
    static let probeRTTDuration = Duration.milliseconds(200)
    /// -06: leave Drain after this many rounds even if inflight never fell to the BDP.
    static let drainMaxRounds: UInt64 = 3
    /// Bound of the Reno-coexistence probing time scale, in rounds (§4.3.3.5).
    static let renoProbeRoundsBound = 63

    // MARK: Output control parameters

    public private(set) var congestionWindow: Int
    private var pacingRateValue: Double
    /// Always set: BBR paces every packet (§5.6.2).
    public var pacingRate: Double? { pacingRateValue }
    /// C.send_quantum: the largest burst worth sending at once (§5.6.3).
    public private(set) var sendQuantum: Int
    public let name = "bbr"
    public private(set) var maxDatagramSize: Int
    /// C.InitialCwnd (RFC 9002 §7.2).
    public let initialWindow: Int

    // MARK: State machine

    public private(set) var state: BBRState = .startup
    public private(set) var pacingGain = BBR.startupPacingGain
    public private(set) var cwndGain = BBR.defaultCwndGain
    /// Packet-timed round trips so far (BBR.round_count).
    public private(set) var roundCount: UInt64 = 0
    private var roundStart = false
    private var nextRoundDelivered = 0
    /// BBR.full_bw_reached: the pipe was filled at least once.
    public private(set) var fullBandwidthReached = false
    private var fullBwNow = false
    private var fullBw = 0.0
    private var fullBwCount = 0
    private var drainStartRound: UInt64 = 0
    private var idleRestart = false

    // MARK: Path model

    private var maxBwFilter = BBRWindowedMaxFilter()
    /// BBR.max_bw in bytes/s: the windowed max delivery rate (long-term model).
    public private(set) var maxBandwidth = 0.0
    /// BBR.bw = min(max_bw, bw_shortterm): the rate BBR paces at (times pacing_gain).
    public private(set) var bandwidth = 0.0
    /// BBR.bw_shortterm (formerly bw_lo): lowered on lossy rounds when not probing; infinity when unset.
    public private(set) var bandwidthShortterm = Double.infinity
    /// BBR.inflight_longterm (formerly inflight_hi): the inflight found to cause too much loss; infinity when unset.
    public private(set) var inflightLongterm = Double.infinity
    /// BBR.inflight_shortterm (formerly inflight_lo); infinity when unset.
    public private(set) var inflightShortterm = Double.infinity
    private var bwLatest = 0.0
    private var inflightLatest = 0.0
    /// BBR.min_rtt; nil until the first RTT sample.
    public private(set) var minRTT: Duration?
    private var minRTTStamp: Timestamp?
    private var probeRTTMinDelay: Duration?
    private var probeRTTMinStamp: Timestamp?
    private var probeRTTExpired = false
    private var probeRTTDoneStamp: Timestamp?
    private var probeRTTRoundDone = false
    private var priorCwnd = 0
    private var extraAckedFilter = BBRWindowedMaxFilter()
    /// BBR.extra_acked: recent ACK aggregation in bytes, added to the window.
    public private(set) var extraAcked = 0
    private var extraAckedIntervalStart: Timestamp?
    private var extraAckedDelivered = 0
    private var maxInflight = 0.0

    // MARK: ProbeBW cycle

    private enum AckPhase { case idle, probeStarting, probeFeedback, probeStopping, refilling }
    private var ackPhase = AckPhase.idle
    private var cycleCount: UInt64 = 0
    private var cycleStamp = Timestamp.zero
    private var bwProbeWait = Duration.zero
    private var roundsSinceBwProbe = 0
    private var bwProbeUpRounds = 0
    private var bwProbeUpAcked = 0
    private var probeUpAckedPerInc = Int.max
    /// Rate samples (and losses) currently reflect a bandwidth probe (BBR.bw_probe_samples).
    private var isBwProbeSample = false

    // MARK: Congestion signals

    private var lossInRound = false
    private var lossRoundDelivered = 0
    private var lossRoundStart = false
    /// The round that just ended at this ACK saw a loss.
    private var lossRoundEndedWithLoss = false
    /// ACK-time loss detections in the current loss round (Startup exit, §4.3.1.2).
    private var lossEventsInRound = 0
    private var lastLossEventTime: Timestamp?

    // MARK: Transport state BBR keeps itself

    /// C.delivered and C.lost in bytes; resynchronised with the rate samples, see onAckProcessed.
    private var delivered = 0
    private var totalLost = 0
    /// C.is_cwnd_limited: the window was full at some point in this or the last round.
    private var cwndLimitedThisRound = false
    private var cwndLimitedLastRound = false
    private var isCwndLimited: Bool { cwndLimitedThisRound || cwndLimitedLastRound }
    /// Start of the current loss recovery period (RFC 9002 §7.3.2), nil outside recovery.
    private var recoveryStart: Timestamp?
    private var recoveryEndedThisAck = false
    /// ProbeRTT's "mark the connection app-limited" (§4.3.4.4), emulated here because the
    /// estimator belongs to the connection: samples of packets sent with C.delivered in
    /// [start, end] are treated as application-limited.
    private var probeRTTBubbleStart = 0
    private var probeRTTBubbleEnd = -1
    private var pacingFromFirstRTT = false

    // The newest packet acknowledged by the ACK being processed.
    private var ackHasPacket = false
    private var newestSnapshot = DeliverySnapshot()
    private var newestTimeSent = Timestamp.zero
    private var rs = BBRAckSignals()
    private var now = Timestamp.zero
    private var random: UInt64

    /// - Parameter maxDatagramSize: the path's current maximum datagram size (C.SMSS).
    /// A fixed seed: the module reads no randomness of its own (the connection passes one drawn
    /// from its injected `RandomSource`, so flows still probe at different times).
    public convenience init(maxDatagramSize: Int = 1200) {
        self.init(maxDatagramSize: maxDatagramSize, randomSeed: 0x9E37_79B9_7F4A_7C15)
    }

    /// A controller whose randomised probing times come from `randomSeed`.
    public init(maxDatagramSize: Int, randomSeed: UInt64) {
        self.maxDatagramSize = maxDatagramSize
        // RFC 9002 §7.2: min(10 * max_datagram_size, max(14720, 2 * max_datagram_size)).
        initialWindow = min(10 * maxDatagramSize, max(14720, 2 * maxDatagramSize))
        congestionWindow = initialWindow
        random = randomSeed == 0 ? 0x9E37_79B9_7F4A_7C15 : randomSeed
        // §5.6.2 BBRInitPacingRate with no SRTT yet: the initial window per millisecond.
        pacingRateValue = BBR.startupPacingGain * Double(initialWindow) / 0.001
        sendQuantum = 2 * maxDatagramSize
        enterStartup()
    }

    // MARK: Derived model values

    /// BBR.MinPipeCwnd: 4 packets keep the pipe going with delayed ACKs (§5.6.4.3).
    public var minPipeCwnd: Int { 4 * maxDatagramSize }

    /// BBR.bdp = bw × min_rtt in bytes (0 before the first RTT sample).
    public var bdp: Double {
        guard let minRTT else { return 0 }
        return bandwidth * minRTT.seconds
    }

    /// BBRBDPMultiple: gain × bw × min_rtt, or the initial window while min_rtt is unknown.
    private func bdpMultiple(_ bw: Double, gain: Double) -> Double {
        guard let minRTT else { return Double(initialWindow) }
        return gain * bw * minRTT.seconds
    }

    /// BBRQuantizationBudget (§5.6.4.2): room for offload bursts, the pipelining floor, and 2
    /// extra packets while probing up.
    private func quantizationBudget(_ cap: Double) -> Double {
        var cap = max(cap, Double(3 * sendQuantum))  // offload_budget = 3 × send_quantum
        cap = max(cap, Double(minPipeCwnd))
        if state == .probeBWUp { cap += Double(2 * maxDatagramSize) }
        return cap
    }

    /// BBRInflight(bw, gain).
    private func inflight(_ bw: Double, gain: Double) -> Double {
        quantizationBudget(bdpMultiple(bw, gain: gain))
    }

    /// BBRTargetInflight: the BDP, unless congestion cut the window below it.
    private var targetInflight: Double { min(bdpMultiple(bandwidth, gain: 1), Double(congestionWindow)) }

    /// BBRInflightWithHeadroom (§4.3.3.6): inflight_longterm less 15 % left for others.
    private var inflightWithHeadroom: Double {
        guard inflightLongterm.isFinite else { return .infinity }
        let room = max(Double(maxDatagramSize), BBR.headroom * inflightLongterm)
        return max(inflightLongterm - room, Double(minPipeCwnd))
    }

    // MARK: CongestionController

    /// `bytesInFlight` includes the packet just sent (as the connection reports it).
    public func onPacketSent(bytes: Int, bytesInFlight: Int, now: Timestamp) {
        self.now = now
        // §4.4.1: sending into an empty pipe after data was delivered is a restart from idle.
        if bytesInFlight - bytes <= 0 && delivered > 0 { handleRestartFromIdle() }
        // The window is full once another full-size packet no longer fits.
        if bytesInFlight + maxDatagramSize > congestionWindow { cwndLimitedThisRound = true }
    }

    public func onPacketAcked(_ packet: AckedPacketInfo, rtt: RTTSample, bytesInFlight: Int, now: Timestamp) {
        delivered += packet.sentBytes
        // The newest packet (largest P.delivered, then latest send) gives the ACK's signals, as in
        // the delivery-rate estimator.
        let d = packet.delivery
        if !ackHasPacket || d.delivered > newestSnapshot.delivered
            || (d.delivered == newestSnapshot.delivered && packet.timeSent > newestTimeSent)
        {
            newestSnapshot = d
            newestTimeSent = packet.timeSent
        }
        ackHasPacket = true
        // RFC 9002 §7.3.2: recovery ends when a packet sent after it started is acknowledged.
        if let start = recoveryStart, packet.timeSent > start { recoveryEndedThisAck = true }
    }

    /// §4.2.2 BBRUpdateOnACK: update the model and state, then the control parameters.
    public func onAckProcessed(_ ack: AckSummary) {
        guard ackHasPacket else { return }
        ackHasPacket = false
        now = ack.now
        collectSignals(ack)
        if recoveryEndedThisAck {
            recoveryEndedThisAck = false
            recoveryStart = nil
            restoreCwnd()  // §5.6.4.4: back to the last known good window, then bounded by the model
        }
        if !pacingFromFirstRTT && ack.rtt.smoothed.nanoseconds > 0 {
            // §5.6.2 BBRInitPacingRate, now that SRTT is known.
            pacingFromFirstRTT = true
            if !fullBandwidthReached {
                pacingRateValue = BBR.startupPacingGain * Double(initialWindow) / ack.rtt.smoothed.seconds
            }
        }
        updateModelAndState()
        updateControlParameters()
    }

    /// §4.2.3 BBRUpdateOnLoss: per-packet loss accounting; the response comes from the model.
    public func onPacketLost(_ packet: LostPacketInfo, bytesInFlight: Int, now: Timestamp) {
        self.now = now
        totalLost += packet.sentBytes
        // One loss event per detection instant (an ACK or a loss timer), like Linux's per-ACK count.
        if lastLossEventTime != now {
            lastLossEventTime = now
            lossEventsInRound = min(lossEventsInRound + 1, 1_000)
        }
        handleLostPacket(packet)
    }

    /// §5.6.4.4: fast recovery does not shrink the window; BBR reacts through its model (the
    /// short-term bounds and inflight_longterm). It only remembers the window to restore.
    public func onCongestionEvent(lostPacketSentTime: Timestamp, now: Timestamp) {
        self.now = now
        if let start = recoveryStart, lostPacketSentTime <= start { return }
        saveCwnd()
        recoveryStart = now
    }

    /// §5.6.4.4 "upon retransmission timeout": collapse to the pipelining minimum and regrow
    /// from there by the acknowledged data; the saved window comes back when recovery ends.
    public func onPersistentCongestion(now: Timestamp) {
        self.now = now
        saveCwnd()
        recoveryStart = now
        congestionWindow = minPipeCwnd
    }

    /// §3.6: with ECN in use, CE marks MUST be treated as congestion; BBR counts the round as
    /// congested, which lowers the short-term bounds at the end of the round.
    public func onECNCongestionEvent(sentTime: Timestamp, now: Timestamp) {
        self.now = now
        noteLoss()
    }

    public func onMaxDatagramSizeChanged(_ size: Int) {
        maxDatagramSize = size
        congestionWindow = max(congestionWindow, minPipeCwnd)
    }

    // MARK: Per-ACK signals

    private func collectSignals(_ ack: AckSummary) {
        rs.now = ack.now
        rs.newlyAcked = ack.ackedBytes
        rs.inflight = ack.bytesInFlight
        let p = newestSnapshot
        if let s = ack.rateSample {
            // The estimator's counters are the reference for P.delivered/P.lost: resynchronise
            // ours so rounds and loss rates stay consistent even if this controller joined late.
            delivered = s.priorDelivered + s.delivered
            totalLost = max(totalLost, s.lost + p.lost)
            rs.deliveryRate = s.deliveryRate
            rs.hasRate = true
            rs.delivered = s.delivered
            rs.priorDelivered = s.priorDelivered
            rs.isAppLimited = s.isAppLimited
            rs.lost = s.lost
            rs.txInFlight = s.txInFlight
            rs.rtt = s.rtt
        } else {
            rs.deliveryRate = 0
            rs.hasRate = false
            rs.delivered = max(0, delivered - p.delivered)
            rs.priorDelivered = p.delivered
            rs.isAppLimited = p.isAppLimited
            rs.lost = max(0, totalLost - p.lost)
            rs.txInFlight = p.bytesInFlight
            rs.rtt = ack.now - newestTimeSent
        }
        if rs.priorDelivered >= probeRTTBubbleStart && rs.priorDelivered <= probeRTTBubbleEnd {
            rs.isAppLimited = true
        }
    }

    // MARK: Model and state (§4.2.2 BBRUpdateModelAndState)

    private func updateModelAndState() {
        updateLatestDeliverySignals()
        updateCongestionSignals()
        updateAckAggregation()
        checkFullBandwidthReached()
        checkStartupDone()
        checkDrainDone()
        updateProbeBWCyclePhase()
        updateMinRTT()
        checkProbeRTT()
        advanceLatestDeliverySignals()
        bandwidth = min(maxBandwidth, bandwidthShortterm)  // BBRBoundBWForModel
    }

    /// §5.1.1 BBRUpdateRound: a round ends when a packet sent after the previous round's end is acknowledged.
    private func updateRound() {
        if rs.priorDelivered >= nextRoundDelivered {
            startRound()
            roundCount += 1
            roundsSinceBwProbe += 1
            roundStart = true
            cwndLimitedLastRound = cwndLimitedThisRound
            cwndLimitedThisRound = false
        } else {
            roundStart = false
        }
    }

    private func startRound() { nextRoundDelivered = delivered }

    /// §5.5.10.3 BBRUpdateLatestDeliverySignals: 1-round maxima of rate and delivered volume.
    private func updateLatestDeliverySignals() {
        lossRoundStart = false
        lossRoundEndedWithLoss = false
        if rs.hasRate { bwLatest = max(bwLatest, rs.deliveryRate) }
        inflightLatest = max(inflightLatest, Double(rs.delivered))
        if rs.priorDelivered >= lossRoundDelivered {
            lossRoundDelivered = delivered
            lossRoundStart = true
        }
    }

    private func advanceLatestDeliverySignals() {
        if lossRoundStart {
            bwLatest = rs.hasRate ? rs.deliveryRate : 0
            inflightLatest = Double(rs.delivered)
        }
    }

    /// §5.5.10.3 BBRUpdateCongestionSignals, including §5.1.3 BBRUpdateMaxBw.
    private func updateCongestionSignals() {
        updateRound()
        // §5.1.2: app-limited samples only count when they raise the estimate.
        if rs.hasRate && (rs.deliveryRate >= maxBandwidth || !rs.isAppLimited) {
            maxBandwidth = maxBwFilter.update(value: rs.deliveryRate, time: cycleCount, window: BBR.maxBwFilterLen)
        }
        guard lossRoundStart else { return }
        lossRoundEndedWithLoss = lossInRound
        adaptLowerBoundsFromCongestion()
        lossInRound = false
    }

    /// Once per round: after a lossy round outside bandwidth probing, move the short-term bounds
    /// toward the latest delivery process (bw_shortterm = max(bw_latest, Beta × bw_shortterm), …).
    private func adaptLowerBoundsFromCongestion() {
        guard !isProbingBW, lossInRound else { return }
        if !bandwidthShortterm.isFinite { bandwidthShortterm = maxBandwidth }
        if !inflightShortterm.isFinite { inflightShortterm = Double(congestionWindow) }
        bandwidthShortterm = max(bwLatest, BBR.beta * bandwidthShortterm)
        inflightShortterm = max(inflightLatest, BBR.beta * inflightShortterm).rounded(.down)
    }

    private var isProbingBW: Bool { state == .startup || state == .probeBWRefill || state == .probeBWUp }

    private func resetCongestionSignals() {
        lossInRound = false
        bwLatest = 0
        inflightLatest = 0
    }

    private func resetShortTermModel() {
        bandwidthShortterm = .infinity
        inflightShortterm = .infinity
    }

    /// §5.5.9 BBRUpdateACKAggregation: data acknowledged beyond what bw explains, max over 10 rounds.
    private func updateAckAggregation() {
        let start = extraAckedIntervalStart ?? now
        var expected = bandwidth * (now - start).seconds
        if extraAckedIntervalStart == nil || Double(extraAckedDelivered) <= expected {
            // The ACK rate fell to the expected rate: a new aggregation episode starts here.
            extraAckedDelivered = 0
            extraAckedIntervalStart = now
            expected = 0
        }
        extraAckedDelivered += rs.newlyAcked
        let extra = min(Double(extraAckedDelivered) - expected, Double(congestionWindow))
        let window = fullBandwidthReached ? BBR.extraAckedFilterLen : 1  // Startup: this round only
        extraAcked = Int(extraAckedFilter.update(value: max(extra, 0), time: roundCount, window: window))
    }

    // MARK: Startup and Drain

    private func enterStartup() {
        state = .startup
        pacingGain = BBR.startupPacingGain
        cwndGain = BBR.defaultCwndGain
    }

    private func resetFullBandwidth() {
        fullBw = 0
        fullBwCount = 0
        fullBwNow = false
    }

    /// §4.3.1.1 BBRCheckFullBWReached: three non-app-limited rounds without 25 % growth.
    private func checkFullBandwidthReached() {
        guard !fullBwNow, roundStart, rs.hasRate, !rs.isAppLimited else { return }
        if rs.deliveryRate >= fullBw * BBR.fullBwGrowth {
            resetFullBandwidth()
            fullBw = rs.deliveryRate
            return
        }
        fullBwCount += 1
        fullBwNow = fullBwCount >= BBR.fullBwRounds
        if fullBwNow { fullBandwidthReached = true }
    }

    private func checkStartupDone() {
        checkStartupHighLoss()
        if state == .startup && fullBandwidthReached { enterDrain() }
    }

    /// §4.3.1.2: leave Startup when a full round of loss recovery had at least 6 loss events and a
    /// loss rate above LossThresh; inflight_longterm starts at what was delivered.
    /// "In recovery for a whole round" is read as "the loss round that just ended saw losses".
    private func checkStartupHighLoss() {
        guard state == .startup, !fullBandwidthReached, lossRoundStart else { return }
        if lossRoundEndedWithLoss && lossEventsInRound >= BBR.startupFullLossCount
            && isInflightTooHigh(lost: rs.lost, txInFlight: rs.txInFlight)
        {
            fullBandwidthReached = true
            inflightLongterm = max(bdpMultiple(bandwidth, gain: 1), inflightLatest).rounded(.down)
        }
        lossEventsInRound = 0
    }

    private func enterDrain() {
        state = .drain
        pacingGain = BBR.drainPacingGain
        cwndGain = BBR.defaultCwndGain
        drainStartRound = roundCount
    }

    /// §4.3.2: Drain ends when inflight fits the BDP (or, -06, after 3 rounds regardless).
    private func checkDrainDone() {
        guard state == .drain else { return }
        if Double(rs.inflight) <= inflight(bandwidth, gain: 1) || roundCount > drainStartRound + BBR.drainMaxRounds {
            enterProbeBW()
        }
    }

    // MARK: ProbeBW (§4.3.3)

    private func enterProbeBW() {
        cwndGain = BBR.defaultCwndGain
        startProbeBWDown()
    }

    private func startProbeBWDown() {
        resetCongestionSignals()
        probeUpAckedPerInc = .max  // not growing inflight_longterm
        pickProbeWait()
        cycleStamp = now
        ackPhase = .probeStopping
        startRound()
        state = .probeBWDown
        pacingGain = BBR.probeDownPacingGain
        cwndGain = BBR.defaultCwndGain
    }

    private func startProbeBWCruise() {
        state = .probeBWCruise
        pacingGain = 1
        cwndGain = BBR.defaultCwndGain
    }

    private func startProbeBWRefill() {
        resetShortTermModel()
        bwProbeUpRounds = 0
        bwProbeUpAcked = 0
        ackPhase = .refilling
        startRound()
        state = .probeBWRefill
        pacingGain = 1
        cwndGain = BBR.defaultCwndGain
    }

    private func startProbeBWUp() {
        ackPhase = .probeStarting
        startRound()
        resetFullBandwidth()
        fullBw = rs.hasRate ? rs.deliveryRate : 0
        state = .probeBWUp
        pacingGain = BBR.probeUpPacingGain
        cwndGain = BBR.probeUpCwndGain
        raiseInflightLongtermSlope()
    }

    /// BBRUpdateProbeBWCyclePhase: DOWN → CRUISE → REFILL → UP → DOWN.
    private func updateProbeBWCyclePhase() {
        guard fullBandwidthReached else { return }
        adaptLongTermModel()
        switch state {
        case .probeBWDown:
            if isTimeToProbeBW() { return }
            if isTimeToCruise() { startProbeBWCruise() }
        case .probeBWCruise:
            _ = isTimeToProbeBW()
        case .probeBWRefill:
            // One round of REFILL has put bw × min_rtt in flight: now probe.
            if roundStart {
                isBwProbeSample = true
                startProbeBWUp()
            }
        case .probeBWUp:
            if isTimeToGoDown() { startProbeBWDown() }
        default:
            return
        }
    }

    /// DOWN → CRUISE once inflight is below both the headroom target and the BDP.
    private func isTimeToCruise() -> Bool {
        let inflightNow = Double(rs.inflight)
        if inflightNow > inflightWithHeadroom { return false }
        return inflightNow <= inflight(maxBandwidth, gain: 1)
    }

    /// UP → DOWN once the delivery rate plateaus, unless inflight_longterm is what limits it.
    private func isTimeToGoDown() -> Bool {
        if isCwndLimited && Double(congestionWindow) >= inflightLongterm {
            resetFullBandwidth()
            fullBw = rs.hasRate ? rs.deliveryRate : 0
        } else if fullBwNow {
            return true
        }
        return false
    }

    /// §4.3.3.5 dual time scale: probe after 2–3 s, or after min(BDP in packets, 63) rounds.
    private func isTimeToProbeBW() -> Bool {
        let renoRounds = Int(targetInflight / Double(maxDatagramSize))
        if now - cycleStamp > bwProbeWait || roundsSinceBwProbe >= min(renoRounds, BBR.renoProbeRoundsBound) {
            startProbeBWRefill()
            return true
        }
        return false
    }

    private func pickProbeWait() {
        roundsSinceBwProbe = Int(nextRandom() & 1)
        let fraction = Double(nextRandom() >> 11) / Double(1 << 53)
        bwProbeWait = Duration.seconds(2 + fraction)
    }

    private func raiseInflightLongtermSlope() {
        let growthThisRound = 1 << bwProbeUpRounds
        bwProbeUpRounds = min(bwProbeUpRounds + 1, 30)
        // -06 units: one datagram of growth per this many bytes acknowledged.
        probeUpAckedPerInc = max(congestionWindow / growthThisRound, maxDatagramSize)
    }

    /// In UP, grow inflight_longterm by 1, 2, 4, … datagrams per round while it is the limit.
    private func probeInflightLongtermUpward() {
        guard isCwndLimited, Double(congestionWindow) >= inflightLongterm else { return }
        bwProbeUpAcked += rs.newlyAcked
        if bwProbeUpAcked >= probeUpAckedPerInc {
            let delta = bwProbeUpAcked / probeUpAckedPerInc
            bwProbeUpAcked -= delta * probeUpAckedPerInc
            inflightLongterm += Double(delta * maxDatagramSize)
        }
        if roundStart { raiseInflightLongtermSlope() }
    }

    /// BBRAdaptLongTermModel: advance the max_bw window once per cycle and raise
    /// inflight_longterm while the loss rate is acceptable.
    private func adaptLongTermModel() {
        if ackPhase == .probeStarting && roundStart { ackPhase = .probeFeedback }
        if ackPhase == .probeStopping && roundStart {
            // -06: the probe's samples are over; later losses are not the probe's doing.
            isBwProbeSample = false
            ackPhase = .idle
            if state.isProbeBW && !rs.isAppLimited { cycleCount += 1 }  // BBRAdvanceMaxBwFilter
        }
        guard !isInflightTooHigh(lost: rs.lost, txInFlight: rs.txInFlight), inflightLongterm.isFinite else { return }
        if Double(rs.txInFlight) > inflightLongterm { inflightLongterm = Double(rs.txInFlight) }
        if state == .probeBWUp { probeInflightLongtermUpward() }
    }

    // MARK: Loss (§5.5.10.2)

    /// IsInflightTooHigh: more than LossThresh of what was in flight got lost.
    private func isInflightTooHigh(lost: Int, txInFlight: Int) -> Bool {
        Double(lost) > Double(txInFlight) * BBR.lossThresh
    }

    private func noteLoss() {
        if !lossInRound { lossRoundDelivered = delivered }  // the loss round ends one round from now
        lossInRound = true
    }

    /// BBRHandleLostPacket: while a probe's packets are in flight, find the inflight at which the
    /// loss rate crossed LossThresh and make it the long-term bound.
    private func handleLostPacket(_ packet: LostPacketInfo) {
        noteLoss()
        guard isBwProbeSample else { return }
        let size = packet.sentBytes
        let txInFlight = packet.delivery.bytesInFlight
        let lost = max(0, totalLost - packet.delivery.lost)
        guard isInflightTooHigh(lost: lost, txInFlight: txInFlight) else { return }
        // BBRInflightLongtermFromLostPacket: (lost_prev + x) / (inflight_prev + x) = LossThresh.
        let inflightPrev = Double(max(0, txInFlight - size))
        let lostPrev = Double(max(0, lost - size))
        let lostPrefix = (BBR.lossThresh * inflightPrev - lostPrev) / (1 - BBR.lossThresh)
        let inflightAtLoss = inflightPrev + min(max(lostPrefix, 0), Double(size))
        handleInflightTooHigh(txInFlight: inflightAtLoss, isAppLimited: packet.delivery.isAppLimited)
    }

    /// BBRHandleInflightTooHigh: react once per probe; never below Beta × the target inflight.
    private func handleInflightTooHigh(txInFlight: Double, isAppLimited: Bool) {
        isBwProbeSample = false
        if !isAppLimited {
            inflightLongterm = max(txInFlight, targetInflight * BBR.beta).rounded(.down)
        }
        if state == .probeBWUp { startProbeBWDown() }
    }

    // MARK: ProbeRTT and min_rtt (§4.3.4)

    /// BBRUpdateMinRTT: probe_rtt_min_delay is the min over 5 s, min_rtt over 10 s.
    private func updateMinRTT() {
        if minRTTStamp == nil { minRTTStamp = now }
        probeRTTExpired = probeRTTMinStamp.map { now > $0 + BBR.probeRTTInterval } ?? false
        if probeRTTMinDelay.map({ rs.rtt < $0 }) ?? true || probeRTTExpired {
            probeRTTMinDelay = rs.rtt
            probeRTTMinStamp = now
        }
        let minRTTExpired = minRTTStamp.map { now > $0 + BBR.minRTTFilterLen } ?? true
        if let delay = probeRTTMinDelay, minRTT.map({ delay < $0 }) ?? true || minRTTExpired {
            minRTT = delay
            minRTTStamp = probeRTTMinStamp
        }
    }

    private func checkProbeRTT() {
        if state != .probeRTT && probeRTTExpired && !idleRestart {
            saveCwnd()  // before the state changes: the window to come back to
            state = .probeRTT
            pacingGain = 1
            cwndGain = BBR.probeRTTCwndGain
            probeRTTDoneStamp = nil
            ackPhase = .probeStopping
            startRound()
        }
        if state == .probeRTT { handleProbeRTT() }
        if rs.delivered > 0 { idleRestart = false }
    }

    private func handleProbeRTT() {
        // Ignore ProbeRTT's low rate samples: MarkConnectionAppLimited.
        if delivered > probeRTTBubbleEnd { probeRTTBubbleStart = delivered }
        probeRTTBubbleEnd = max(delivered + rs.inflight, 1)
        if probeRTTDoneStamp == nil && Double(rs.inflight) <= probeRTTCwnd {
            // Hold the low inflight for 200 ms and at least one round.
            probeRTTDoneStamp = now + BBR.probeRTTDuration
            probeRTTRoundDone = false
            startRound()
        } else if probeRTTDoneStamp != nil {
            if roundStart { probeRTTRoundDone = true }
            if probeRTTRoundDone { checkProbeRTTDone() }
        }
    }

    private func checkProbeRTTDone() {
        guard let done = probeRTTDoneStamp, now > done else { return }
        probeRTTMinStamp = now  // the next ProbeRTT is due 5 s from here
        restoreCwnd()
        // BBRExitProbeRTT: the probe is over; resume cruising (or Startup if the pipe was never full).
        resetShortTermModel()
        if fullBandwidthReached {
            startProbeBWDown()
            startProbeBWCruise()
        } else {
            enterStartup()
        }
    }

    /// BBRProbeRTTCwnd: half the BDP, at least the pipelining minimum.
    private var probeRTTCwnd: Double {
        max(bdpMultiple(bandwidth, gain: BBR.probeRTTCwndGain), Double(minPipeCwnd))
    }

    /// §4.4.1 BBRHandleRestartFromIdle.
    private func handleRestartFromIdle() {
        idleRestart = true
        extraAckedIntervalStart = now
        if state.isProbeBW {
            setPacingRate(gain: 1)  // resume at exactly bw
        } else if state == .probeRTT {
            checkProbeRTTDone()
        }
    }

    // MARK: Control parameters (§5.6)

    private func updateControlParameters() {
        setPacingRate(gain: pacingGain)
        setSendQuantum()
        setCwnd()
    }

    /// BBRSetPacingRateWithGain: gain × bw × 99 %; before the pipe is full it only ever rises.
    private func setPacingRate(gain: Double) {
        let rate = gain * bandwidth * (1 - BBR.pacingMargin)
        guard rate > 0 else { return }
        if fullBandwidthReached || rate > pacingRateValue { pacingRateValue = rate }
    }

    /// BBRSetSendQuantum: 1 ms of data, between 2 datagrams and 64 KB.
    private func setSendQuantum() {
        let q = Int(min(pacingRateValue * 0.001, 65_536))
        sendQuantum = max(q, 2 * maxDatagramSize)
    }

    /// BBRSetCwnd (§5.6.4.5): grow by what was acknowledged toward max_inflight, cut at once
    /// when above it; then the ProbeRTT and model bounds.
    private func setCwnd() {
        // BBRUpdateMaxInflight
        maxInflight = quantizationBudget(bdpMultiple(bandwidth, gain: cwndGain) + Double(extraAcked))
        var cwnd = congestionWindow
        if fullBandwidthReached {
            cwnd = Int(min(Double(cwnd + rs.newlyAcked), maxInflight))
        } else if Double(cwnd) < maxInflight || delivered < initialWindow {
            cwnd += rs.newlyAcked
        }
        cwnd = max(cwnd, minPipeCwnd)
        if state == .probeRTT { cwnd = min(cwnd, Int(probeRTTCwnd)) }  // BBRBoundCwndForProbeRTT
        // BBRBoundCwndForModel: the volume caps of the current state.
        var cap = Double.infinity
        if state.isProbeBW && state != .probeBWCruise {
            cap = inflightLongterm
        } else if state == .probeRTT || state == .probeBWCruise {
            cap = inflightWithHeadroom
        }
        cap = max(min(cap, inflightShortterm), Double(minPipeCwnd))
        if cap < Double(cwnd) { cwnd = Int(cap) }
        congestionWindow = cwnd
    }

    /// BBRSaveCwnd: remember the last window not reduced by recovery or ProbeRTT.
    private func saveCwnd() {
        if recoveryStart == nil && state != .probeRTT {
            priorCwnd = congestionWindow
        } else {
            priorCwnd = max(priorCwnd, congestionWindow)
        }
    }

    private func restoreCwnd() { congestionWindow = max(congestionWindow, priorCwnd) }

    /// xorshift64*: the randomised probe timing needs no quality beyond decorrelating flows.
    private func nextRandom() -> UInt64 {
        random ^= random >> 12
        random ^= random << 25
        random ^= random >> 27
        return random &* 0x2545_F491_4F6C_DD1D
    }
}
