// The interface between a path's loss recovery (RFC 9002) and a congestion control algorithm.
// One controller per path; the connection calls it on every send, ack and loss. Later algorithms
// (CUBIC, BBR, Copa, ...) implement the same protocol in their own files.

/// What the controller learns from an acknowledgement.
public struct AckedPacketInfo: Sendable {
    public var sentBytes: Int
    public var timeSent: Timestamp
    public init(sentBytes: Int, timeSent: Timestamp) { self.sentBytes = sentBytes; self.timeSent = timeSent }
}

/// The RTT figures a controller may use (RFC 9002 §5).
public struct RTTSample: Sendable {
    public var latest: Duration
    public var smoothed: Duration
    public var minimum: Duration
    public var variation: Duration
    public init(latest: Duration, smoothed: Duration, minimum: Duration, variation: Duration) {
        self.latest = latest; self.smoothed = smoothed; self.minimum = minimum; self.variation = variation
    }
}

public protocol CongestionController: AnyObject {
    /// Bytes the path may have in flight.
    var congestionWindow: Int { get }
    /// Optional pacing rate in bytes per second (nil: the connection derives one from cwnd/RTT).
    var pacingRate: Double? { get }
    var name: String { get }

    func onPacketSent(bytes: Int, bytesInFlight: Int, now: Timestamp)
    func onPacketAcked(_ packet: AckedPacketInfo, rtt: RTTSample, bytesInFlight: Int, now: Timestamp)
    /// RFC 9002 §7.3.2: one congestion event per round trip, for the newest lost packet's send time.
    func onCongestionEvent(lostPacketSentTime: Timestamp, now: Timestamp)
    /// RFC 9002 §7.6.2: persistent congestion collapses the window to the minimum.
    func onPersistentCongestion(now: Timestamp)
    /// RFC 9002 §7.1: an ECN-CE increase is a congestion signal like a loss.
    func onECNCongestionEvent(sentTime: Timestamp, now: Timestamp)
    /// The maximum datagram size changed (PMTU).
    func onMaxDatagramSizeChanged(_ size: Int)
}

extension CongestionController {
    public func onECNCongestionEvent(sentTime: Timestamp, now: Timestamp) {
        onCongestionEvent(lostPacketSentTime: sentTime, now: now)
    }
}
