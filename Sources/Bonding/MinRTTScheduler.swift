// Path scheduler `minrtt`: the Linux MPTCP default. Each packet goes to the path with the lowest
// smoothed RTT that has window and pacing room; slower paths only take the overflow.

import Congestion

public final class MinRTTScheduler: PathScheduler {
    public var kind: SchedulerKind { .minrtt }

    public init() {}

    public func schedule(_ packet: SchedulingRequest, paths: [PathSnapshot], now: Timestamp) -> SchedulingDecision {
        let eligible = PathEligibility.eligible(paths)
        let sendable = PathEligibility.sendable(paths, among: eligible, bytes: packet.size, now: now)
        guard let best = PathEligibility.fastest(paths, in: sendable) else {
            return PathEligibility.wait(paths, among: eligible, bytes: packet.size)
        }
        return .send(.single(best))
    }
}
