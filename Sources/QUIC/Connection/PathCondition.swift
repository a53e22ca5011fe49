// What a data plane reads about a path for every packet it schedules: numbers only. The full
// PathStatistics (addresses, the controller's name, the ECN state as text) is for status output;
// building it per packet cost the tunnel engine a fifth of its time in retains and releases.
import Congestion

public struct PathCondition: Sendable {
    public var state: PathState
    public var isBackup: Bool
    public var smoothedRTT: Duration
    public var minRTT: Duration
    public var rttVariation: Duration
    public var congestionWindow: Int
    public var bytesInFlight: Int
    /// Bytes per second (0: unknown).
    public var deliveryRate: Double
    public var lossRate: Double
    public var queuedDatagrams: Int
    /// When the pacer allows the next packet (nil: now).
    public var nextSendTime: Timestamp?
    /// Probe timeouts in a row without an acknowledgement.
    public var consecutiveProbeTimeouts: Int
    /// The largest UDP payload the path sends now (`Connection.pathMTU(_:)`): its discovered
    /// PLPMTU with path MTU discovery, `maxUDPPayloadSize` (capped by the peer) without.
    public var mtu: Int
    /// The path's MTU search has finished (or discovery is off): `mtu` is what it carries, not
    /// the 1200 bytes a search starts from (RFC 8899 §5.2 SEARCH_COMPLETE).
    public var mtuSettled: Bool
    /// Black holes found on the path (its MTU shrank and it fell back to 1200 to search again).
    public var mtuBlackHoles: UInt64
}

extension Connection {
    /// The condition of path `id` now, or nil when there is no such path.
    public func pathCondition(_ id: UInt32) -> PathCondition? {
        guard let p = paths[id] else { return nil }
        return PathCondition(
            state: p.state, isBackup: p.isBackup, smoothedRTT: p.rtt.smoothed, minRTT: p.rtt.minimum,
            rttVariation: p.rtt.variation, congestionWindow: p.congestion.congestionWindow,
            bytesInFlight: p.bytesInFlight, deliveryRate: p.deliveryRate,
            lossRate: p.packetsSent == 0 ? 0 : Double(p.packetsLost) / Double(p.packetsSent),
            queuedDatagrams: p.queuedDatagrams, nextSendTime: p.pacingDeadline,
            consecutiveProbeTimeouts: p.ptoCount, mtu: p.maxDatagramSize,
            mtuSettled: !config.pmtuDiscovery || p.mtu.phase == .searchComplete, mtuBlackHoles: p.pmtuBlackHoles)
    }

    /// Bytes path `id` may send at once now: its pacer's allowance within its congestion
    /// window's room (0 for no such path).
    public func sendAllowance(onPath id: UInt32, now: Timestamp) -> Int {
        guard let p = paths[id] else { return 0 }
        return min(p.pacer.allowance(rate: p.pacingRate, now: now), max(p.congestion.congestionWindow - p.bytesInFlight, 0))
    }
}
