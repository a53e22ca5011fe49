// Pacing (RFC 9002 §7.7): spread a window's packets over the round trip instead of sending them
// in one burst, with an allowance of a few packets. The connection asks `delay(for:)` before each
// ack-eliciting packet and sleeps until the returned time, so the owner never busy-waits.

public struct Pacer: Sendable {
    /// Burst allowance in packets (RFC 9002 §7.7: "a few").
    public var burstPackets: Int = 10
    /// The send quantum: this much time at the rate, at most `maxQuantumBytes` (the idea of BBR's
    /// send_quantum, draft-ietf-ccwg-bbr §5.6.3, and of Linux's TSO autosizing). Once the
    /// allowance is spent the pacer waits for a quantum's tokens, not for one packet's: at
    /// 2 Gbit/s one packet's time is 6 µs, and waking that often would cost a system call or two
    /// per packet and cut every UDP GSO send (and the peer's GRO buffer and coalesced TUN write)
    /// short. 100 µs is less than one packet below ~120 Mbit/s, so slower paths pace as before
    /// (1 ms changed the simulator's fibre-satellite result: 0.837 against 0.853).
    public static let quantumTime = 0.000_1
    public static let maxQuantumBytes = 65_536
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

    /// Bytes of one send quantum at `rate` (bytes per second).
    public static func quantum(rate: Double) -> Double { min(rate * quantumTime, Double(maxQuantumBytes)) }

    /// The burst allowance: a few packets, or a quantum where that is more.
    private func capacity(rate: Double) -> Double { max(Double(burstPackets * maxDatagramSize), Pacer.quantum(rate: rate)) }

    private mutating func refill(rate: Double, now: Timestamp) {
        let capacity = capacity(rate: rate)
        if let last = lastUpdate {
            tokens = min(capacity, tokens + rate * (now - last).seconds)
        } else {
            tokens = capacity
        }
        lastUpdate = now
    }

    /// Bytes that may leave at once now, the state left as it is: what one wake-up's burst (and
    /// its GSO send) can carry.
    public func allowance(rate: Double, now: Timestamp) -> Int {
        let capacity = capacity(rate: rate)
        guard let last = lastUpdate else { return Int(capacity) }
        return Int(min(capacity, tokens + rate * max((now - last).seconds, 0)))
    }

    /// When a packet of `bytes` may leave: nil means now.
    public mutating func delay(for bytes: Int, rate: Double, now: Timestamp) -> Timestamp? {
        refill(rate: rate, now: now)
        if tokens >= Double(bytes) { return nil }
        // Wait for a quantum's tokens (at low rates that is this one packet's).
        let target = min(capacity(rate: rate), max(Double(bytes), Pacer.quantum(rate: rate)))
        // At least 1 µs: a wait that rounds to zero nanoseconds would make the owner spin.
        let wait = max((target - tokens) / max(rate, 1), 1e-6)
        return now + Duration(nanoseconds: UInt64((wait * 1e9).rounded(.up)))
    }

    public mutating func onSent(bytes: Int) {
        tokens -= Double(bytes)
    }

    public mutating func setMaxDatagramSize(_ size: Int) { maxDatagramSize = size }
}
