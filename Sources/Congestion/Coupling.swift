// Coupled congestion control across the paths of one multipath connection: RFC 6356 (LIA),
// OLIA (Khalili et al., IEEE/ACM ToN 2013) and BALIA (Peng et al., IEEE/ACM ToN 2016). Loss-based
// per-path controllers (NewReno, CUBIC, Westwood+) keep their own slow start, and ask their
// `CouplingMember` for the congestion-avoidance increase (and, for BALIA, the decrease factor)
// while coupling is on, so that paths sharing a bottleneck take no more than one flow's share
// together (RFC 6356 §2 goals).
//
// Units: the papers write their increases in packets per packet acknowledged. Every one of them is
// homogeneous of degree -1 in the windows (1/w, w/(Σw)², α/w, ...), so evaluating the same
// expression on windows in bytes gives the per-packet increase divided by the MSS; an ACK of
// `ackedBytes` (ackedBytes/MSS packets) then adds `ackedBytes × MSS × f(windows in bytes)` bytes.
// This is exactly RFC 6356's `bytes_acked * MSS_i / cwnd_i` form, applied to all three.
//
// Cost: every call walks `members` (a handful of paths) with no allocation. The walks use index
// loops: `for m in members` allocates per element in unoptimised (debug) builds.

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

    /// Number of members whose window and RTT are known (the paths the formulas sum over).
    var activeCount: Int {
        var n = 0
        for i in 0..<members.count where members[i].isActive { n += 1 }
        return n
    }

    /// Window increase in bytes for `member` after `ackedBytes` were acknowledged in congestion
    /// avoidance. May be negative for OLIA (a max-window path yielding to a better one).
    func increase(for member: CouplingMember, ackedBytes: Int, maxDatagramSize mss: Int) -> Double {
        let own = Double(max(member.congestionWindow, 1))
        let acked = Double(ackedBytes)
        let m = Double(mss)
        // RFC 9002 §7.3.3 / RFC 5681 §3.1: the uncoupled increase, one MSS per window acknowledged.
        let reno = acked * m / own
        guard algorithm != .none, member.isActive, activeCount > 1 else { return reno }
        let perByte: Double
        switch algorithm {
        case .none: return reno
        case .lia: perByte = liaIncrease(member)
        case .olia: perByte = oliaIncrease(member)
        case .balia: perByte = baliaIncrease(member)
        }
        // RFC 6356 §3: never more than an uncoupled flow would get on this path ("do no harm"),
        // applied to OLIA and BALIA as well.
        var inc = min(perByte * acked * m, reno)
        // A negative OLIA step never takes the window below RFC 9002 §7.2's 2 * max_datagram_size.
        if inc < 0 { inc = max(inc, min(0, 2 * m - own)) }
        return inc
    }

    /// RFC 6356 §3: cwnd_i += min(alpha * bytes_acked * MSS_i / cwnd_total, bytes_acked * MSS_i / cwnd_i)
    /// with alpha = cwnd_total * max_i(cwnd_i / rtt_i^2) / (sum_i(cwnd_i / rtt_i))^2.
    /// Returns alpha / cwnd_total (the increase per acked byte per MSS); the caller applies the min.
    private func liaIncrease(_ member: CouplingMember) -> Double {
        var total = 0.0
        var best = 0.0
        var sum = 0.0
        for i in 0..<members.count {
            let p = members[i]
            guard p.isActive else { continue }
            let w = Double(p.congestionWindow)
            let r = p.smoothedRTT.seconds
            total += w
            best = max(best, w / (r * r))
            sum += w / r
        }
        let alpha = total * best / (sum * sum)
        return alpha / total
    }

    /// OLIA (Khalili et al. 2013): per ACK on path r,
    ///   w_r += (w_r / rtt_r^2) / (Σ_p w_p / rtt_p)^2 + α_r / w_r,
    /// with M the paths of largest window, B the presumably best paths (largest l_r^2 / rtt_r,
    /// l_r = max(bytes between the last two losses, bytes since the last loss)) and
    ///   α_r = 1 / (|R| |B\M|) for r ∈ B\M,  -1 / (|R| |M|) for r ∈ M if B\M ≠ ∅,  else 0.
    /// (Linux's mptcp_olia ranks paths by l_r / rtt_r² instead; with equal RTTs both agree.)
    private func oliaIncrease(_ member: CouplingMember) -> Double {
        var paths = 0
        var maxWindow = 0
        var sumRate = 0.0
        var bestMetric = -1.0
        for i in 0..<members.count {
            let p = members[i]
            guard p.isActive else { continue }
            paths += 1
            maxWindow = max(maxWindow, p.congestionWindow)
            sumRate += Double(p.congestionWindow) / p.smoothedRTT.seconds
            bestMetric = max(bestMetric, p.oliaPathMetric)
        }
        var inM = 0
        var inBNotM = 0
        for i in 0..<members.count {
            let p = members[i]
            guard p.isActive else { continue }
            if p.congestionWindow == maxWindow { inM += 1 } else if p.oliaPathMetric == bestMetric { inBNotM += 1 }
        }
        var alpha = 0.0
        if inBNotM > 0 {
            if member.congestionWindow == maxWindow {
                alpha = -1 / Double(paths * inM)
            } else if member.oliaPathMetric == bestMetric {
                alpha = 1 / Double(paths * inBNotM)
            }
        }
        let w = Double(member.congestionWindow)
        let r = member.smoothedRTT.seconds
        return (w / (r * r)) / (sumRate * sumRate) + alpha / w
    }

    /// BALIA (Peng et al. 2016): with x_k = w_k / rtt_k and α_r = max_k x_k / x_r, per ACK on path r
    ///   w_r += (x_r / rtt_r) / (Σ_k x_k)^2 × (1 + α_r)/2 × (4 + α_r)/5.
    private func baliaIncrease(_ member: CouplingMember) -> Double {
        let (sumX, maxX) = baliaRates()
        let r = member.smoothedRTT.seconds
        let x = Double(member.congestionWindow) / r
        let alpha = maxX / x
        return (x / r) / (sumX * sumX) * (1 + alpha) / 2 * (4 + alpha) / 5
    }

    /// BALIA's decrease (Peng et al. 2016): w_r -= w_r/2 × min(α_r, 1.5), i.e. the window is
    /// multiplied by 1 - min(α_r, 1.5)/2. One path alone is plain Reno (α = 1: one half).
    func baliaDecreaseFactor(for member: CouplingMember) -> Double {
        guard member.isActive, activeCount > 1 else { return 0.5 }
        let (_, maxX) = baliaRates()
        let x = Double(member.congestionWindow) / member.smoothedRTT.seconds
        return 1 - min(maxX / x, 1.5) / 2
    }

    /// Σ_k x_k and max_k x_k over the active paths, x_k = w_k / rtt_k in bytes per second.
    private func baliaRates() -> (sum: Double, max: Double) {
        var sum = 0.0
        var best = 0.0
        for i in 0..<members.count {
            let p = members[i]
            guard p.isActive else { continue }
            let x = Double(p.congestionWindow) / p.smoothedRTT.seconds
            sum += x
            best = max(best, x)
        }
        return (sum, best)
    }
}

/// One path's place in its connection's coupled group; held by the path's controller.
public final class CouplingMember {
    weak var group: CongestionCoupling?
    /// The path's current window and smoothed RTT, reported by its controller on every ACK.
    public private(set) var congestionWindow = 0
    public private(set) var smoothedRTT = Duration.zero
    /// Bytes acknowledged in congestion avoidance since the last loss and between the last two
    /// losses (OLIA's l2r and l1r).
    public private(set) var bytesSinceLastLoss = 0
    public private(set) var bytesBetweenLastLosses = 0

    init(group: CongestionCoupling) { self.group = group }

    /// The group's algorithm; `.none` once the path has left.
    public var algorithm: CouplingAlgorithm { group?.algorithm ?? .none }

    /// A coupling algorithm is selected and another path is there to couple with. A lone path
    /// runs its controller's own law (the coupled increase of one path is just Reno's).
    public var isCoupledWithOthers: Bool {
        guard let group, group.algorithm != .none else { return false }
        return group.members.count > 1
    }

    /// Window and RTT are known: the path counts in the coupled sums.
    var isActive: Bool { smoothedRTT.nanoseconds > 0 && congestionWindow > 0 }

    /// OLIA's "best path" measure l_r^2 / rtt_r, l_r = max(l1r, l2r) (Khalili et al. 2013).
    var oliaPathMetric: Double {
        let l = Double(max(bytesSinceLastLoss, bytesBetweenLastLosses))
        return l * l / smoothedRTT.seconds
    }

    /// The controller's state after an ACK or a window change. A zero RTT keeps the last one.
    public func update(congestionWindow: Int, smoothedRTT: Duration) {
        self.congestionWindow = congestionWindow
        if smoothedRTT.nanoseconds > 0 { self.smoothedRTT = smoothedRTT }
    }

    /// A window change without a new RTT (a reduction on loss or persistent congestion).
    public func update(congestionWindow: Int) {
        self.congestionWindow = congestionWindow
    }

    /// Bytes to add to the window (negative: to remove, OLIA only) for `ackedBytes` acknowledged
    /// in congestion avoidance. Call `update` first so the group sees the current window.
    public func congestionAvoidanceIncrease(ackedBytes: Int, maxDatagramSize: Int) -> Double {
        bytesSinceLastLoss += ackedBytes
        guard let group else { return Double(ackedBytes) * Double(maxDatagramSize) / Double(max(congestionWindow, 1)) }
        return group.increase(for: self, ackedBytes: ackedBytes, maxDatagramSize: maxDatagramSize)
    }

    /// The factor to multiply this path's window by on a congestion event: 0.5 (Reno's) for
    /// LIA, OLIA and uncoupled paths, 1 - min(α_r, 1.5)/2 for BALIA. Ask before reducing.
    public func decreaseFactor() -> Double {
        guard let group, group.algorithm == .balia else { return 0.5 }
        return group.baliaDecreaseFactor(for: self)
    }

    /// A congestion event (loss or CE) on this path: OLIA's inter-loss distances move on.
    /// Back-to-back events with nothing acknowledged between keep the previous interval.
    public func onCongestionEvent() {
        guard bytesSinceLastLoss > 0 else { return }
        bytesBetweenLastLosses = bytesSinceLastLoss
        bytesSinceLastLoss = 0
    }

    /// The path is gone; the others no longer count it, and this member acts uncoupled.
    public func leave() {
        group?.remove(self)
        group = nil
    }
}
