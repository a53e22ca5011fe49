// Path scheduler `roundrobin`: packets take the paths in turn, skipping any without window or
// pacing room. A baseline for comparison; it ignores capacity and delay.

import Congestion

public final class RoundRobinScheduler: PathScheduler {
    public var kind: SchedulerKind { .roundrobin }
    /// ID of the path used last (IDs, not indices, survive paths coming and going).
    private var lastID: Int?

    public init() {}

    public func schedule(_ packet: SchedulingRequest, paths: [PathSnapshot], now: Timestamp) -> SchedulingDecision {
        let eligible = PathEligibility.eligible(paths)
        let sendable = PathEligibility.sendable(paths, among: eligible, bytes: packet.size, now: now)
        guard !sendable.isEmpty else { return PathEligibility.wait(paths, among: eligible, bytes: packet.size) }
        let n = min(paths.count, 64)
        var start = 0
        if let lastID, let last = paths.firstIndex(where: { $0.id == lastID }) { start = last + 1 }
        for step in 0..<n {
            let i = (start + step) % n
            if sendable.contains(i) {
                lastID = paths[i].id
                return .send(.single(i))
            }
        }
        return PathEligibility.wait(paths, among: eligible, bytes: packet.size)
    }
}
