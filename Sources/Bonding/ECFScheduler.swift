// Path scheduler `ecf`: Earliest Completion First (Lim et al., "ECF: An MPTCP Path Scheduler to
// Manage Heterogeneous Paths", CoNEXT 2017). The fastest path is used while it has room; when it
// is full, the next-fastest path is used only if the data waiting to be sent would finish later
// by waiting for the fast path than by taking the slow one. `k` is the sender's backlog
// (`SchedulingRequest.queuedBytes`); β gives the decision hysteresis.

import Congestion

public final class ECFScheduler: PathScheduler {
    public var kind: SchedulerKind { .ecf }
    /// Hysteresis factor β (the paper uses 0.25).
    public let beta: Double
    private var waiting = false

    public init(beta: Double = 0.25) {
        self.beta = beta
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
        let k = Double(packet.queuedBytes)
        let rttF = f.rtt.seconds
        let rttS = s.rtt.seconds
        let delta = max(f.rttVariation, s.rttVariation).seconds
        let n = 1 + k / Double(max(f.congestionWindow, 1))
        if n * rttF < (1 + (waiting ? beta : 0)) * (rttS + delta) {
            if k / Double(max(s.congestionWindow, 1)) * rttS >= 2 * rttF + delta {
                waiting = true
                return PathEligibility.wait(paths, among: PathSet.single(fast), bytes: packet.size)
            }
            return .send(.single(slow))
        }
        waiting = false
        return .send(.single(slow))
    }
}
