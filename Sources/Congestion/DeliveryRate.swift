// Delivery-rate estimation (draft-cheng-iccrg-delivery-rate-estimation-02): each sent packet
// remembers how much the path had delivered when it left; acknowledging it yields the bytes
// delivered over the interval since, i.e. a bandwidth sample. BBR is built on these samples;
// Westwood+ and the bonding scheduler use them too. Pure value type, one per path.

/// The path's delivery state when a packet was sent (draft-cheng §3.2, "P.delivered" etc.).
public struct DeliverySnapshot: Sendable {
    /// Bytes delivered (acknowledged) on the path before this packet was sent.
    public var delivered: Int = 0
    /// When `delivered` last grew, as of sending.
    public var deliveredTime: Timestamp = .zero
    /// Send time of the first packet of the flight this packet belongs to.
    public var firstSentTime: Timestamp = .zero
    /// The path was application-limited when this packet was sent.
    public var isAppLimited: Bool = false
    /// Bytes declared lost on the path before this packet was sent (BBR's "P.lost").
    public var lost: Int = 0
    /// Bytes in flight right after this packet was sent (BBR's "P.tx_in_flight").
    public var bytesInFlight: Int = 0
    public init() {}
}

/// One ACK's bandwidth sample (draft-cheng §3.3, "rs").
public struct RateSample: Sendable {
    /// Bytes per second.
    public var deliveryRate: Double
    /// Bytes delivered over `interval`.
    public var delivered: Int
    public var interval: Duration
    /// The sample's packet was sent while application-limited: a low rate says nothing.
    public var isAppLimited: Bool
    /// Delivery state of the most recently sent packet this ACK acknowledged.
    public var priorDelivered: Int
    /// Bytes lost between that packet's sending and now (BBR's "rs.lost").
    public var lost: Int
    /// Bytes in flight when that packet was sent (BBR's "rs.tx_in_flight").
    public var txInFlight: Int
    /// That packet's RTT.
    public var rtt: Duration
    public init(
        deliveryRate: Double, delivered: Int, interval: Duration, isAppLimited: Bool, priorDelivered: Int,
        lost: Int, txInFlight: Int, rtt: Duration
    ) {
        self.deliveryRate = deliveryRate
        self.delivered = delivered
        self.interval = interval
        self.isAppLimited = isAppLimited
        self.priorDelivered = priorDelivered
        self.lost = lost
        self.txInFlight = txInFlight
        self.rtt = rtt
    }
}

public struct DeliveryRateEstimator: Sendable {
    /// Total bytes acknowledged on the path ("C.delivered").
    public private(set) var delivered = 0
    public private(set) var deliveredTime = Timestamp.zero
    private var firstSentTime = Timestamp.zero
    /// Non-zero while application-limited: the `delivered` value at which the bubble ends.
    private var appLimitedUntil = 0
    /// Total bytes declared lost on the path ("C.lost").
    public private(set) var lost = 0

    // The sample under construction for the current ACK.
    private var sampleValid = false
    private var samplePriorDelivered = 0
    private var samplePriorTime = Timestamp.zero
    private var sampleSendElapsed = Duration.zero
    private var sampleAckElapsed = Duration.zero
    private var sampleAppLimited = false
    private var sampleLost = 0
    private var sampleTxInFlight = 0
    private var sampleRTT = Duration.zero
    private var sampleSentTime = Timestamp.zero

    public init() {}

    /// Called before sending a packet; the result is stored with the packet.
    /// `bytesInFlight` excludes the packet; draft-cheng §3.2.
    public mutating func onPacketSent(bytes: Int, bytesInFlight: Int, now: Timestamp) -> DeliverySnapshot {
        if bytesInFlight == 0 {
            firstSentTime = now
            deliveredTime = now
        }
        var s = DeliverySnapshot()
        s.delivered = delivered
        s.deliveredTime = deliveredTime
        s.firstSentTime = firstSentTime
        s.isAppLimited = appLimitedUntil != 0
        s.lost = lost
        s.bytesInFlight = bytesInFlight + bytes
        return s
    }

    /// The sender has nothing to send and the window is not full (draft-cheng §3.4).
    public mutating func onAppLimited(bytesInFlight: Int) {
        appLimitedUntil = max(delivered + bytesInFlight, 1)
    }

    public var isAppLimited: Bool { appLimitedUntil != 0 }

    /// Each newly acknowledged packet (draft-cheng §3.3, UpdateRateSample).
    public mutating func onPacketAcked(_ p: DeliverySnapshot, bytes: Int, timeSent: Timestamp, now: Timestamp) {
        delivered += bytes
        deliveredTime = now
        // Keep the sample of the most recently sent packet acknowledged.
        if !sampleValid || p.delivered > samplePriorDelivered
            || (p.delivered == samplePriorDelivered && timeSent > sampleSentTime)
        {
            sampleValid = true
            samplePriorDelivered = p.delivered
            samplePriorTime = p.deliveredTime
            sampleAppLimited = p.isAppLimited
            sampleSendElapsed = timeSent - p.firstSentTime
            sampleAckElapsed = now - p.deliveredTime
            sampleLost = p.lost
            sampleTxInFlight = p.bytesInFlight
            sampleRTT = now - timeSent
            sampleSentTime = timeSent
            firstSentTime = timeSent
        }
        if appLimitedUntil != 0 && delivered > appLimitedUntil { appLimitedUntil = 0 }
    }

    public mutating func onPacketLost(bytes: Int) { lost += bytes }

    /// Closes the current ACK's sample (draft-cheng §3.3, GenerateRateSample). nil when no packet
    /// was acknowledged or the interval is shorter than the minimum RTT (ack compression).
    public mutating func generateSample(minRTT: Duration) -> RateSample? {
        guard sampleValid else { return nil }
        sampleValid = false
        // The longer of the send and ack intervals, so neither a burst of sends nor an ACK
        // compression inflates the rate.
        let interval = max(sampleSendElapsed, sampleAckElapsed)
        let deliveredInInterval = delivered - samplePriorDelivered
        guard interval.nanoseconds > 0, interval >= minRTT || minRTT.nanoseconds == 0 else { return nil }
        return RateSample(
            deliveryRate: Double(deliveredInInterval) / interval.seconds, delivered: deliveredInInterval,
            interval: interval, isAppLimited: sampleAppLimited, priorDelivered: samplePriorDelivered,
            lost: lost - sampleLost, txInFlight: sampleTxInFlight, rtt: sampleRTT)
    }
}
