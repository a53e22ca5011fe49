// The tunnel engine's settings, with the defaults the simulator's targets were met with and the
// daemon uses unless /etc/tquic.conf says otherwise. Each default says why it is what it is.
import Bonding
import Congestion

public struct TunnelConfiguration: Sendable {
    /// How packets are spread over the paths (`aggregate`: fill every path, interactive flows on
    /// the fastest one).
    public var scheduler: SchedulerKind = .default

    /// The receiver's reorder buffer. The VPS's RTT samples do not see queueing on the router's
    /// uplinks but late arrivals do, so the hold time learns from them; a packet that missed its
    /// lane's hold still goes to the LAN, out of order, because inner transports (TCP with
    /// SACK/DSACK, QUIC) cope with reordering better than with a loss.
    public var reorder: ReorderBuffer.Configuration = TunnelConfiguration.defaultReorder

    public static var defaultReorder: ReorderBuffer.Configuration {
        var c = ReorderBuffer.Configuration()
        c.learnsFromLateArrivals = true
        c.lateArrivals = .deliver
        return c
    }

    /// The reorder buffer's hold time counts only the paths that delivered a tunnel frame within
    /// this long (TunnelReceiver): a path the sender leaves idle cannot be what a gap waits for.
    public var holdPathsActiveWithin: Duration = .seconds(1)

    /// A path with this many probe timeouts in a row is declared dead, abandoned, and what it
    /// still owed is reinjected (two: one PTO can be a burst loss; two on a 40 ms path is ~0.5 s).
    public var deadPathProbeTimeouts = 2
    /// How often a dead link is tried again (it is validated before it carries anything).
    public var revivalInterval: Duration = .seconds(1)
    /// Datagrams a path may hold queued inside QUIC (waiting for its pacer) before the scheduler
    /// sees it as full: more only builds a queue inside the sender.
    public var maxQueuedDatagramsPerPath = 16
    /// A path may queue more when its pacer and window let more leave at once: what one wake-up
    /// hands a path is what its next sendmmsg carries, and a burst the pacer allows anyway should
    /// not be cut into sends of 16 (the benchmark's 2.5 Gbit/s path sent 11.7 datagrams per GSO
    /// message). At most one UDP GSO send's 64. A slow path's allowance is its 10-packet burst,
    /// so it keeps 16. (Allowing 1 ms of the delivery rate instead cut the gigabit lab profile
    /// by 6 % and raised its VoIP p99 from 3 to 20 ms: the rate estimate grew with the bursts.)
    public static let maxQueuedDatagramsForGSO = 64

    /// How many datagrams a path may hold queued when it may send `allowance` bytes at once.
    public func queuedDatagramLimit(sendAllowance allowance: Int) -> Int {
        let perDatagram = framedWireBytes(inner: nominalInnerPacketBytes)
        let forAllowance = max(allowance, 0) / perDatagram
        guard forAllowance > maxQueuedDatagramsPerPath else { return maxQueuedDatagramsPerPath }
        return min(forAllowance, max(maxQueuedDatagramsPerPath, Self.maxQueuedDatagramsForGSO))
    }

    /// Bytes a tunnel packet adds on the wire besides its tunnel frame (QUIC short header, AEAD
    /// tag, DATAGRAM frame header, UDP and IP): what counts against a path's window.
    public var wireOverhead = 40
    /// The inner packet size the queued-datagram estimate assumes (an MTU-sized LAN packet).
    public var nominalInnerPacketBytes = 1200
    /// Inner packets read but not yet handed to a path, per traffic class; beyond, new ones are
    /// dropped and counted (a TUN queue that long is the LAN sending faster than every WAN).
    public var pendingPacketLimit = 64
    /// Active queue management of the bulk queue (RFC 8289 CoDel), nil: none (tail drop at
    /// `pendingPacketLimit`). It matters where packets are pushed in (the VPS) or a source is
    /// drained eagerly (the router's TUN): there the bulk queue may hold up to
    /// `managedBulkPacketLimit` packets and CoDel keeps its delay near its 5 ms target, so the
    /// LAN's TCP backs off before a standing queue builds in front of the pings and calls.
    public var bulkQueueManagement: CoDel.Parameters? = CoDel.Parameters()
    /// The bulk queue's hard limit under CoDel: its sojourn limit, not this, is what should bind.
    /// In front of a satellite the queue may stand at its allowance (`maxQueueingAllowance`):
    /// 300 ms at 100 Mbit/s are ~2600 packets; 8192 are ~50 ms at 2 Gbit/s.
    public var managedBulkPacketLimit = 8192
    /// The most the bulk queue's CoDel target grows for paths of unequal delay (CoDel.shouldDrop's
    /// allowance): bulk waits for the fast path up to the slow path's extra one-way delay.
    public var maxQueueingAllowance: Duration = .milliseconds(400)
    /// Tunnel packets handed out per wake-up, so one call never runs unbounded.
    public var packetsPerWakeup = 256
    /// Buffers for tunnel frames kept until acknowledged (reinjection re-sends them as they are):
    /// at least what every path has in flight (a 600 ms satellite path at 100 Mbit/s holds
    /// ~6000 packets, with its queue twice that). Pages never touched are never committed, so a
    /// large pool costs address space, not memory.
    public var sendBufferCount = 32768
    /// Bytes per buffer: a tunnel frame (header + the largest inner packet a DATAGRAM carries).
    public var packetBufferSize = 2048
    /// The receiver's buffers: everything the reorder buffer may hold, plus one batch of arrivals.
    var receiveBufferCount: Int { reorder.capacity + reorder.readyReserve + 2048 }
    /// Lost tunnel packets are sent again (ARQ inside the tunnel), not only those of a failing
    /// path. In the simulator with a TCP-like inner flow: lte-jitter 33 → 86 % of the summed
    /// rates, equal 61 → 92 %, fibre-satellite 59 → 85 %. The inner flows' congestion signal is
    /// then CoDel's at the entry (`bulkQueueManagement`), not the WANs' losses.
    public var reinjectsLosses = true
    /// With `reinjectsLosses`, the reorder buffer holds a gap at least as long as its repair takes
    /// to arrive (the fastest carrying path's round trip, TunnelReceiver), but never longer than this.
    public var maxRepairHold: Duration = .milliseconds(100)
    /// After a path fails, the surviving paths keep this share of their window for interactive
    /// packets, for `failoverReserveRounds` of their round trips: reinjections and bulk would fill
    /// a cold window (a satellite that carried almost nothing) in one burst, and a ping or a call
    /// would wait a whole round trip for room while its queue overflowed. Only for a while: a
    /// window that bulk never fills looks application-limited to its congestion controller
    /// (RFC 9438 §5.8, RFC 7661), which then stops growing it.
    public var failoverInteractiveReserve = 0.5
    public var failoverReserveRounds: UInt64 = 3
    /// Reinjected packets older than this are not sent again: the receiver's lane has moved on.
    public var reinjectionMaxAge: Duration = .seconds(2)
    /// FlowClassifier: a lane under this rate (bytes/s) with bursts up to `interactiveBurst` is
    /// interactive (VoIP, games, DNS) and goes on the fastest path.
    public var interactiveRate: Double = 125_000
    public var interactiveBurst = 16_000
    /// Per-connection seed of the flow → lane hash (from the connection's injected randomness).
    public var flowHashSeed: UInt64 = 0
    /// Reinjection ledger sizes: a path's ring must hold all it has in flight, or what it owes
    /// when it dies can no longer be reinjected.
    public var ledger: ReinjectionLedger.Configuration = {
        var c = ReinjectionLedger.Configuration()
        c.capacityPerPath = 16384
        return c
    }()

    public init() {}

    /// What one inner packet of `innerBytes` costs on a path.
    func framedWireBytes(inner innerBytes: Int) -> Int { innerBytes + TunnelFrame.headerLength + wireOverhead }
}
