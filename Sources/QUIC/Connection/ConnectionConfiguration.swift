// Settings of one QUIC connection: our transport parameters, limits and pluggable parts
// (congestion controller, connection ID generator, qlog). The daemon builds one per role.
import Congestion

/// Generates the connection IDs we issue. A load balancer may need a server ID encoded in them
/// (draft-ietf-quic-load-balancers), so this is pluggable.
public protocol ConnectionIDGenerator: AnyObject {
    var length: Int { get }
    func generate(random: RandomSource) -> ConnectionID
}

/// Random connection IDs of a fixed length.
public final class RandomConnectionIDGenerator: ConnectionIDGenerator {
    public let length: Int
    public init(length: Int = 8) {
        precondition(length >= 4 && length <= 20)
        self.length = length
    }
    public func generate(random: RandomSource) -> ConnectionID { ConnectionID(random.bytes(length)) }
}

public struct ConnectionConfiguration {
    public var tls: TLSContext
    public var maxIdleTimeout: Duration = .seconds(30)
    public var initialMaxData: UInt64 = 16 << 20
    public var initialMaxStreamData: UInt64 = 6 << 20
    public var initialMaxStreamsBidi: UInt64 = 256
    public var initialMaxStreamsUni: UInt64 = 16
    /// RFC 9221: nil disables DATAGRAM support.
    public var maxDatagramFrameSize: UInt64? = 65535
    public var activeConnectionIDLimit: UInt64 = 4
    /// The largest UDP payload we send (and advertise we accept: max_udp_payload_size).
    /// 1350 fits common tunnels and PPPoE links without path MTU discovery; with it
    /// (`pmtuDiscovery`) this is the most a path probes for (1472 for a 1500-byte IPv4 link).
    public var maxUDPPayloadSize: Int = 1350
    /// Path MTU discovery on every path (DPLPMTUD, RFC 8899 with RFC 9000 §14.3's PING + PADDING
    /// probes): a path starts at 1200 bytes and probes its way up to `maxUDPPayloadSize` (capped
    /// by the peer's max_udp_payload_size), falls back to 1200 when full-size packets stop getting
    /// through, and reports changes as `ConnectionEvent.pathMTUChanged`. Off: every path sends
    /// datagrams of up to `maxUDPPayloadSize` from the start, as without it.
    public var pmtuDiscovery = false
    /// RFC 8899 §5.1.1 PMTU_RAISE_TIMER: how long a path keeps a completed search's size before
    /// probing for a larger one again.
    public var pmtuRaiseInterval: Duration = .seconds(600)
    /// RFC 9000 §10.1.2: when set, every active path on which nothing ack-eliciting was sent for
    /// this long sends a PING, so each WAN path's NAT binding stays open and the idle timeout
    /// does not expire while the peer lives. At most half the idle timeout is used (one lost
    /// PING must not end the connection). nil: no keep-alives.
    public var keepAliveInterval: Duration? = nil
    public var ackDelayExponent: UInt64 = 3
    public var maxAckDelay: Duration = .milliseconds(25)
    public var disableActiveMigration = false
    /// draft-ietf-quic-multipath: the largest path ID we allow (initial_max_path_id); nil turns
    /// the extension off. Path IDs start at 0 (the initial path).
    public var maxPathID: UInt32? = nil
    public var connectionIDGenerator: ConnectionIDGenerator = RandomConnectionIDGenerator(length: 8)
    /// Each path's congestion controller unless the path picks its own (`openPath(congestion:)`,
    /// `setCongestionControl`).
    public var congestion: CongestionAlgorithm = .newreno
    /// Coupled increase across the connection's paths (off: the paths are taken to be disjoint).
    public var coupling: CouplingAlgorithm = .none
    /// Mark packets ECT(0) and react to CE (RFC 9000 §13.4); a path whose ECN fails validation
    /// goes on without it.
    public var ecn = true
    /// Key for stateless reset tokens (RFC 9000 §10.3.2); shared by an endpoint's connections.
    public var statelessResetKey: [UInt8] = [UInt8](repeating: 0x5a, count: 32)
    /// Optional qlog event sink.
    public var qlog: QlogSink? = nil
    /// Maximum datagrams queued for sending before the oldest are dropped (RFC 9221 §5: unreliable).
    public var datagramSendQueueLimit = 1024
    /// Slots of the zero-copy datagram send (`sendDatagram(onPath:tag:_:)`), each
    /// `maxUDPPayloadSize` bytes, allocated on first use: how many such datagrams may wait.
    public var datagramSlotCount = 256
    /// Maximum received datagrams buffered for the application before the oldest are dropped.
    public var datagramReceiveQueueLimit = 4096

    public init(tls: TLSContext) { self.tls = tls }
}
