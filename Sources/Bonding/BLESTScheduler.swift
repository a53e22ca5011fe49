// Path scheduler `blest`: BLocking ESTimation (Ferlin et al., "BLEST: Blocking Estimation-based
// MPTCP Scheduler for Heterogeneous Networks", IFIP Networking 2016). The fastest path is used
// while it has room; a slower path is used only if, during one of its RTTs, the fast path could
// not fill the window the receiver can reorder — otherwise the slow packet would block the
// receive side and it is better to wait for the fast path. The MPTCP send window's role is played
// here by the receiver's reorder capacity in bytes.

import Congestion

public final class BLESTScheduler: PathScheduler {
    public var kind: SchedulerKind { .blest }
    /// Bytes the receiver can hold out of order (reorder buffer capacity × packet size).
    public var windowBytes: Int
    /// Scaling factor λ of the estimate (the paper adapts it from observed blocking; fixed here).
    public var lambda: Double
    /// Segment size the window estimate counts in.
    public var segmentSize: Int

    public init(windowBytes: Int = 8192 * 1252, lambda: Double = 1.0, segmentSize: Int = 1252) {
        self.windowBytes = windowBytes
        self.lambda = lambda
        self.segmentSize = max(segmentSize, 1)
    }

    public func schedule(_ packet: SchedulingRequest, paths: [PathSnapshot], now: Timestamp) -> SchedulingDecision {
        let eligible = PathEligibility.eligible(paths)
        let sendable = PathEligibility.sendable(paths, among: eligible, bytes: packet.size, now: now)
        guard let fast = PathEligibility.fastest(paths, in: eligible) else { return .wait(until: nil) }
        if sendable.contains(fast) { return .send(.single(fast)) }
        guard let slow = PathEligibility.fastest(paths, in: sendable) else {
            return PathEligibility.wait(paths, among: eligible, bytes: packet.size)
        }
        let f = paths[fast]
        let s = paths[slow]
        let ratio = max(s.rtt.seconds / max(f.rtt.seconds, 1e-6), 1)
        let mss = Double(segmentSize)
        let cwndSegments = Double(f.congestionWindow) / mss
        // Bytes the fast path can send during one slow-path RTT, its window growing by one
        // segment per RTT (congestion avoidance).
        let x = mss * (cwndSegments + (ratio - 1) / 2) * ratio
        if x * lambda > Double(windowBytes) - Double(s.bytesInFlight + packet.size) {
            return PathEligibility.wait(paths, among: PathSet.single(fast), bytes: packet.size)
        }
        return .send(.single(slow))
    }
}
