// Sender side, beside the scheduler: keeps the tunnel's packets out of a standing queue that a
// path's congestion controller does not see yet. The case it exists for: an LTE link falls from
// 50 to 5 Mbit/s behind a queue sized for 50 (400 ms at the new rate); BBR keeps its old
// bandwidth estimate for seconds (its max filter) and loss-based controllers fill queues by
// design, so every packet handed to that path would wait ~400 ms. The guard notices the queue
// (smoothed RTT far above the minimum) together with a window far beyond what the path's measured
// delivery rate supports, and limits what the scheduler hands the path to that rate × (min RTT + half
// the budget) until the controller's window is consistent with the rate again.

import Congestion

public struct QueueGuard: Sendable {
    /// Limiting this path now.
    public private(set) var isDraining = false

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
    public mutating func window(for path: PathSnapshot, budget: Duration) -> Int {
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
            // Both signs together, each well beyond what a healthy path shows: a queue of more
            // than the budget and the path's own minimum RTT (a jittery radio link's sRTT sits
            // tens of milliseconds above its minimum), and a window four times what the path
            // delivers (a queue alone is a controller probing; a big window alone is a rate
            // estimate still catching up).
            isDraining =
                path.smoothedRTT > path.minRTT + max(budget, path.minRTT) + path.rttVariation
                && path.congestionWindow > 4 * supported
        } else if path.congestionWindow <= 2 * supported {
            isDraining = false
        }
        guard isDraining else { return path.congestionWindow }
        return max(min(path.congestionWindow, supported), QueueGuard.minimumWindow)
    }

    /// Two full-size packets: the guard never shuts a path completely.
    public static let minimumWindow = 2 * 1500
}
