// A server endpoint (sans-I/O): demultiplexes datagrams to connections by Destination Connection
// ID, creates connections for valid client Initials, and answers without state where RFC 9000
// says so: Version Negotiation (§6), Retry with address validation tokens (§8.1.2), and
// Stateless Reset (§10.3).
import Congestion

public final class Endpoint {
    public struct Configuration {
        public var connection: ConnectionConfiguration
        /// Send a Retry to every new client without a valid token (RFC 9000 §8.1.2).
        public var requireRetry = false
        /// Key sealing address validation tokens (16 bytes).
        public var tokenKey: [UInt8]
        public var retryTokenLifetime: Duration = .seconds(10)
        /// How long a NEW_TOKEN token (RFC 9000 §8.1.3) given after the handshake lets a returning
        /// client skip the Retry round trip (a router after a reboot or a WAN change); nil: none
        /// issued. Bound to the client's IP address, not its port.
        public var newTokenLifetime: Duration? = .seconds(24 * 3600)
        public var sendStatelessResets = true
        /// Makes a qlog sink for each new connection (given its original DCID), or nil.
        public var makeQlog: ((ConnectionID) -> QlogSink?)?
        public init(connection: ConnectionConfiguration, tokenKey: [UInt8]) {
            self.connection = connection
            self.tokenKey = tokenKey
        }
    }

    public let configuration: Configuration
    let random: RandomSource
    let tokens: AddressTokenProtector
    /// Connections by any connection ID that routes to them.
    private var routes: [ConnectionID: Connection] = [:] { didSet { lastRoute = nil } }
    /// The route the last datagram took, unretained: `routes` holds the connection, and any
    /// change to `routes` clears this. Datagrams come in runs for one connection, and this spares
    /// each one a hash lookup and a retain and release of the connection.
    private var lastRoute: (cid: ConnectionID, connection: Unmanaged<Connection>)?
    private var routedCIDs: [ObjectIdentifier: Set<ConnectionID>] = [:]
    /// The connection's `localCIDsVersion` when its routes were last synchronised.
    public private(set) var connections: [Connection] = []
    /// `connections` again, unretained, for the per-datagram `poll` and `nextTimeout`: calling
    /// into an element of `connections` costs a retain and a release (the call could change the
    /// array). `connections` holds each one; the two change together (`connectionsChanged`).
    private var unretainedConnections: [Unmanaged<Connection>] = []
    private var accepted: [Connection] = []
    private var statelessTransmits: [Transmit] = []
    private var pollCursor = 0

    public private(set) var droppedDatagrams: UInt64 = 0
    public private(set) var retriesSent: UInt64 = 0
    public private(set) var versionNegotiationsSent: UInt64 = 0
    public private(set) var statelessResetsSent: UInt64 = 0
    public private(set) var newTokensIssued: UInt64 = 0
    /// Initials whose NEW_TOKEN token let the client skip Retry, and tokens that failed (wrong
    /// address, expired, not ours): those clients go through Retry as if they had none.
    public private(set) var newTokensAccepted: UInt64 = 0
    public private(set) var tokensRejected: UInt64 = 0

    public init(configuration: Configuration, random: RandomSource) {
        self.configuration = configuration
        self.random = random
        self.tokens = AddressTokenProtector(key: configuration.tokenKey)
    }

    /// New connections since the last call.
    public func acceptedConnections() -> [Connection] {
        defer { accepted.removeAll() }
        return accepted
    }

    public func receive(datagram: [UInt8], from remote: SocketAddress, now: Timestamp, ecn: ECNCodepoint = .notECT) {
        var buffer = datagram
        receive(datagram: &buffer, from: remote, now: now, ecn: ecn)
    }

    /// As `receive(datagram:from:now:ecn:)`, but packets are opened in place in `datagram`, whose
    /// contents are undefined afterwards: a caller that reuses one receive buffer copies nothing.
    public func receive(datagram: inout [UInt8], from remote: SocketAddress, now: Timestamp, ecn: ECNCodepoint = .notECT) {
        let cidLength = configuration.connection.connectionIDGenerator.length
        guard let header = try? PacketHeader.parse(datagram, shortHeaderCIDLength: cidLength) else {
            droppedDatagrams += 1
            return
        }
        let route: Unmanaged<Connection>?
        if let last = lastRoute, last.cid == header.destinationConnectionID {
            route = last.connection
        } else if let conn = routes[header.destinationConnectionID] {
            route = .passUnretained(conn)
            lastRoute = (header.destinationConnectionID, route!)
        } else {
            route = nil
        }
        if let route {
            // `routes` keeps the connection alive through the call (only `handleTimeout` forgets one).
            route._withUnsafeGuaranteedRef { conn in
                // The header parsed here is the connection's first, if it reads short headers alike.
                let first = conn.sourceCID.length == cidLength ? header : nil
                conn.receive(datagram: &datagram, from: remote, now: now, ecn: ecn, firstHeader: first)
                syncRoutes(conn)
                issueNewTokenIfDue(conn, now: now)
            }
            return
        }
        guard header.isLongHeader else {
            sendStatelessReset(for: header.destinationConnectionID, triggerSize: datagram.count, to: remote)
            return
        }
        if header.version != QUICVersion.v1 {
            // RFC 9000 §6.1: answer an unknown version only for datagrams large enough to be an Initial.
            if datagram.count >= 1200 { sendVersionNegotiation(header, to: remote) } else { droppedDatagrams += 1 }
            return
        }
        // RFC 9000 §14.1: a server discards an Initial in a datagram smaller than 1200 bytes.
        guard header.type == .initial, datagram.count >= 1200 else {
            droppedDatagrams += 1
            return
        }
        // RFC 9000 §7.2: the client's first DCID is at least 8 bytes.
        guard header.destinationConnectionID.length >= 8 else {
            droppedDatagrams += 1
            return
        }
        var originalDCID = header.destinationConnectionID
        var retrySCID: ConnectionID?
        var validated = false
        if !header.token.isEmpty {
            let t = tokens.open(Array(header.token))
            switch t?.kind {
            case .retry?:
                // RFC 9000 §8.1.2: a Retry token is bound to the client's address and port, is
                // short-lived, and names the Retry's SCID the client now uses as DCID.
                if let t, t.clientAddress == remote, t.issuedAt <= now, now - t.issuedAt <= configuration.retryTokenLifetime,
                    t.retrySourceConnectionID == header.destinationConnectionID
                {
                    originalDCID = t.originalDestinationConnectionID
                    retrySCID = t.retrySourceConnectionID
                    validated = true
                } else if configuration.requireRetry {
                    // An invalid Retry token: RFC 9000 §8.1.2 lets the server drop the packet.
                    tokensRejected += 1
                    droppedDatagrams += 1
                    return
                }
            case .newToken?:
                // RFC 9000 §8.1.3: a NEW_TOKEN token is bound to the client's IP address (its
                // port changes between connections) and has a lifetime of its own.
                if let t, let lifetime = configuration.newTokenLifetime, t.clientAddress.ip == remote.ip,
                    t.issuedAt <= now, now - t.issuedAt <= lifetime
                {
                    validated = true
                    newTokensAccepted += 1
                } else {
                    tokensRejected += 1
                }
            case nil:
                // Not ours (or from before a key change): RFC 9000 §8.1.3 says to proceed as if
                // the client had no token, which means a Retry when one is required.
                tokensRejected += 1
            }
        }
        if configuration.requireRetry && !validated {
            sendRetry(header, to: remote, now: now)
            return
        }
        do {
            var connectionConfig = configuration.connection
            if let make = configuration.makeQlog { connectionConfig.qlog = make(originalDCID) }
            let conn = try Connection(
                serverWith: connectionConfig, clientInitial: header, remote: remote,
                random: random, now: now, originalDestinationCID: originalDCID,
                retrySourceCID: retrySCID, addressValidated: validated)
            connections.append(conn)
            connectionsChanged()
            accepted.append(conn)
            // Route the client's chosen DCID too: its Initial retransmissions still carry it.
            routes[header.destinationConnectionID] = conn
            routedCIDs[ObjectIdentifier(conn), default: []].insert(header.destinationConnectionID)
            syncRoutes(conn)
            conn.receive(datagram: &datagram, from: remote, now: now, ecn: ecn)
            syncRoutes(conn)
        } catch {
            droppedDatagrams += 1
        }
    }

    /// RFC 9000 §8.1.3: once the handshake is confirmed the server gives the client a token for
    /// its next connection (sent in a NEW_TOKEN frame, re-sent if lost).
    private func issueNewTokenIfDue(_ conn: Connection, now: Timestamp) {
        guard configuration.newTokenLifetime != nil, conn.newTokenIssued == nil, conn.handshakeConfirmed,
            conn.state == .established
        else { return }
        let token = tokens.seal(
            AddressToken(
                kind: .newToken, issuedAt: now, clientAddress: conn.remoteAddress,
                originalDestinationConnectionID: .empty, retrySourceConnectionID: .empty),
            random: random)
        conn.newTokenIssued = token
        conn.newTokenToSend = true
        newTokensIssued += 1
    }

    private func syncRoutes(_ conn: Connection) {
        let key = ObjectIdentifier(conn)
        guard conn.endpointRoutedCIDsVersion != conn.localCIDsVersion else { return }
        conn.endpointRoutedCIDsVersion = conn.localCIDsVersion
        var known = routedCIDs[key] ?? []
        for cid in conn.localConnectionIDs where !known.contains(cid) {
            routes[cid] = conn
            known.insert(cid)
        }
        routedCIDs[key] = known
    }

    private func forget(_ conn: Connection) {
        let key = ObjectIdentifier(conn)
        for cid in routedCIDs[key] ?? [] where routes[cid] === conn { routes[cid] = nil }
        routedCIDs[key] = nil
        conn.endpointRoutedCIDsVersion = nil
    }

    private func connectionsChanged() {
        unretainedConnections = connections.map { .passUnretained($0) }
    }

    public func poll(now: Timestamp) -> Transmit? {
        if !statelessTransmits.isEmpty { return statelessTransmits.removeFirst() }
        let count = unretainedConnections.count
        guard count > 0 else { return nil }
        for _ in 0..<count {
            pollCursor = pollCursor % count
            // `connections` keeps it alive: polling adds or removes no connection.
            let t = unretainedConnections[pollCursor]._withUnsafeGuaranteedRef { conn -> Transmit? in
                guard let t = conn.poll(now: now) else { return nil }
                syncRoutes(conn)
                return t
            }
            if let t { return t }
            pollCursor += 1
        }
        return nil
    }

    public var nextTimeout: Timestamp? {
        // `connections` keeps them alive (see `unretainedConnections`).
        if unretainedConnections.count == 1 { return unretainedConnections[0]._withUnsafeGuaranteedRef { $0.nextTimeout } }
        var earliest: Timestamp?
        for c in unretainedConnections {
            if let t = c._withUnsafeGuaranteedRef({ $0.nextTimeout }), earliest == nil || t < earliest! { earliest = t }
        }
        return earliest
    }

    public func handleTimeout(now: Timestamp) {
        for c in connections {
            if let t = c.nextTimeout, t <= now { c.handleTimeout(now: now) }
        }
        // Closed connections are dropped once the application has seen their final event.
        guard connections.contains(where: { $0.isClosed && !$0.hasPendingEvents }) else { return }
        for c in connections where c.isClosed && !c.hasPendingEvents { forget(c) }
        connections.removeAll { $0.isClosed && !$0.hasPendingEvents }
        connectionsChanged()
    }

    // MARK: - Stateless packets

    private func sendVersionNegotiation(_ header: PacketHeader, to remote: SocketAddress) {
        var w = ByteWriter(capacity: 64)
        // RFC 9000 §17.2.1: header form 1, the rest of the first byte arbitrary; version 0.
        w.writeUInt8(0x80 | UInt8(random.next(below: 128)))
        w.writeUInt32(0)
        w.writeUInt8(UInt8(header.sourceConnectionID.length))
        header.sourceConnectionID.write(to: &w)
        w.writeUInt8(UInt8(header.destinationConnectionID.length))
        header.destinationConnectionID.write(to: &w)
        w.writeUInt32(QUICVersion.v1)
        // A reserved version (RFC 9000 §15: 0x?a?a?a?a) exercises the client's handling.
        w.writeUInt32(0x1a2a_3a4a)
        statelessTransmits.append(Transmit(bytes: w.bytes, destination: remote))
        versionNegotiationsSent += 1
    }

    private func sendRetry(_ header: PacketHeader, to remote: SocketAddress, now: Timestamp) {
        let scid = configuration.connection.connectionIDGenerator.generate(random: random)
        let token = tokens.seal(
            AddressToken(
                kind: .retry, issuedAt: now, clientAddress: remote,
                originalDestinationConnectionID: header.destinationConnectionID,
                retrySourceConnectionID: scid), random: random)
        var w = ByteWriter(capacity: 128)
        // RFC 9000 §17.2.5: long header, type Retry (3), unused bits arbitrary.
        w.writeUInt8(0xF0 | UInt8(random.next(below: 16)))
        w.writeUInt32(QUICVersion.v1)
        w.writeUInt8(UInt8(header.sourceConnectionID.length))
        header.sourceConnectionID.write(to: &w)
        w.writeUInt8(UInt8(scid.length))
        scid.write(to: &w)
        w.writeBytes(token)
        let tag = RetryIntegrity.tag(originalDestinationConnectionID: header.destinationConnectionID, retryWithoutTag: w.bytes[...])
        w.writeBytes(tag)
        statelessTransmits.append(Transmit(bytes: w.bytes, destination: remote))
        retriesSent += 1
    }

    private func sendStatelessReset(for cid: ConnectionID, triggerSize: Int, to remote: SocketAddress) {
        // RFC 9000 §10.3: smaller than the packet that triggered it (no reset loops), at least 21 bytes.
        guard configuration.sendStatelessResets, triggerSize > 21 else {
            droppedDatagrams += 1
            return
        }
        let size = min(triggerSize - 1, 43)
        var bytes = random.bytes(size - 16)
        bytes[0] = 0x40 | (bytes[0] & 0x3f)  // looks like a short header packet
        bytes += StatelessResetTokens.token(for: cid, key: configuration.connection.statelessResetKey).bytes
        statelessTransmits.append(Transmit(bytes: bytes, destination: remote))
        statelessResetsSent += 1
    }
}

extension Connection {
    var hasPendingEvents: Bool { eventsHead < events.count }
}
