// Datagram Packetization Layer PMTU Discovery (RFC 8899, as QUIC does it: RFC 9000 §14.3) for one
// path: the state machine that decides which probe size to try next, what an acknowledged or lost
// probe means, and when losses of full-size packets say the path's MTU fell (black hole). It only
// decides; `Connection+PathMTU.swift` builds the PING + PADDING probes and feeds it acks and losses.
import Congestion

/// One path's DPLPMTUD state (RFC 8899 §5.2: a state machine per path with multipath).
///
/// Search: the largest size first (most WAN links carry what the owner configured), then a binary
/// search between the last acknowledged size and the smallest size that failed `maxProbes` times,
/// until the two are `searchGranularity` bytes apart. Black holes: see `onSuspiciousLoss`.
struct PathMTUDiscovery {
    /// RFC 9000 §14 / RFC 8899 §5.1.2: QUIC's smallest maximum datagram size is the BASE_PLPMTU
    /// (and MIN_PLPMTU, RFC 9000 §14.3).
    static let basePLPMTU = 1200
    /// RFC 8899 §5.1.2: MAX_PROBES, probes of one size sent without an acknowledgement.
    static let maxProbes = 3
    /// The search stops when the confirmed and the failed size are this close: one more step
    /// would gain at most this many bytes per packet, for three more lost probes.
    static let searchGranularity = 16
    /// Loss events of packets above the base size, without a sign that such packets still get
    /// through, that declare a black hole.
    static let blackHoleThreshold = 3

    enum Phase: Equatable {
        /// Not started: the path is not validated yet, or the handshake not confirmed.
        case disabled
        /// RFC 8899 §5.2 SEARCHING.
        case searching
        /// RFC 8899 §5.2 SEARCH_COMPLETE: no probes until `raiseAt`.
        case searchComplete
    }

    struct Probe: Equatable {
        var packetNumber: UInt64
        var size: Int
        /// A black hole was declared while it was in flight: its fate says nothing any more.
        var stale = false
    }

    private(set) var phase = Phase.disabled
    /// The PLPMTU: the largest UDP payload confirmed on this path (RFC 8899 §2).
    private(set) var current: Int
    /// MAX_PLPMTU (RFC 8899 §5.1.2): our maxUDPPayloadSize, capped by the peer's max_udp_payload_size.
    private(set) var maximum: Int
    /// The smallest size that failed MAX_PROBES times in this search (nil: none did).
    private var failedSize: Int?
    /// RFC 8899 §5.1.3: PROBE_COUNT, of the size `nextProbeSize` returns.
    private var probeCount = 0
    /// The probe in flight (one at a time).
    private(set) var probe: Probe?
    /// RFC 8899 §5.1.1 PROBE_TIMER of the probe in flight: it fails if neither acknowledged nor
    /// declared lost by then (a probe alone on an idle path has no later packet to be lost against).
    private(set) var probeDeadline: Timestamp?
    /// RFC 8899 §5.1.1 PMTU_RAISE_TIMER: when a completed search starts again upwards.
    private(set) var raiseAt: Timestamp?
    let raiseInterval: Duration
    // Black-hole detection.
    private var suspiciousLosses = 0
    private var suspicionSince = Timestamp.zero
    private var smallestSuspectSize = Int.max

    init(maximum: Int, raiseInterval: Duration) {
        self.maximum = maximum
        self.current = min(Self.basePLPMTU, maximum)
        self.raiseInterval = raiseInterval
    }

    var isSearching: Bool { phase == .searching }

    /// RFC 8899 §5.2: DISABLED → searching once the PL has connectivity (a validated path).
    mutating func start(now: Timestamp) {
        guard phase == .disabled else { return }
        beginSearch(now: now)
    }

    /// The size to probe now, or nil (not searching, or a probe is in flight).
    var nextProbeSize: Int? {
        guard phase == .searching, probe == nil else { return nil }
        // Largest size first: one round trip on the common path that carries it.
        guard let failed = failedSize else { return maximum }
        return (current + failed) / 2
    }

    mutating func onProbeSent(packetNumber: UInt64, size: Int, deadline: Timestamp) {
        probe = Probe(packetNumber: packetNumber, size: size)
        probeDeadline = deadline
    }

    /// The probe `packetNumber` was acknowledged. Returns the new PLPMTU when it grew.
    mutating func onProbeAcknowledged(packetNumber: UInt64, timeSent: Timestamp, now: Timestamp) -> Int? {
        guard let p = probe, p.packetNumber == packetNumber else { return nil }
        probe = nil
        probeDeadline = nil
        if p.stale { return nil }
        // RFC 8899 §5.2 SEARCHING: an acknowledged probe sets the PLPMTU to the probed size and
        // resets PROBE_COUNT.
        probeCount = 0
        let grew = p.size > current
        if grew { current = p.size }
        // It also shows packets of that size get through: no black hole below it.
        onPacketAcknowledged(size: p.size, timeSent: timeSent)
        completeIfDone(now: now)
        return grew ? current : nil
    }

    /// The probe `packetNumber` was declared lost, or its PROBE_TIMER expired.
    mutating func onProbeLost(packetNumber: UInt64, now: Timestamp) {
        guard let p = probe, p.packetNumber == packetNumber else { return }
        probe = nil
        probeDeadline = nil
        if p.stale || phase != .searching { return }
        probeCount += 1
        // RFC 8899 §5.1.2/§5.3.1: MAX_PROBES failures of one size: it does not fit; the search
        // goes on below it.
        if probeCount >= Self.maxProbes {
            probeCount = 0
            failedSize = min(failedSize ?? Int.max, p.size)
            completeIfDone(now: now)
        }
    }

    /// A packet that is not a probe was acknowledged (black-hole evidence, see `onSuspiciousLoss`).
    mutating func onPacketAcknowledged(size: Int, timeSent: Timestamp) {
        guard suspiciousLosses > 0, size >= smallestSuspectSize, timeSent >= suspicionSince else { return }
        suspiciousLosses = 0
        smallestSuspectSize = Int.max
    }

    /// One loss event (the packets one ACK or timer declared lost) included packets larger than
    /// the base size that were not probes: `smallest` is the smallest of them, `earliest` the
    /// oldest send time. Returns true when that makes a black hole (RFC 8899 §4.3): such losses
    /// `blackHoleThreshold` times in a row while no packet at least as large, sent since the
    /// first of them, was acknowledged. QUIC declares a loss only when a later packet is
    /// acknowledged, so each of these events also says a later packet got through; when every
    /// later packet that got through is smaller, the path has stopped carrying the large ones.
    /// Congestion losses do not look like this: large packets sent around them keep arriving.
    mutating func onSuspiciousLoss(smallest: Int, earliest: Timestamp) -> Bool {
        guard phase != .disabled, current > Self.basePLPMTU else { return false }
        if suspiciousLosses == 0 { suspicionSince = earliest }
        suspiciousLosses += 1
        smallestSuspectSize = min(smallestSuspectSize, smallest)
        return suspiciousLosses >= Self.blackHoleThreshold
    }

    /// RFC 8899 §4.3/§5.2: a black hole: back to BASE_PLPMTU and search again below the size
    /// that stopped working.
    mutating func onBlackHole(now: Timestamp) {
        let failing = current
        current = min(Self.basePLPMTU, maximum)
        beginSearch(now: now)
        failedSize = failing
        if probe != nil { probe!.stale = true }
        completeIfDone(now: now)
    }

    /// The local network stack refused a datagram of `size` bytes on this path: larger than the
    /// interface's MTU (EMSGSIZE). That is certain, not a guess from losses: the size failed
    /// (no more probes at or above it in this search) and, when the path's packets are that
    /// large, it is a black hole at once. Returns true when the PLPMTU fell back to the base.
    mutating func onLocalRefusal(size: Int, now: Timestamp) -> Bool {
        guard phase != .disabled, size > Self.basePLPMTU else { return false }
        if let p = probe, p.size >= size {
            // The probe never left: it fails now, not after its timer.
            probe = nil
            probeDeadline = nil
        }
        if current >= size {
            current = min(Self.basePLPMTU, maximum)
            beginSearch(now: now)
            failedSize = size
            completeIfDone(now: now)
            return true
        }
        if phase == .searching {
            probeCount = 0
            failedSize = min(failedSize ?? Int.max, size)
            completeIfDone(now: now)
        }
        return false
    }

    /// The PMTU_RAISE_TIMER expired: search upwards again (RFC 8899 §5.2 SEARCH_COMPLETE →
    /// SEARCHING), forgetting the sizes that failed before.
    mutating func onRaiseTimer(now: Timestamp) {
        guard phase == .searchComplete, let t = raiseAt, now >= t else { return }
        beginSearch(now: now)
    }

    /// MAX_PLPMTU changed (the peer's max_udp_payload_size arrived). Returns the new PLPMTU when
    /// it had to shrink.
    mutating func setMaximum(_ size: Int, now: Timestamp) -> Int? {
        maximum = size
        if let f = failedSize, f > maximum { failedSize = nil }
        guard current > maximum else {
            if phase != .disabled { completeIfDone(now: now) }
            return nil
        }
        current = maximum
        if phase != .disabled { completeIfDone(now: now) }
        return current
    }

    /// The path now leads elsewhere (the peer's address changed): what was learnt says nothing
    /// about it (RFC 8899 §3: robust to path changes). Back to the base size, search again.
    mutating func restart(now: Timestamp) {
        current = min(Self.basePLPMTU, maximum)
        if probe != nil { probe!.stale = true }
        if phase != .disabled { beginSearch(now: now) }
    }

    private mutating func beginSearch(now: Timestamp) {
        phase = .searching
        failedSize = nil
        probeCount = 0
        raiseAt = nil
        suspiciousLosses = 0
        smallestSuspectSize = Int.max
        completeIfDone(now: now)
    }

    private mutating func completeIfDone(now: Timestamp) {
        guard phase == .searching else { return }
        let done = current >= maximum || (failedSize.map { $0 - current <= Self.searchGranularity } ?? false)
        guard done else { return }
        phase = .searchComplete
        raiseAt = current >= maximum ? nil : now + raiseInterval
    }
}
