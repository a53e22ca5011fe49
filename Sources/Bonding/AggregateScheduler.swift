// Path scheduler `aggregate` (the default): sums the paths' capacities while keeping arrival
// times aligned. Each packet goes to the path where it is expected to arrive first:
//     arrival = pacing wait + (bytes in flight + packet) / capacity + one-way delay,
// among the paths with window and pacing room (so no path queues beyond its window, and a slow
// path takes traffic only when the faster ones are full: in proportion to capacity when delays
// are equal, overflow onto the satellite when they are not). In the spirit of ECF and BLEST,
// an interactive packet also weighs the paths that are full: if one of them would still deliver
// it first once its window opens, the packet waits for it instead of taking the slow path.
// A bulk packet does the same when the sender's backlog is known and small: if the whole backlog
// would still reach the far end sooner through a full path than this packet through the best
// path with room, the slow path would only add delay and reordering (ECF's rule, Lim et al.
// 2017). Under a load the fast paths cannot carry, the backlog grows until the slow path pays.

import Congestion

public final class AggregateScheduler: PathScheduler {
    public var kind: SchedulerKind { .aggregate }

    public init() {}

    public func schedule(_ packet: SchedulingRequest, paths: [PathSnapshot], now: Timestamp) -> SchedulingDecision {
        let eligible = PathEligibility.eligible(paths)
        let sendable = PathEligibility.sendable(paths, among: eligible, bytes: packet.size, now: now)
        var best: Int?
        var bestArrival = Double.infinity
        for i in sendable {
            let t = expectedArrival(paths[i], bytes: packet.size, now: now)
            if t < bestArrival {
                best = i
                bestArrival = t
            }
        }
        if packet.trafficClass == .interactive || packet.backlogIsKnown {
            // Would a path that is full now still deliver first (this packet, or for bulk the
            // whole backlog)? Then wait for it.
            let isBulk = packet.trafficClass == .bulk
            let bytes = isBulk ? packet.queuedBytes : packet.size
            var waitFor: Int?
            var waitArrival = bestArrival
            for i in eligible where !sendable.contains(i) {
                // Bulk waits only for a path of clearly lower base delay (minimum RTT lower by more
                // than either path's RTT variation, ECF's δ): between paths of like delay, which
                // one looks sooner is queueing noise, and waiting on it only slowed an inner TCP
                // flow (equal: 61 → 52 Mbit/s).
                var margin = 0.0
                if isBulk, let best {
                    let delta = max(paths[i].rttVariation, paths[best].rttVariation)
                    guard paths[i].minRTT + delta < paths[best].minRTT else { continue }
                    margin = delta.seconds
                }
                let t = expectedArrival(paths[i], bytes: bytes, now: now) + margin
                if t < waitArrival {
                    waitFor = i
                    waitArrival = t
                }
            }
            if let waitFor {
                let path = paths[waitFor]
                if path.hasWindow(for: packet.size), let t = path.nextSendTime { return .wait(until: t) }
                return .wait(until: nil)
            }
        }
        guard let best else { return PathEligibility.wait(paths, among: eligible, bytes: packet.size) }
        return .send(.single(best))
    }

    /// Seconds from `now` until a packet of `bytes` sent on `path` is expected at the far end,
    /// counting the wait for window and pacing if the path cannot take it now.
    func expectedArrival(_ path: PathSnapshot, bytes: Int, now: Timestamp) -> Double {
        let rate = path.estimatedRate
        var wait = 0.0
        if let t = path.nextSendTime, now < t { wait = (t - now).seconds }
        let excess = path.bytesInFlight + bytes - path.congestionWindow
        if excess > 0 { wait = max(wait, Double(excess) / rate) }
        return wait + Double(path.bytesInFlight + bytes) / rate + path.oneWayDelay.seconds
    }
}
