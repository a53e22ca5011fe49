// Copa (Arun & Balakrishnan, "Copa: Practical Delay-Based Congestion Control for the Internet",
// NSDI 2018): a delay-based controller that steers the sending rate toward 1/(δ·d_q), d_q being
// the measured queueing delay, so a flow keeps about 1/δ packets queued at the bottleneck. When
// the queue never drains (a buffer-filling flow shares the bottleneck) it switches to a
// competitive mode that runs AIMD on 1/δ (§2.2). Works once per ACK, in `onAckProcessed`.

public final class Copa: CongestionController {
    public let name = "copa"
    public private(set) var maxDatagramSize: Int

    /// The window in bytes, kept fractional: one ACK moves it by a fraction of a packet.
    private var window: Double
    public var congestionWindow: Int { Int(window) }

    /// §2.1: 2·cwnd/RTTstanding, so the window, not the pacer, bounds the rate.
    public var pacingRate: Double? {
        guard let rtt = standingRTT, rtt.nanoseconds > 0 else { return nil }
        return 2 * window / rtt.seconds
    }

    // MARK: Parameters

    /// §2.1: δ = 0.5 in the default mode, i.e. about two packets queued per flow.
    public static let defaultInverseDelta = 2.0
    /// §2.2 leaves 1/δ unbounded in competitive mode; a bound keeps one long loss-free stretch
    /// (a bottleneck whose drops other flows take) from making the flow's queue target absurd.
    public static let maxInverseDelta = 1000.0
    /// §2.1: RTTmin is the least RTT over the last 10 s.
    public static let minRTTWindow = Duration(nanoseconds: 10_000_000_000)
    /// §2.2: the queue must drain at least once in this many RTTs, else a buffer-filler is present.
    public static let drainCheckRTTs: UInt64 = 5
    /// §2.2: "nearly empty" means a queueing delay below this fraction of the recent maximum.
    public static let nearlyEmptyFraction = 0.1
    /// §2.1: velocity doubles only once the direction has held for this many RTTs.
    public static let roundsBeforeDoubling = 3

    // MARK: State

    /// The current 1/δ (2 in the default mode).
    private var inverseDelta = Copa.defaultInverseDelta
    public var delta: Double { 1 / inverseDelta }
    /// §2.2: a buffer-filling flow keeps the queue from draining; δ follows AIMD.
    public private(set) var isCompetitive = false
    /// §2.1: the velocity parameter v (packets per ACK multiplier).
    public private(set) var velocity = 1.0
    /// §2.1: slow start until the rate exceeds the target once.
    public private(set) var inSlowStart = true

    /// §2.1: least RTT over the last srtt/2, what the queue holds now without ACK-timing noise.
    public private(set) var standingRTT: Duration?
    /// §2.1: least RTT over the last 10 s, the propagation delay.
    public private(set) var minRTT: Duration?
    /// §2.1: d_q = RTTstanding − RTTmin.
    public var queueingDelay: Duration {
        guard let s = standingRTT, let m = minRTT else { return .zero }
        return s - m
    }

    private var standingFilter = CopaRTTFilter(keepsMinimum: true, slots: 8)
    private var minFilter = CopaRTTFilter(keepsMinimum: true, slots: 10)
    /// Least and greatest RTT over the last `drainCheckRTTs` RTTs, for the mode switch.
    private var recentLowest = CopaRTTFilter(keepsMinimum: true, slots: 10)
    private var recentHighest = CopaRTTFilter(keepsMinimum: false, slots: 10)
    private var firstSampleTime: Timestamp?

    /// The per-RTT clock that drives the velocity and competitive-mode updates.
    private var roundStart = Timestamp.zero
    private var windowAtRoundStart = 0.0
    private var direction = Direction.none
    /// Consecutive rounds the window moved in `direction`.
    private var roundsInDirection = 0
    /// A congestion event happened in the current round (no additive increase of 1/δ then).
    private var lossInRound = false
    /// RFC 9002 §7.3.2-style: one 1/δ halving per round trip of losses.
    private var lastReductionTime: Timestamp?

    private enum Direction { case none, up, down }

    public init(maxDatagramSize: Int = 1200) {
        self.maxDatagramSize = maxDatagramSize
        // RFC 9002 §7.2: min(10 * max_datagram_size, max(14720, 2 * max_datagram_size)).
        window = Double(min(10 * maxDatagramSize, max(14720, 2 * maxDatagramSize)))
    }

    /// Copa's floor on the window: two packets (like RFC 9002 §7.2's minimum window).
    private var minimumWindow: Double { Double(2 * maxDatagramSize) }

    // MARK: CongestionController

    public func onPacketSent(bytes: Int, bytesInFlight: Int, now: Timestamp) {}

    /// Copa decides once per ACK from the RTT state, in `onAckProcessed`.
    public func onPacketAcked(_ packet: AckedPacketInfo, rtt: RTTSample, bytesInFlight: Int, now: Timestamp) {}

    public func onAckProcessed(_ ack: AckSummary) {
        guard ack.ackedBytes > 0 else { return }
        let now = ack.now
        let srtt = ack.rtt.smoothed.nanoseconds > 0 ? ack.rtt.smoothed : ack.rtt.latest
        let drainWindow = srtt * Copa.drainCheckRTTs
        if ack.hasNewRTTSample, ack.rtt.latest.nanoseconds > 0 {
            let sample = ack.rtt.latest
            standingFilter.add(sample, now: now, window: srtt / 2)
            minFilter.add(sample, now: now, window: Copa.minRTTWindow)
            recentLowest.add(sample, now: now, window: drainWindow)
            recentHighest.add(sample, now: now, window: drainWindow)
            if firstSampleTime == nil {
                firstSampleTime = now
                roundStart = now
                windowAtRoundStart = window
            }
        }
        guard let rttMin = minFilter.value(now: now, window: Copa.minRTTWindow),
            let lowest = standingFilter.value(now: now, window: srtt / 2)
        else { return }
        let standing = max(lowest, rttMin)
        standingRTT = standing
        minRTT = rttMin

        updateMode(now: now, drainWindow: drainWindow, rttMin: rttMin)
        if now - roundStart >= srtt { endRound(now: now) }
        adjustWindow(ack: ack, standing: standing, queueing: standing - rttMin)
    }

    public func onCongestionEvent(lostPacketSentTime: Timestamp, now: Timestamp) {
        // §2.2: losses matter only in competitive mode, where they halve 1/δ; in the default
        // mode the growing delay has already turned the window down.
        guard isCompetitive else { return }
        if let last = lastReductionTime, lostPacketSentTime <= last { return }
        lastReductionTime = now
        lossInRound = true
        inverseDelta = max(Copa.defaultInverseDelta, inverseDelta / 2)
    }

    /// RFC 9002 §7.6.2: the window collapses to the minimum; velocity starts over.
    public func onPersistentCongestion(now: Timestamp) {
        window = minimumWindow
        resetVelocity()
    }

    public func onMaxDatagramSizeChanged(_ size: Int) {
        maxDatagramSize = size
        window = max(window, minimumWindow)
    }

    // MARK: The rules

    /// §2.2: the queue should be nearly empty at least once every five RTTs. The least RTT of
    /// that span tells; "nearly" is relative to the greatest queueing delay of the same span.
    private func updateMode(now: Timestamp, drainWindow: Duration, rttMin: Duration) {
        guard let first = firstSampleTime, now - first >= drainWindow,
            let lowest = recentLowest.value(now: now, window: drainWindow),
            let highest = recentHighest.value(now: now, window: drainWindow)
        else { return }
        let lowestQueueing = (lowest - rttMin).seconds
        let highestQueueing = (highest - rttMin).seconds
        let drained = lowestQueueing <= Copa.nearlyEmptyFraction * highestQueueing
        guard drained == isCompetitive else { return }
        // Either way 1/δ starts from the default: competitive mode grows it from there.
        isCompetitive = !drained
        inverseDelta = Copa.defaultInverseDelta
        lossInRound = false
    }

    /// Once per RTT: the velocity rule (§2.1) and competitive mode's additive increase (§2.2).
    private func endRound(now: Timestamp) {
        // §2.1: compare the window with its value one RTT ago; double v when the direction has
        // held for three RTTs already, reset v to 1 when it turns.
        if !inSlowStart {
            let moved: Direction = window > windowAtRoundStart ? .up : (window < windowAtRoundStart ? .down : direction)
            if moved == direction {
                roundsInDirection += 1
                if roundsInDirection > Copa.roundsBeforeDoubling {
                    // Bounded so that one RTT's change (v/δ packets) stays within a window.
                    velocity = min(velocity * 2, max(1, window / Double(maxDatagramSize)))
                }
            } else {
                direction = moved
                roundsInDirection = 1
                velocity = 1
            }
        }
        // §2.2: in competitive mode 1/δ grows by one per loss-free RTT.
        if isCompetitive && !lossInRound {
            inverseDelta = min(inverseDelta + 1, Copa.maxInverseDelta)
        }
        lossInRound = false
        roundStart = now
        windowAtRoundStart = window
    }

    /// §2.1 steps 2–3: target rate λt = 1/(δ·d_q), current rate λ = cwnd/RTTstanding; move the
    /// window by v/(δ·cwnd) packets per acknowledged packet toward the target.
    private func adjustWindow(ack: AckSummary, standing: Duration, queueing: Duration) {
        let mss = Double(maxDatagramSize)
        let acked = Double(ack.ackedBytes)
        // λ ≤ λt ⇔ (cwnd/mss)/RTTstanding ≤ 1/(δ·d_q) ⇔ (cwnd/mss)·δ·d_q ≤ RTTstanding; d_q = 0
        // is an infinite target.
        let belowTarget = (window / mss) * delta * queueing.seconds <= standing.seconds
        // RFC 9002 §7.8: no growth while the sender leaves half the window unused.
        let windowLimited = Double(ack.priorBytesInFlight) >= window / 2

        if inSlowStart {
            if belowTarget {
                // §2.1: slow start doubles the window once per RTT.
                if windowLimited { window += acked }
                return
            }
            inSlowStart = false
            resetVelocity()
        }
        // v/(δ·cwnd) packets per packet, in bytes: v·mss·acked/(δ·cwnd). Never faster than slow
        // start, so a large v or 1/δ cannot swing the window by more than it holds in an RTT.
        let step = min(acked, velocity * mss * acked * inverseDelta / window)
        if belowTarget {
            if windowLimited { window += step }
        } else {
            window = max(window - step, minimumWindow)
        }
    }

    private func resetVelocity() {
        velocity = 1
        direction = .none
        roundsInDirection = 0
        windowAtRoundStart = window
    }
}

/// The least (or greatest) RTT sample over a sliding time window, in fixed memory: time is cut
/// into `slots` sub-windows, each remembering its extremum, so an answer may include samples up
/// to one sub-window older than the window. Storage is allocated once, at init.
struct CopaRTTFilter {
    private let keepsMinimum: Bool
    private let slots: Int
    /// Start time and extremum of each sub-window, in nanoseconds; a ring, newest at `newest`.
    private var starts: [UInt64]
    private var values: [UInt64]
    private var newest = 0
    private var used = 0

    init(keepsMinimum: Bool, slots: Int) {
        self.keepsMinimum = keepsMinimum
        self.slots = slots
        // One sub-window more than the window spans: the newest is only partly filled.
        starts = Array(repeating: 0, count: slots + 1)
        values = Array(repeating: 0, count: slots + 1)
    }

    private func better(_ a: UInt64, _ b: UInt64) -> UInt64 { keepsMinimum ? min(a, b) : max(a, b) }

    mutating func add(_ sample: Duration, now: Timestamp, window: Duration) {
        let width = max(window.nanoseconds / UInt64(slots), 1)
        if used > 0, now.nanoseconds &- starts[newest] < width, now.nanoseconds >= starts[newest] {
            values[newest] = better(values[newest], sample.nanoseconds)
            return
        }
        newest = (newest + 1) % starts.count
        starts[newest] = now.nanoseconds
        values[newest] = sample.nanoseconds
        used = min(used + 1, starts.count)
    }

    /// The extremum of the sub-windows that reach into [now − window, now]; if none do (no
    /// sample for a whole window), the newest sub-window's, the best that is known.
    func value(now: Timestamp, window: Duration) -> Duration? {
        guard used > 0 else { return nil }
        let width = max(window.nanoseconds / UInt64(slots), 1)
        // A sub-window reaches into the window if it started after now − window − width.
        let reach = window.nanoseconds + width
        var result = values[newest]
        var i = newest
        for _ in 1..<used {
            i = (i + starts.count - 1) % starts.count
            guard now.nanoseconds < reach || starts[i] > now.nanoseconds - reach else { break }
            result = better(result, values[i])
        }
        return Duration(nanoseconds: result)
    }
}
