// Runtime selection of a path's congestion controller and of the coupling across a connection's
// paths: the names the daemon's configuration (`congestion = ...`, `coupling = ...`) and
// `tquic-sim --cc/--coupling` accept.

public enum CongestionAlgorithm: String, CaseIterable, Sendable {
    case newreno, cubic, bbr, copa, westwood

    /// Loss-based controllers can take a coupled increase (LIA/OLIA/BALIA); BBR and Copa cannot.
    public var isLossBased: Bool {
        switch self {
        case .newreno, .cubic, .westwood: return true
        case .bbr, .copa: return false
        }
    }

    /// A controller for one path. `coupling` is the path's membership in its connection's
    /// coupled group, or nil when the paths are treated as disjoint; `randomSeed` drives the
    /// randomised parts (BBR's probe timing), drawn by the caller from its injected randomness.
    public func makeController(maxDatagramSize: Int, coupling: CouplingMember? = nil, randomSeed: UInt64 = 1) -> CongestionController {
        switch self {
        case .newreno: return NewReno(maxDatagramSize: maxDatagramSize, coupling: coupling)
        case .cubic: return Cubic(maxDatagramSize: maxDatagramSize, coupling: coupling)
        case .westwood: return Westwood(maxDatagramSize: maxDatagramSize, coupling: coupling)
        case .bbr: return BBR(maxDatagramSize: maxDatagramSize, randomSeed: randomSeed)
        case .copa: return Copa(maxDatagramSize: maxDatagramSize)
        }
    }
}

public enum CouplingAlgorithm: String, CaseIterable, Sendable {
    /// Each path's controller on its own (paths known to be disjoint: the default).
    case none
    /// RFC 6356 Linked Increases.
    case lia
    /// Opportunistic LIA (Khalili et al., IEEE/ACM ToN 2013).
    case olia
    /// Balanced LIA (Peng et al., IEEE/ACM ToN 2016).
    case balia
}
