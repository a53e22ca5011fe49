// Sender side, next to framing: tells interactive flows (VoIP, games, DNS, pings, ACK streams)
// from bulk ones by their rate, so the scheduler can keep the former on the path where they
// arrive first while bulk traffic also fills the slow paths. One token bucket per lane.

import Congestion

/// Classes each lane by a token bucket: a lane that stays under `interactiveRate` (with bursts
/// up to `burst` bytes) is interactive; one that overdraws its bucket is bulk until the bucket
/// has refilled completely (hysteresis, so a download does not flap). Fixed storage per lane.
public struct FlowClassifier: Sendable {
    /// Bytes per second an interactive flow may send.
    public let interactiveRate: Double
    /// Bucket depth in bytes.
    public let burst: Double
    private var tokens: [Double]
    private var lastUpdate: [UInt64]
    private var isBulk: [Bool]

    /// - Parameters:
    ///   - interactiveRate: bytes per second (default 1 Mbit/s: a video call's audio, a game).
    ///   - burst: bucket depth in bytes.
    public init(interactiveRate: Double = 125_000, burst: Int = 16_000) {
        self.interactiveRate = max(interactiveRate, 1)
        self.burst = Double(max(burst, 1))
        tokens = [Double](repeating: Double(max(burst, 1)), count: TunnelFrame.laneCount)
        lastUpdate = [UInt64](repeating: 0, count: TunnelFrame.laneCount)
        isBulk = [Bool](repeating: false, count: TunnelFrame.laneCount)
    }

    /// Accounts a packet of `bytes` to its lane and returns the lane's class.
    public mutating func classify(lane: UInt16, bytes: Int, now: Timestamp) -> TrafficClass {
        let l = Int(lane) & (TunnelFrame.laneCount - 1)
        let elapsed = now.nanoseconds > lastUpdate[l] ? now.nanoseconds - lastUpdate[l] : 0
        lastUpdate[l] = max(lastUpdate[l], now.nanoseconds)
        tokens[l] = min(burst, tokens[l] + interactiveRate * Double(elapsed) / 1e9)
        if isBulk[l], tokens[l] >= burst { isBulk[l] = false }
        tokens[l] = max(tokens[l] - Double(bytes), -burst)
        if tokens[l] < 0 { isBulk[l] = true }
        return isBulk[l] ? .bulk : .interactive
    }
}
