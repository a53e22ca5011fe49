// A network path (RFC 9000 §9): the peer address we send to, its RTT and congestion controller,
// and its validation state (anti-amplification before validation, RFC 9000 §8).
import Congestion

final class Path {
    var remote: SocketAddress
    var rtt = RTTEstimator()
    let congestion: CongestionController
    var bytesInFlight = 0
    /// RFC 9000 §8.1: the peer's address is validated (no amplification limit).
    var addressValidated: Bool
    var bytesReceived = 0
    var bytesSent = 0
    /// Outstanding PATH_CHALLENGE data we sent on this path and when.
    var challenge: UInt64?
    var challengeSentAt: Timestamp?
    var challengeNeedsSending = false
    var challengeAttempts = 0
    var maxDatagramSize: Int
    var pacer: Pacer
    /// Set when the pacer holds back data: the next time `poll` can send it.
    var pacingDeadline: Timestamp?
    /// RFC 9002 §6.2: consecutive PTO expirations.
    var ptoCount = 0
    // Statistics the daemon reads.
    var packetsSent: UInt64 = 0
    var packetsLost: UInt64 = 0
    var packetsReceived: UInt64 = 0
    var bytesAcked: UInt64 = 0

    init(remote: SocketAddress, addressValidated: Bool, maxDatagramSize: Int, congestion: CongestionController) {
        self.remote = remote
        self.addressValidated = addressValidated
        self.maxDatagramSize = maxDatagramSize
        self.congestion = congestion
        self.pacer = Pacer(maxDatagramSize: maxDatagramSize)
    }

    /// RFC 9000 §8: before validation a server sends at most 3x what it received.
    var amplificationBudget: Int {
        addressValidated ? Int.max : max(0, 3 * bytesReceived - bytesSent)
    }
}

/// Per-path statistics for the owner (and later the daemon's status output).
public struct PathStatistics: Sendable {
    public var remote: SocketAddress
    public var smoothedRTT: Duration
    public var minRTT: Duration
    public var latestRTT: Duration
    public var congestionWindow: Int
    public var bytesInFlight: Int
    public var packetsSent: UInt64
    public var packetsLost: UInt64
    public var packetsReceived: UInt64
    public var bytesAcked: UInt64
    public var maxDatagramSize: Int
    public var validated: Bool
}
