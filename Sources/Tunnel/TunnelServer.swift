// The VPS side, sans-I/O: one QUIC server endpoint, many routers (tenants), one tunnel engine per
// tenant's connection. What tquicd runs with role = vps, and what tests run in memory.
//
//   in:  UDP datagram → `receive` → Endpoint → the tenant's connection → its engine's receiver
//        → `process` → inner-source check against the tenant's prefixes → `deliver` (the TUN)
//   out: TUN packet → `send` → tenant by destination (longest prefix) → that tenant's engine
//        → `poll` → UDP datagram
//
// Isolation: a connection becomes a tenant's only once TLS has verified the router's key and the
// key is in the table (TLS already refused unknown keys; a reload may have removed one since);
// each tenant's packets are checked against its own prefixes only, and a packet from the TUN goes
// to the one tenant owning its destination. A second connection with the same key replaces the
// first (a router that rebooted).
import Bonding
import Congestion
import QUIC

public final class TunnelServer {
    public struct TenantStatistics: Sendable, Equatable {
        public var connectionsAccepted: UInt64 = 0
        /// Older connections of the tenant closed because a new one came (a rebooted router).
        public var connectionsReplaced: UInt64 = 0
        /// Inner packets from the tenant handed to the TUN, and their bytes.
        public var packetsDelivered: UInt64 = 0
        public var bytesDelivered: UInt64 = 0
        /// Inner packets for the tenant handed to its engine, and their bytes.
        public var packetsSent: UInt64 = 0
        public var bytesSent: UInt64 = 0
        /// From the tenant with an inner source outside its prefixes (or not IP at all).
        public var droppedSourceNotAllowed: UInt64 = 0
        /// For the tenant while it has no connection, or its engine's queue was full.
        public var droppedNotConnected: UInt64 = 0
        public var droppedQueueFull: UInt64 = 0
        /// Larger than the tenant's paths carry (answered with ICMP "too big").
        public var droppedTooBig: UInt64 = 0
        public init() {}
    }

    public struct Statistics: Sendable, Equatable {
        /// Handshakes that completed with a key no tenant has (removed by a reload meanwhile).
        public var connectionsRefused: UInt64 = 0
        /// TUN packets whose destination is no tenant's, or that are not IP.
        public var droppedNoTenant: UInt64 = 0
        public init() {}
    }

    /// One tenant's live connection.
    public final class Session {
        public let connection: Connection
        public let engine: TunnelEngine
        /// `engine.innerPacketCapacity`, taken again when a path's MTU changed or after
        /// `capacityLifetime` (paths come and go): not walked over the paths per packet.
        private var capacity: Int?
        private var capacityTakenAt: Timestamp?
        private var capacityMTUChanges = 0
        static let capacityLifetime: Duration = .milliseconds(100)

        init(connection: Connection, engine: TunnelEngine) {
            self.connection = connection
            self.engine = engine
        }

        func innerPacketCapacity(now: Timestamp) -> Int? {
            if let t = capacityTakenAt, now < t + Session.capacityLifetime, capacityMTUChanges == engine.pathMTUChanges {
                return capacity
            }
            capacity = engine.innerPacketCapacity
            capacityTakenAt = now
            capacityMTUChanges = engine.pathMTUChanges
            return capacity
        }
    }

    public let endpoint: Endpoint
    public private(set) var configuration: TunnelConfiguration
    /// Congestion control for tenants' connections from their next path or connection on (nil:
    /// the endpoint's configuration).
    public private(set) var congestionOverride: CongestionAlgorithm?
    public private(set) var tenants: TenantTable
    /// By tenant index.
    public private(set) var sessions: [Session?]
    public private(set) var tenantStatistics: [TenantStatistics]
    public private(set) var statistics = Statistics()
    /// Accepted connections whose handshake has not finished.
    private var handshaking: [Connection] = []

    public init(endpoint: Endpoint, configuration: TunnelConfiguration, tenants: TenantTable) {
        self.endpoint = endpoint
        self.configuration = configuration
        self.tenants = tenants
        sessions = Array(repeating: nil, count: tenants.tenants.count)
        tenantStatistics = Array(repeating: TenantStatistics(), count: tenants.tenants.count)
    }

    /// A datagram from the listening socket (opened in place: `datagram` is scratch afterwards).
    public func receive(datagram: inout [UInt8], from remote: SocketAddress, now: Timestamp, ecn: ECNCodepoint = .notECT) {
        endpoint.receive(datagram: &datagram, from: remote, now: now, ecn: ecn)
        let fresh = endpoint.acceptedConnections()
        if !fresh.isEmpty { handshaking += fresh }
    }

    public enum SendResult: Equatable, Sendable {
        case sent
        /// Dropped and counted (no tenant, not connected, queue full).
        case dropped
        /// Larger than the tenant's paths carry now: answer with ICMP "too big" for this MTU.
        case tooBig(mtu: Int)
    }

    /// An inner packet read from the TUN: to the tenant owning its destination.
    @discardableResult
    public func send(_ packet: UnsafeRawBufferPointer, now: Timestamp) -> SendResult {
        guard let dst = InnerPacketAddresses.destination(of: packet), let i = tenants.index(forDestination: dst) else {
            statistics.droppedNoTenant += 1
            return .dropped
        }
        guard let s = sessions[i], !s.connection.isClosed else {
            tenantStatistics[i].droppedNotConnected += 1
            return .dropped
        }
        // Each tenant's paths have their own MTUs; the shared TUN's is the largest any carries.
        if let capacity = s.innerPacketCapacity(now: now), packet.count > capacity {
            tenantStatistics[i].droppedTooBig += 1
            // Answer only once the tenant's paths know their MTUs (TunnelEngine says why).
            return s.engine.answersTooBig ? .tooBig(mtu: capacity) : .dropped
        }
        guard s.engine.send(packet, now: now) else {
            tenantStatistics[i].droppedQueueFull += 1
            return .dropped
        }
        tenantStatistics[i].packetsSent += 1
        tenantStatistics[i].bytesSent += UInt64(packet.count)
        return .sent
    }

    /// After every batch of input and at every timer: binds finished handshakes to tenants, runs
    /// each tenant's engine and delivers its inner packets that pass the source check:
    /// `deliver(packet, tenantIndex)`.
    public func process(now: Timestamp, deliver: (UnsafeRawBufferPointer, Int) -> Void) {
        if !handshaking.isEmpty { bindHandshakes(now: now) }
        for i in sessions.indices {
            guard let s = sessions[i] else { continue }
            if s.connection.isClosed {
                sessions[i] = nil
                continue
            }
            let table = tenants
            var st = tenantStatistics[i]
            s.engine.process(now: now, source: nil) { packet, _ in
                // WireGuard's allowed-IPs rule: a tenant speaks only for its own addresses.
                guard let src = InnerPacketAddresses.source(of: packet), table.allows(i, source: src) else {
                    st.droppedSourceNotAllowed += 1
                    return
                }
                st.packetsDelivered += 1
                st.bytesDelivered += UInt64(packet.count)
                deliver(packet, i)
            }
            tenantStatistics[i] = st
        }
    }

    private func bindHandshakes(now: Timestamp) {
        var still: [Connection] = []
        for c in handshaking {
            if c.isClosed { continue }
            guard c.handshakeComplete, let pin = c.peerPublicKeySHA256 else {
                still.append(c)
                continue
            }
            guard let i = tenants.index(forPin: pin) else {
                statistics.connectionsRefused += 1
                c.close(errorCode: TunnelServer.notATenantError, reason: "not a tenant", now: now)
                continue
            }
            if let old = sessions[i], old.connection !== c {
                old.connection.close(errorCode: TunnelServer.replacedError, reason: "replaced by a newer connection", now: now)
                tenantStatistics[i].connectionsReplaced += 1
            }
            if let algorithm = congestionOverride { c.setCongestionControl(algorithm, coupling: c.coupling) }
            sessions[i] = Session(connection: c, engine: TunnelEngine(connection: c, configuration: configuration, links: nil))
            tenantStatistics[i].connectionsAccepted += 1
        }
        handshaking = still
    }

    /// Application error codes in CONNECTION_CLOSE (RFC 9000 §20.2: the application's space).
    public static let shutdownError: UInt64 = 0
    public static let notATenantError: UInt64 = 1
    public static let replacedError: UInt64 = 2

    /// The next datagram to send on the listening socket.
    public func poll(now: Timestamp) -> Transmit? { endpoint.poll(now: now) }

    public var nextTimeout: Timestamp? {
        var t = endpoint.nextTimeout
        for s in sessions {
            if let e = s?.engine.nextTimeout, t == nil || e < t! { t = e }
        }
        return t
    }

    public func handleTimeout(now: Timestamp) { endpoint.handleTimeout(now: now) }

    /// A reload: the new table. Sessions follow their tenant by key; a tenant no longer listed
    /// loses its connection (CONNECTION_CLOSE), a new one can connect at once.
    public func updateTenants(_ table: TenantTable, now: Timestamp) {
        var newSessions: [Session?] = Array(repeating: nil, count: table.tenants.count)
        var newStatistics = Array(repeating: TenantStatistics(), count: table.tenants.count)
        for (old, t) in tenants.tenants.enumerated() {
            if let j = table.index(forPin: t.pin) {
                newSessions[j] = sessions[old]
                newStatistics[j] = tenantStatistics[old]
            } else if let s = sessions[old] {
                s.connection.close(errorCode: TunnelServer.notATenantError, reason: "tenant removed", now: now)
            }
        }
        tenants = table
        sessions = newSessions
        tenantStatistics = newStatistics
    }

    /// Another scheduler for every tenant, now and for later connections.
    public func setScheduler(_ kind: SchedulerKind) {
        configuration.scheduler = kind
        for s in sessions { s?.engine.sender.setScheduler(kind) }
    }

    /// Another congestion controller on every tenant's paths, now and for later connections.
    public func setCongestionControl(_ algorithm: CongestionAlgorithm) {
        congestionOverride = algorithm
        for s in sessions { s?.connection.setCongestionControl(algorithm, coupling: s!.connection.coupling) }
    }

    /// SIGTERM: CONNECTION_CLOSE to every router (the caller then polls and sends what is queued).
    public func closeAll(now: Timestamp) {
        for s in sessions { s?.connection.close(errorCode: TunnelServer.shutdownError, reason: "server shutting down", now: now) }
        for c in handshaking { c.close(errorCode: TunnelServer.shutdownError, reason: "server shutting down", now: now) }
    }
}
