// A network path (RFC 9000 §9; draft-ietf-quic-multipath §3): the 4-tuple we send on, and
// everything that is per path: its application-data packet number space (one per path ID with
// multipath), RTT estimator, congestion controller, pacer, loss-detection timer, validation and
// anti-amplification state (RFC 9000 §8), its path MTU discovery (RFC 8899) and keep-alive time,
// and the statistics the daemon reads.
import Congestion

/// draft-ietf-quic-multipath §3: a path's lifecycle as this endpoint sees it.
public enum PathState: String, Sendable {
    /// Probing with PATH_CHALLENGE; only probing frames may be sent.
    case validating
    case active
    /// PATH_ABANDON sent or received; kept for 3 PTOs to absorb late packets.
    case abandoned
    /// Validation failed or the path was forgotten.
    case closed
}

final class Path {
    /// draft-ietf-quic-multipath §2: path ID (0 for the initial path).
    let id: UInt32
    var remote: SocketAddress
    /// The local address (and interface) this path sends from; nil = the owner's default socket.
    var local: SocketAddress?
    var interface: String?
    var state: PathState
    /// The 1-RTT packet number space of this path (RFC 9000 §12.3 for path 0; one per path with multipath).
    let space: PacketNumberSpace
    var rtt = RTTEstimator()
    /// Replaced when the owner selects another algorithm at runtime.
    var congestion: CongestionController
    /// The algorithm `congestion` runs (the path's own choice or the connection's default).
    var congestionAlgorithm: CongestionAlgorithm
    /// Delivery-rate samples for the controller (draft-cheng-iccrg-delivery-rate-estimation).
    var delivery = DeliveryRateEstimator()
    /// ECN marking and validation on this path (RFC 9000 §13.4).
    var ecn: ECNValidation
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
    /// PATH_RESPONSE data owed on this path (RFC 9000 §8.2.2: sent on the path the challenge came on).
    var responsesToSend: [UInt64] = []
    /// The largest UDP payload sent on this path (RFC 9000 §14.2's maximum datagram size): with
    /// path MTU discovery its PLPMTU, which `mtu` decides; PMTU probes alone are larger.
    var maxDatagramSize: Int
    /// DPLPMTUD on this path (RFC 8899 §5.2: one state machine per path); idle when disabled.
    var mtu: PathMTUDiscovery
    /// When an ack-eliciting packet other than a PMTU probe last left on this path (keep-alive,
    /// RFC 9000 §10.1.2).
    var lastAckElicitingSent: Timestamp?
    var pacer: Pacer
    /// Set when the pacer holds back data: the next time `poll` can send it.
    var pacingDeadline: Timestamp?
    /// Bytes per second the pacer lets out (RFC 9002 §7.7): the controller's rate, else from the
    /// window and the smoothed RTT.
    var pacingRate: Double {
        Pacer.rate(congestionWindow: congestion.congestionWindow, smoothedRTT: rtt.smoothed, controllerRate: congestion.pacingRate)
    }
    /// RFC 9002 §6.2: consecutive PTO expirations.
    var ptoCount = 0
    var lossDetectionDeadline: Timestamp?
    /// Local status (draft-ietf-quic-multipath §3.3): a backup path carries no data while an
    /// available one works. `peerBackup` is what the peer asked for its sending.
    var isBackup = false
    var peerBackup = false
    var statusSequence: UInt64 = 0
    var statusToSend = false
    var peerStatusSequence: UInt64?
    /// The peer's connection ID we send to on this path and its sequence number.
    var destinationCID: ConnectionID
    var destinationCIDSequence: UInt64
    var abandonToSend: UInt64?
    var abandonDeadline: Timestamp?
    /// First packet number sent with the current key phase (RFC 9001 §6.1, per path space).
    var keyPhaseStartPN: UInt64 = 0
    /// Lowest packet number received with the current read key phase on this path.
    var lowestPNInReadPhase: UInt64?
    /// Datagrams queued for this path specifically (the bonding scheduler's choice), and the
    /// urgent ones, which go before them (interactive traffic, not held behind paced bulk).
    var datagrams = DatagramQueue()
    var urgentDatagrams = DatagramQueue()
    var lastActivity: Timestamp?
    // Statistics the daemon reads.
    var packetsSent: UInt64 = 0
    var packetsLost: UInt64 = 0
    var packetsReceived: UInt64 = 0
    var bytesAcked: UInt64 = 0
    var bytesSentTotal: UInt64 = 0
    var pmtuProbesSent: UInt64 = 0
    var pmtuProbesLost: UInt64 = 0
    var pmtuBlackHoles: UInt64 = 0
    var keepAlivesSent: UInt64 = 0
    /// Delivery rate estimate (bytes/s): the per-ACK delivery-rate samples, smoothed
    /// (`Connection.updateDeliveryRate`).
    var deliveryRate: Double = 0

    init(
        id: UInt32, remote: SocketAddress, local: SocketAddress? = nil, interface: String? = nil, state: PathState,
        addressValidated: Bool, maxDatagramSize: Int, mtu: PathMTUDiscovery, congestion: CongestionController,
        congestionAlgorithm: CongestionAlgorithm, ecnEnabled: Bool, destinationCID: ConnectionID,
        destinationCIDSequence: UInt64 = 0
    ) {
        self.id = id
        self.remote = remote
        self.local = local
        self.interface = interface
        self.state = state
        self.space = PacketNumberSpace(id: .applicationData)
        self.addressValidated = addressValidated
        self.maxDatagramSize = maxDatagramSize
        self.mtu = mtu
        self.congestion = congestion
        self.congestionAlgorithm = congestionAlgorithm
        self.ecn = ECNValidation(enabled: ecnEnabled)
        self.pacer = Pacer(maxDatagramSize: maxDatagramSize)
        self.destinationCID = destinationCID
        self.destinationCIDSequence = destinationCIDSequence
    }

    /// RFC 9000 §8: before validation a server sends at most 3x what it received.
    var amplificationBudget: Int {
        addressValidated ? Int.max : max(0, 3 * bytesReceived - bytesSent)
    }

    var queuedDatagrams: Int { datagrams.count + urgentDatagrams.count }

    var isUsable: Bool { state == .active }

    func statistics() -> PathStatistics {
        PathStatistics(
            id: id, state: state, remote: remote, local: local, interface: interface, isBackup: isBackup,
            smoothedRTT: rtt.smoothed, minRTT: rtt.minimum, latestRTT: rtt.latest, rttVariation: rtt.variation,
            congestionWindow: congestion.congestionWindow, bytesInFlight: bytesInFlight,
            packetsSent: packetsSent, packetsLost: packetsLost, packetsReceived: packetsReceived,
            bytesAcked: bytesAcked, bytesSent: bytesSentTotal, deliveryRate: deliveryRate,
            lossRate: packetsSent == 0 ? 0 : Double(packetsLost) / Double(packetsSent),
            maxDatagramSize: maxDatagramSize, validated: addressValidated, queuedDatagrams: queuedDatagrams,
            nextSendTime: pacingDeadline, consecutiveProbeTimeouts: ptoCount,
            congestionControl: congestion.name,
            pacingRate: pacingRate,
            ecnState: ecn.state.rawValue, ecnCongestionExperienced: ecn.congestionExperienced,
            pmtuProbesSent: pmtuProbesSent, pmtuProbesLost: pmtuProbesLost,
            pmtuBlackHolesDetected: pmtuBlackHoles, pmtuSearchComplete: mtu.phase == .searchComplete,
            keepAlivesSent: keepAlivesSent)
    }
}

/// Per-path statistics for the owner (the daemon's status output, the bonding scheduler).
public struct PathStatistics: Sendable {
    public var id: UInt32
    public var state: PathState
    public var remote: SocketAddress
    public var local: SocketAddress?
    public var interface: String?
    public var isBackup: Bool
    public var smoothedRTT: Duration
    public var minRTT: Duration
    public var latestRTT: Duration
    public var rttVariation: Duration
    public var congestionWindow: Int
    public var bytesInFlight: Int
    public var packetsSent: UInt64
    public var packetsLost: UInt64
    public var packetsReceived: UInt64
    public var bytesAcked: UInt64
    public var bytesSent: UInt64
    /// Bytes per second.
    public var deliveryRate: Double
    public var lossRate: Double
    public var maxDatagramSize: Int
    public var validated: Bool
    public var queuedDatagrams: Int
    /// When the pacer allows the next packet (nil: now).
    public var nextSendTime: Timestamp?
    /// Probe timeouts in a row without an acknowledgement: a dead path shows here first.
    public var consecutiveProbeTimeouts: Int
    /// The controller's name ("cubic", "bbr", ...).
    public var congestionControl: String
    /// Bytes per second the pacer lets out.
    public var pacingRate: Double
    /// ECN validation state: testing, unknown, capable, failed or disabled (RFC 9000 §13.4.2).
    public var ecnState: String
    /// CE marks the peer reported on this path.
    public var ecnCongestionExperienced: UInt64
    /// Path MTU discovery (RFC 8899): PING + PADDING probes sent and lost (lost probes are no
    /// congestion signal), times full-size packets stopped getting through and the path fell
    /// back to 1200 bytes, and whether the search for this path's size has finished.
    public var pmtuProbesSent: UInt64
    public var pmtuProbesLost: UInt64
    public var pmtuBlackHolesDetected: UInt64
    public var pmtuSearchComplete: Bool
    /// PINGs sent because nothing ack-eliciting left the path for `keepAliveInterval`.
    public var keepAlivesSent: UInt64
}
