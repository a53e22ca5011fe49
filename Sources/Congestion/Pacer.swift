// Pacing (RFC 9002 §7.7): spread a window's packets over the round trip instead of sending them
// in one burst, with an allowance of a few packets. The connection asks `delay(for:)` before each
// ack-eliciting packet and sleeps until the returned time, so the owner never busy-waits.

public struct Pacer: Sendable {
    /// Burst allowance in packets (RFC 9002 §7.7: "a few").
    public var burstPackets: Int = 10
    private var tokens: Double
    private var lastUpdate: Timestamp?
    private var maxDatagramSize: Int

    public init(maxDatagramSize: Int) {
        self.maxDatagramSize = maxDatagramSize
        tokens = Double(10 * maxDatagramSize)
    }

    /// Rate in bytes per second: the controller's own, else 1.25 × cwnd / smoothed RTT.
    public static func rate(congestionWindow: Int, smoothedRTT: Duration, controllerRate: Double?) -> Double {
        if let r = controllerRate, r > 0 { return r }
        let rtt = max(smoothedRTT.seconds, 0.000_1)
        return 1.25 * Double(congestionWindow) / rtt
    }

    private mutating func refill(rate: Double, now: Timestamp) {
        let capacity = Double(burstPackets * maxDatagramSize)
        if let last = lastUpdate {
            tokens = min(capacity, tokens + rate * (now - last).seconds)
        } else {
            tokens = capacity
        }
        lastUpdate = now
    }

    /// When a packet of `bytes` may leave: nil means now.
    public mutating func delay(for bytes: Int, rate: Double, now: Timestamp) -> Timestamp? {
        refill(rate: rate, now: now)
        if tokens >= Double(bytes) { return nil }
        // At least 1 µs: a wait that rounds to zero nanoseconds would make the owner spin.
        let wait = max((Double(bytes) - tokens) / max(rate, 1), 1e-6)
        return now + Duration(nanoseconds: UInt64((wait * 1e9).rounded(.up)))
    }

    public mutating func onSent(bytes: Int) {
        tokens -= Double(bytes)
    }

    public mutating func setMaxDatagramSize(_ size: Int) { maxDatagramSize = size }
}
