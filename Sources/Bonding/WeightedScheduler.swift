// Path scheduler `weighted`: splits bytes between paths in proportion to the user's weights by
// deficit round robin (Shreedhar & Varghese 1996): each turn a path earns weight × quantum bytes
// of credit and sends while its credit covers the packet. A path without window or pacing room
// is skipped (work-conserving: the others go on), so the split holds while the paths keep up.

import Congestion

public final class WeightedScheduler: PathScheduler {
    public var kind: SchedulerKind { .weighted }
    /// Credit a path earns per turn and per unit of weight.
    public let quantum: Int

    /// Credit per path ID; fixed capacity (64 paths), no allocation after init.
    private var ids: [Int]
    private var deficits: [Int]
    private var used = 0
    /// The path whose turn it is, and whether it has had its credit for this turn.
    private var currentID: Int?
    private var credited = false

    /// - Parameter quantum: bytes of credit per turn per unit of weight (at least one MTU, so a
    ///   turn always covers a packet).
    public init(quantum: Int = 1500) {
        self.quantum = max(quantum, 1)
        ids = [Int](repeating: 0, count: 64)
        deficits = [Int](repeating: 0, count: 64)
    }

    public func schedule(_ packet: SchedulingRequest, paths: [PathSnapshot], now: Timestamp) -> SchedulingDecision {
        let eligible = PathEligibility.eligible(paths)
        let sendable = PathEligibility.sendable(paths, among: eligible, bytes: packet.size, now: now)
        guard !sendable.isEmpty else { return PathEligibility.wait(paths, among: eligible, bytes: packet.size) }
        let n = min(paths.count, 64)
        var i = 0
        if let currentID, let current = paths.firstIndex(where: { $0.id == currentID }), current < n {
            i = current
        } else {
            credited = false
        }
        // Each full round adds at least `quantum` to every sendable path: bounded.
        let rounds = packet.size / quantum + 2
        for _ in 0..<rounds * n {
            if sendable.contains(i) {
                let slot = creditSlot(for: paths[i].id)
                if !credited {
                    deficits[slot] += max(paths[i].weight, 1) * quantum
                    credited = true
                }
                if deficits[slot] >= packet.size {
                    deficits[slot] -= packet.size
                    currentID = paths[i].id
                    return .send(.single(i))
                }
            } else if !eligible.contains(i) {
                // Not in the active set: like an empty DRR queue, it keeps no credit.
                deficits[creditSlot(for: paths[i].id)] = 0
            }
            i = (i + 1) % n
            currentID = paths[i].id
            credited = false
        }
        return PathEligibility.wait(paths, among: eligible, bytes: packet.size)
    }

    /// The credit slot of a path ID (recycling the least useful slot when all 64 are taken).
    private func creditSlot(for id: Int) -> Int {
        for s in 0..<used where ids[s] == id { return s }
        if used < ids.count {
            ids[used] = id
            deficits[used] = 0
            used += 1
            return used - 1
        }
        ids[0] = id
        deficits[0] = 0
        return 0
    }
}
