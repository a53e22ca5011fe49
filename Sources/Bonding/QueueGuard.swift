// Sender side, beside the scheduler: keeps the tunnel's packets out of a standing queue that a
// path's congestion controller does not see yet. The case it exists for: an LTE link falls from
// 50 to 5 Mbit/s behind a queue sized for 50 (400 ms at the new rate); BBR keeps its old
// bandwidth estimate for seconds (its max filter) and loss-based controllers fill queues by
// design, so every packet handed to that path would wait ~400 ms. The guard notices the queue
// (smoothed RTT far above the minimum) together with a window, and our own packets in flight, far
// beyond what the path's measured delivery rate supports, and limits what the scheduler hands the
// path to that rate × (min RTT + half the budget) until the controller's window is consistent
// with the rate again, or until, with the queue gone, a probe of a quarter more per round trip
// has grown back to the controller's window.

import Congestion

public struct QueueGuard: Sendable {
    /// Limiting this path now.
    public private(set) var isDraining = false
    /// While limiting: since when the path has shown no queue (nil: it has one).
    private var queueGoneSince: Timestamp?

    public init() {}

    /// The queueing delay a path may add: half the largest minimum RTT among the usable paths,
    /// at least 5 ms (issue 4: a ping through a saturated tunnel rises by less than one RTT of
    /// the slowest path in use).
    public static func budget(for paths: [PathSnapshot]) -> Duration {
        var slowest = Duration.zero
        for p in paths where p.isUsable && p.minRTT > slowest { slowest = p.minRTT }
        return max(slowest / 2, .milliseconds(5))
    }

    /// The congestion window the scheduler should see for `path` (never above the real one).
    public mutating func window(for path: PathSnapshot, budget: Duration, now: Timestamp) -> Int {
        guard path.isUsable, path.minRTT > .zero, path.deliveryRate > 0 else {
            isDraining = false
            return path.congestionWindow
        }
        // The window the measured rate fills: over the minimum RTT, half the budget, and twice
        // the path's RTT variation. Without the last, a jittery path (LTE, ±15 ms) held to the
        // rate × (min RTT + budget / 2) delivers less than its rate (its real RTT is longer), its
        // rate estimate falls with what it delivers, and so the limit falls again, round trip
        // after round trip: seen starving a 30 Mbit/s LTE path to 0.1 Mbit/s, even as the last path.
        let supported = Int(path.deliveryRate * (path.minRTT + budget / 2 + path.rttVariation * 2).seconds)
        if !isDraining {
            // Three signs together, each well beyond what a healthy path shows: a queue of more
            // than the budget and the path's own minimum RTT (a jittery radio link's sRTT sits
            // tens of milliseconds above its minimum), a window four times what the path
            // delivers (a queue alone is a controller probing; a big window alone is a rate
            // estimate still catching up), and more of our own packets in flight than the rate
            // supports: the queue is ours. Without the last, a path that carries little one way
            // while the other way is saturated was caught: its RTT counts the reverse queue its
            // acknowledgements wait in, its rate is the little it carried, and once held to that
            // rate it delivered no more and was never let go (the VPS's clean LTE path after an
            // upload, held to 2 packets in flight while a download took the lossy path at 3 Mbit/s).
            isDraining =
                path.smoothedRTT > path.minRTT + max(budget, path.minRTT) + path.rttVariation
                && path.congestionWindow > 4 * supported
                && path.bytesInFlight > 2 * supported
            queueGoneSince = nil
        } else if path.congestionWindow <= 2 * supported {
            isDraining = false
        }
        guard isDraining else { return path.congestionWindow }
        var allowed = Double(supported + QueueGuard.probeAllowance)
        // Once the queue is gone, probe: a quarter more per smoothed RTT for as long as none
        // comes back. The rate alone cannot free a path. Held, it delivers what it is allowed,
        // and the scheduler, which sees the held window, sends its traffic elsewhere. The
        // path's rate then says what it was given, not what it can carry.
        if path.smoothedRTT <= path.minRTT + budget / 2 + path.rttVariation * 2 {
            let since = queueGoneSince ?? now
            queueGoneSince = since
            let rounds = Int(min((now - since).seconds / max(path.smoothedRTT, path.minRTT).seconds, 40))
            for _ in 0..<rounds where allowed < Double(path.congestionWindow) { allowed *= 1.25 }
        } else {
            queueGoneSince = nil
        }
        if allowed >= Double(path.congestionWindow) {
            // Grown back to the controller's own window without a queue: nothing left to guard.
            isDraining = false
            return path.congestionWindow
        }
        return max(Int(allowed), QueueGuard.minimumWindow)
    }

    /// Two full-size packets: the guard never shuts a path completely.
    public static let minimumWindow = 2 * 1500
    /// One full-size packet beyond what the rate supports, so that a held path can show it
    /// carries more. The window is filled in whole packets: held at exactly its rate, a path
    /// allowed 2.5 packets sent 2 per round trip, its rate then said 2, and it stayed at 2 for
    /// good (both of the VPS's LTE paths, 1 and 0.5 Mbit/s, for 30 s of a download). With one
    /// packet more a path that has room grows each round trip until the guard lets go; one that
    /// has none queues one packet more.
    public static let probeAllowance = 1500
}
