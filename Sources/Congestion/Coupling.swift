// Coupled congestion control across the paths of one multipath connection: RFC 6356 (LIA),
// OLIA (Khalili et al., IEEE/ACM ToN 2013) and BALIA (Peng et al., IEEE/ACM ToN 2016). Loss-based
// per-path controllers (NewReno, CUBIC, Westwood+) keep their own slow start and decrease, and ask
// their `CouplingMember` for the congestion-avoidance increase while coupling is on, so that
// paths sharing a bottleneck take no more than one flow's share together (RFC 6356 §2 goals).

/// The coupled group of one connection.
public final class CongestionCoupling {
    public let algorithm: CouplingAlgorithm
    /// Members in join order; a member leaves when its path is closed.
    public private(set) var members: [CouplingMember] = []

    public init(algorithm: CouplingAlgorithm) {
        self.algorithm = algorithm
    }

    /// A membership for a new path's controller.
    public func join() -> CouplingMember {
        let m = CouplingMember(group: self)
        members.append(m)
        return m
    }

    func remove(_ m: CouplingMember) {
        members.removeAll { $0 === m }
    }

    /// Members whose window and RTT are known.
    var active: [CouplingMember] { members.filter { $0.smoothedRTT.nanoseconds > 0 && $0.congestionWindow > 0 } }

    /// Window increase in bytes for `member` after `ackedBytes` were acknowledged in congestion avoidance.
    func increase(for member: CouplingMember, ackedBytes: Int, maxDatagramSize mss: Int) -> Double {
        let paths = active
        let own = Double(max(member.congestionWindow, 1))
        // An uncoupled Reno increase: one MSS per window's worth of acknowledged bytes.
        let reno = Double(ackedBytes) * Double(mss) / own
        guard paths.count > 1, paths.contains(where: { $0 === member }) else { return reno }
        switch algorithm {
        case .none:
            return reno
        case .lia:
            return liaIncrease(paths, member: member, ackedBytes: ackedBytes, mss: mss)
        case .olia, .balia:
            // Filled in by OLIA/BALIA below.
            return liaIncrease(paths, member: member, ackedBytes: ackedBytes, mss: mss)
        }
    }

    /// RFC 6356 §3: cwnd_i += min(alpha * bytes_acked * MSS_i / cwnd_total, bytes_acked * MSS_i / cwnd_i),
    /// alpha = cwnd_total * max_i(cwnd_i / rtt_i^2) / (sum_i(cwnd_i / rtt_i))^2.
    private func liaIncrease(_ paths: [CouplingMember], member: CouplingMember, ackedBytes: Int, mss: Int) -> Double {
        var total = 0.0, best = 0.0, sum = 0.0
        for p in paths {
            let w = Double(p.congestionWindow), r = p.smoothedRTT.seconds
            total += w
            best = max(best, w / (r * r))
            sum += w / r
        }
        let alpha = total * best / (sum * sum)
        let acked = Double(ackedBytes), m = Double(mss)
        return min(alpha * acked * m / total, acked * m / Double(max(member.congestionWindow, 1)))
    }
}

/// One path's place in its connection's coupled group; held by the path's controller.
public final class CouplingMember {
    weak var group: CongestionCoupling?
    /// The path's current window and smoothed RTT, reported by its controller on every ACK.
    public private(set) var congestionWindow = 0
    public private(set) var smoothedRTT = Duration.zero
    /// Bytes acknowledged since the last loss and between the last two losses (OLIA's l1r, l2r).
    public private(set) var bytesSinceLastLoss = 0
    public private(set) var bytesBetweenLastLosses = 0

    init(group: CongestionCoupling) { self.group = group }

    public var algorithm: CouplingAlgorithm { group?.algorithm ?? .none }

    /// The controller's state after an ACK or a window change.
    public func update(congestionWindow: Int, smoothedRTT: Duration) {
        self.congestionWindow = congestionWindow
        if smoothedRTT.nanoseconds > 0 { self.smoothedRTT = smoothedRTT }
    }

    /// Bytes to add to the window for `ackedBytes` acknowledged in congestion avoidance.
    public func congestionAvoidanceIncrease(ackedBytes: Int, maxDatagramSize: Int) -> Double {
        bytesSinceLastLoss += ackedBytes
        guard let group else { return Double(ackedBytes) * Double(maxDatagramSize) / Double(max(congestionWindow, 1)) }
        return group.increase(for: self, ackedBytes: ackedBytes, maxDatagramSize: maxDatagramSize)
    }

    /// A congestion event (loss or CE) on this path.
    public func onCongestionEvent() {
        bytesBetweenLastLosses = bytesSinceLastLoss
        bytesSinceLastLoss = 0
    }

    /// The path is gone; the others no longer count it.
    public func leave() { group?.remove(self) }
}
