// `tquicctl ... --json`: the same figures as the human status, as JSON for scripts. Built from
// the connection's and the engine's own statistics at the moment of the request.
import Bonding
import Congestion
import Foundation

struct PathJSON: Codable {
    var interface: String?
    var pathID: UInt32?
    var state: String
    var up: Bool?
    var backup: Bool
    var dead: Bool?
    var remote: String?
    var rttMs: Double?
    var minRttMs: Double?
    var rttVarianceMs: Double?
    var congestionWindow: Int?
    var bytesInFlight: Int?
    var deliveryRateBitsPerSecond: Double?
    var lossRate: Double?
    var mtu: Int?
    var packetsSent: UInt64?
    var packetsLost: UInt64?
    var bytesSent: UInt64?
    var packetsReceived: UInt64?
    var pacingRateBitsPerSecond: Double?
    /// CE marks the peer reported on this path (RFC 9000 §13.4.1).
    var ecnCongestionExperienced: UInt64?
    var congestionControl: String?
}

struct TunnelCountersJSON: Codable {
    var innerPacketsSent: UInt64
    var innerBytesSent: UInt64
    var reinjected: UInt64
    var droppedQueueFull: UInt64
    /// Bulk packets the tunnel entry's CoDel dropped (RFC 8289).
    var droppedCoDel: UInt64
    var droppedTooLarge: UInt64
    /// Times a path was held to its measured rate by the sender's QueueGuard.
    var queueGuardHolds: UInt64?
    var delivered: UInt64
    var deliveredBytes: UInt64
    var receivedMalformed: UInt64
    /// The reorder buffer: packets held now, duplicates and late arrivals dropped, gaps given up,
    /// and how long released packets had waited (ReorderBuffer.HoldTimes).
    var reorderHeld: Int?
    var duplicatesDropped: UInt64?
    var lateDropped: UInt64?
    var gapsSkipped: UInt64?
    var reorderHold: HoldTimesJSON?
}

/// How long the reorder buffer held the packets it released, as Prometheus's cumulative buckets.
struct HoldTimesJSON: Codable {
    static let boundsSeconds = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]
    var boundsSeconds: [Double]
    /// Packets held at most each bound (the last: all of them).
    var cumulative: [UInt64]
    var count: UInt64
    var sumSeconds: Double
    var p50Ms: Double
    var p99Ms: Double

    init(_ h: LatencyHistogram) {
        boundsSeconds = HoldTimesJSON.boundsSeconds
        cumulative = HoldTimesJSON.boundsSeconds.map { h.cumulativeCount(atMost: Duration(nanoseconds: UInt64($0 * 1e9))) }
        count = h.count
        sumSeconds = h.sumSeconds
        p50Ms = h.percentile(0.5).milliseconds
        p99Ms = h.percentile(0.99).milliseconds
    }
}

struct RouterStatusJSON: Codable {
    var role = "router"
    var server: String
    var connected: Bool
    var scheduler: String
    var congestion: String
    var tunnelInterface: String
    var tunnelMTU: Int
    var connectionsOpened: UInt64
    var connectionsLost: UInt64
    var lastCloseReason: String?
    var paths: [PathJSON]
    var tunnel: TunnelCountersJSON?
    /// Key updates done on the current connection (RFC 9001 §6).
    var keyUpdates: Int?
    /// Seconds since tquicd started, when these figures were read (the dashboard's clock).
    var sampledAtSeconds: Double?
}

struct TenantJSON: Codable {
    var name: String
    var connected: Bool
    var remote: String?
    var paths: [PathJSON]
    var packetsDelivered: UInt64
    var bytesDelivered: UInt64
    var packetsSent: UInt64
    var bytesSent: UInt64
    var droppedSourceNotAllowed: UInt64
    var droppedNotConnected: UInt64
    var droppedQueueFull: UInt64
    var droppedCoDel: UInt64
    var droppedTooBig: UInt64
    /// Times one of the tenant's paths was held to its measured rate by the sender's QueueGuard.
    var queueGuardHolds: UInt64?
    var connectionsAccepted: UInt64
    var connectionsReplaced: UInt64
    var reorderHold: HoldTimesJSON?
    var keyUpdates: Int?
}

struct VPSStatusJSON: Codable {
    var role = "vps"
    var listen: [String]
    var scheduler: String
    var congestion: String
    var droppedNoTenant: UInt64
    var connectionsRefused: UInt64
    var droppedDatagrams: UInt64
    var tenants: [TenantJSON]
    var sampledAtSeconds: Double?
}

enum JSONText {
    static func encode<T: Encodable>(_ value: T) -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        guard let data = try? e.encode(value) else { return "{}\n" }
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}
