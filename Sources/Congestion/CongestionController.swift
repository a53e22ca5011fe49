// The interface between a path's loss recovery (RFC 9002) and a congestion control algorithm.
// One controller per path; the connection calls it on every send, ack and loss. Each algorithm
// lives in its own file (NewReno.swift, Cubic.swift, BBR.swift, Copa.swift, Westwood.swift) and
// `CongestionAlgorithm.makeController` builds the one a connection or path asks for.

/// What the controller learns about each newly acknowledged packet.
public struct AckedPacketInfo: Sendable {
    public var sentBytes: Int
    public var timeSent: Timestamp
    /// The connection's delivery state when the packet was sent (for rate samples, BBR's loss rate).
    public var delivery: DeliverySnapshot
    public init(sentBytes: Int, timeSent: Timestamp, delivery: DeliverySnapshot = DeliverySnapshot()) {
        self.sentBytes = sentBytes
        self.timeSent = timeSent
        self.delivery = delivery
    }
}

/// What the controller learns about each packet declared lost (RFC 9002 §6.1).
public struct LostPacketInfo: Sendable {
    public var sentBytes: Int
    public var timeSent: Timestamp
    public var delivery: DeliverySnapshot
    public init(sentBytes: Int, timeSent: Timestamp, delivery: DeliverySnapshot = DeliverySnapshot()) {
        self.sentBytes = sentBytes
        self.timeSent = timeSent
        self.delivery = delivery
    }
}

/// The RTT figures a controller may use (RFC 9002 §5).
public struct RTTSample: Sendable {
    public var latest: Duration
    public var smoothed: Duration
    public var minimum: Duration
    public var variation: Duration
    public init(latest: Duration, smoothed: Duration, minimum: Duration, variation: Duration) {
        self.latest = latest
        self.smoothed = smoothed
        self.minimum = minimum
        self.variation = variation
    }
}

/// One ACK frame's worth of news, given after every newly acknowledged packet went through
/// `onPacketAcked`: model-based controllers (BBR, Copa, Westwood+) work per ACK, not per packet.
public struct AckSummary: Sendable {
    public var now: Timestamp
    /// In-flight bytes this ACK newly acknowledged.
    public var ackedBytes: Int
    /// Bytes in flight before and after the ACK.
    public var priorBytesInFlight: Int
    public var bytesInFlight: Int
    public var rtt: RTTSample
    /// Whether this ACK produced a new RTT sample (RFC 9002 §5.1); `rtt.latest` is it.
    public var hasNewRTTSample: Bool
    /// The delivery-rate sample of this ACK (draft-cheng-iccrg-delivery-rate-estimation), if any.
    public var rateSample: RateSample?
    public init(
        now: Timestamp, ackedBytes: Int, priorBytesInFlight: Int, bytesInFlight: Int, rtt: RTTSample,
        hasNewRTTSample: Bool, rateSample: RateSample?
    ) {
        self.now = now
        self.ackedBytes = ackedBytes
        self.priorBytesInFlight = priorBytesInFlight
        self.bytesInFlight = bytesInFlight
        self.rtt = rtt
        self.hasNewRTTSample = hasNewRTTSample
        self.rateSample = rateSample
    }
}

public protocol CongestionController: AnyObject {
    /// Bytes the path may have in flight.
    var congestionWindow: Int { get }
    /// Optional pacing rate in bytes per second (nil: the connection derives one from cwnd/RTT).
    var pacingRate: Double? { get }
    var name: String { get }

    func onPacketSent(bytes: Int, bytesInFlight: Int, now: Timestamp)
    /// Each newly acknowledged in-flight packet, in ascending packet-number order.
    func onPacketAcked(_ packet: AckedPacketInfo, rtt: RTTSample, bytesInFlight: Int, now: Timestamp)
    /// Once per ACK frame, after its packets went through `onPacketAcked`.
    func onAckProcessed(_ ack: AckSummary)
    /// Each packet declared lost, before the congestion event that covers them.
    func onPacketLost(_ packet: LostPacketInfo, bytesInFlight: Int, now: Timestamp)
    /// RFC 9002 §7.3.2: one congestion event per round trip, for the newest lost packet's send time.
    func onCongestionEvent(lostPacketSentTime: Timestamp, now: Timestamp)
    /// RFC 9002 §7.6.2: persistent congestion collapses the window to the minimum.
    func onPersistentCongestion(now: Timestamp)
    /// RFC 9002 §7.1: an ECN-CE increase is a congestion signal like a loss. `sentTime` is the
    /// send time of the largest packet the ACK acknowledged.
    func onECNCongestionEvent(sentTime: Timestamp, now: Timestamp)
    /// The maximum datagram size changed (PMTU).
    func onMaxDatagramSizeChanged(_ size: Int)
}

extension CongestionController {
    public func onECNCongestionEvent(sentTime: Timestamp, now: Timestamp) {
        onCongestionEvent(lostPacketSentTime: sentTime, now: now)
    }
    public func onAckProcessed(_ ack: AckSummary) {}
    public func onPacketLost(_ packet: LostPacketInfo, bytesInFlight: Int, now: Timestamp) {}
}
