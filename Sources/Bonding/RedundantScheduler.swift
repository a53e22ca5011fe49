// Path scheduler `redundant`: every packet on every eligible path that has room, for traffic
// where delay and loss matter more than capacity. The receiver's duplicate window keeps the
// first copy and drops the rest.

import Congestion

public final class RedundantScheduler: PathScheduler {
    public var kind: SchedulerKind { .redundant }

    public init() {}

    public func schedule(_ packet: SchedulingRequest, paths: [PathSnapshot], now: Timestamp) -> SchedulingDecision {
        let eligible = PathEligibility.eligible(paths)
        let sendable = PathEligibility.sendable(paths, among: eligible, bytes: packet.size, now: now)
        // A path without room skips this packet rather than queue it (no standing queue).
        guard !sendable.isEmpty else { return PathEligibility.wait(paths, among: eligible, bytes: packet.size) }
        return .send(sendable)
    }
}
