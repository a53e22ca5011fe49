// HyStart++ (RFC 9406): the initial slow start watches each round's minimum RTT and, when it
// rises, switches to Conservative Slow Start (a quarter of slow start's growth) for a few rounds
// before congestion avoidance. A long path (a 600 ms satellite) then leaves slow start near its
// bandwidth-delay product instead of doubling far past it and losing a window's worth of packets.
// The window-growth loops (NewReno, CUBIC, Westwood+) own one each; this file is only the
// round and RTT bookkeeping they share.

/// Where a path's initial slow start stands (RFC 9406 §4).
public enum HyStartPhase: Sendable {
    /// Standard slow start, watching each round's minimum RTT.
    case slowStart
    /// Conservative Slow Start: the RTT rose, growth is a quarter of slow start's.
    case conservativeSlowStart
    /// HyStart++ is over (CSS finished, or a loss): congestion avoidance, or plain slow start
    /// up to ssthresh after a collapse (RFC 9406 §4.2: HyStart++ only for the initial slow start).
    case done
}

public struct HyStart: Sendable {
    // RFC 9406 §4.3 constants.
    static let nRTTSample = 8
    static let minRTTThresh = Duration.milliseconds(4)
    static let maxRTTThresh = Duration.milliseconds(16)
    static let minRTTDivisor: UInt64 = 8
    static let cssGrowthDivisor = 4
    static let cssRounds = 5

    public private(set) var phase: HyStartPhase = .slowStart

    // RTTs in nanoseconds, UInt64.max meaning "infinity".
    private var lastSentTime = Timestamp.zero
    /// Send time of the newest packet when the current round began: the round ends when a packet
    /// sent after it is acknowledged (the "windowEnd" marker, by time instead of sequence number).
    private var roundEnd: Timestamp?
    private var lastRoundMinRTT = UInt64.max
    private var currentRoundMinRTT = UInt64.max
    private var rttSampleCount = 0
    private var cssBaselineMinRTT = UInt64.max
    private var cssRoundCount = 0

    public init() {}

    /// Slow start's growth is divided by this: 1, or CSS_GROWTH_DIVISOR in CSS (§4.2). The
    /// per-ACK cap L is infinite because every controller here paces.
    public var growthDivisor: Int { phase == .conservativeSlowStart ? HyStart.cssGrowthDivisor : 1 }

    public mutating func onPacketSent(now: Timestamp) {
        if now > lastSentTime { lastSentTime = now }
    }

    /// Call once per ACK frame, before the window grows, with the send time of the newest packet
    /// it acknowledged. Returns true when CSS has run CSS_ROUNDS rounds: the caller leaves slow
    /// start (ssthresh = cwnd, §4.2).
    public mutating func onAck(newestSentAcked: Timestamp?) -> Bool {
        guard phase != .done, let newestSentAcked else { return false }
        if let end = roundEnd, newestSentAcked <= end { return false }
        roundEnd = lastSentTime
        if phase == .conservativeSlowStart {
            // A partial round counts towards CSS_ROUNDS; after them, congestion avoidance.
            if cssRoundCount >= HyStart.cssRounds {
                phase = .done
                return true
            }
            cssRoundCount += 1
        }
        lastRoundMinRTT = currentRoundMinRTT
        currentRoundMinRTT = .max
        rttSampleCount = 0
        return false
    }

    /// A new RTT sample taken in slow start (§4.2: after the window grew for this ACK).
    public mutating func onRTTSample(_ rtt: Duration) {
        guard phase != .done else { return }
        currentRoundMinRTT = min(currentRoundMinRTT, rtt.nanoseconds)
        rttSampleCount += 1
        guard rttSampleCount >= HyStart.nRTTSample else { return }
        switch phase {
        case .slowStart:
            guard currentRoundMinRTT != .max, lastRoundMinRTT != .max else { return }
            let thresh = max(
                HyStart.minRTTThresh.nanoseconds,
                min(lastRoundMinRTT / HyStart.minRTTDivisor, HyStart.maxRTTThresh.nanoseconds))
            if currentRoundMinRTT >= lastRoundMinRTT + thresh {
                // The queue is building: slow down instead of overshooting.
                cssBaselineMinRTT = currentRoundMinRTT
                cssRoundCount = 1
                phase = .conservativeSlowStart
            }
        case .conservativeSlowStart:
            if currentRoundMinRTT < cssBaselineMinRTT {
                // The RTT fell back: the exit was spurious, resume slow start.
                cssBaselineMinRTT = .max
                phase = .slowStart
            }
        case .done:
            break
        }
    }

    /// A loss, a CE mark or a collapse ends HyStart++ for good (§4.2).
    public mutating func finish() { phase = .done }
}
