// Explicit Congestion Notification (RFC 9000 §13.4, RFC 9002 §7.1): the sender marks packets
// ECT(0), the receiver counts the codepoints it sees per packet number space and echoes them in
// ACK_ECN / PATH_ACK_ECN, and the sender validates the counts (§13.4.2) before trusting them: a
// path whose network or peer bleaches, re-marks or drops ECN-marked packets falls back to no ECN.
import Congestion

/// The two ECN bits of the IP header (RFC 3168 §5).
public enum ECNCodepoint: UInt8, Sendable {
    case notECT = 0b00
    case ect1 = 0b01
    case ect0 = 0b10
    case ce = 0b11
}

/// Per-path ECN validation state (RFC 9000 §13.4.2; the testing/unknown/capable/failed states
/// follow Appendix A.4 of RFC 9000).
struct ECNValidation {
    enum State: String { case testing, unknown, capable, failed, disabled }
    /// RFC 9000 §13.4.2: test with the first packets; 10 is the number the RFC suggests.
    static let testingPackets = 10

    var state: State
    private var testingSent = 0
    private var testingLost = 0
    /// The largest counts the peer reported for this path's space (counts never decrease).
    private(set) var peerCounts = ECNCounts()
    /// CE marks the peer reported: the statistic the daemon shows.
    private(set) var congestionExperienced: UInt64 = 0

    init(enabled: Bool) { state = enabled ? .testing : .disabled }

    /// Whether the next packet on the path leaves ECT(0)-marked.
    var marksOutgoing: Bool { state == .testing || state == .capable }

    /// Whether ACKs still need checking (not failed, not disabled).
    var isValidating: Bool { state != .failed && state != .disabled }

    mutating func onMarkedPacketSent() {
        guard state == .testing else { return }
        testingSent += 1
        if testingSent >= ECNValidation.testingPackets { state = .unknown }
    }

    /// RFC 9000 §13.4.2.1: if every testing packet is lost, the path probably drops ECT packets.
    mutating func onMarkedPacketLost() {
        guard state == .testing || state == .unknown else { return }
        testingLost += 1
        if testingLost >= ECNValidation.testingPackets { state = .failed }
    }

    /// Checks an ACK's counts against the marked packets it newly acknowledges. Returns true when
    /// the CE count grew on a path whose ECN is trusted (a congestion signal, RFC 9002 §7.1).
    mutating func onAck(_ counts: ECNCounts?, newlyAckedMarked: Int) -> Bool {
        guard isValidating else { return false }
        guard let counts else {
            // RFC 9000 §13.4.2.1: marked packets acknowledged without ECN counts: validation fails.
            if newlyAckedMarked > 0 { state = .failed }
            return false
        }
        // Counts that go down, or ECT(1) we never sent, mean re-marking (RFC 9000 §13.4.2.1).
        if counts.ect0 < peerCounts.ect0 || counts.ce < peerCounts.ce || counts.ect1 < peerCounts.ect1 || counts.ect1 > 0 {
            state = .failed
            return false
        }
        let newECT0 = counts.ect0 - peerCounts.ect0
        let newCE = counts.ce - peerCounts.ce
        // RFC 9000 §13.4.2.1: the ECT(0) and CE increases must cover the newly acknowledged
        // ECT(0)-marked packets (ACK reordering can only make the sum larger).
        if newECT0 + newCE < UInt64(newlyAckedMarked) {
            state = .failed
            return false
        }
        peerCounts = counts
        if newlyAckedMarked > 0 && (state == .testing || state == .unknown) { state = .capable }
        if newCE > 0 { congestionExperienced += newCE }
        return newCE > 0
    }
}

extension ECNCounts {
    /// Counts one received packet's codepoint (RFC 9000 §13.4.1).
    mutating func count(_ codepoint: ECNCodepoint) {
        switch codepoint {
        case .notECT: break
        case .ect0: ect0 += 1
        case .ect1: ect1 += 1
        case .ce: ce += 1
        }
    }
}
