// A sans-I/O QUIC connection (RFC 9000). The owner passes datagrams in with `receive`, takes
// datagrams out with `poll`, calls `handleTimeout` at `nextTimeout`, and reads application events
// with `pollEvent`. Receive handling, packet assembly, loss recovery and the stream API live in
// the `Connection+*.swift` files beside this one.
import Congestion

public final class Connection {
    public enum Role: Sendable { case client, server }
    public enum State: Sendable, Equatable { case handshaking, established, closing, draining, closed }

    public let role: Role
    var isServer: Bool { role == .server }
    let config: ConnectionConfiguration
    /// The paths' coupled congestion-control group (nil: uncoupled).
    var congestionCoupling: CongestionCoupling?
    /// The algorithm new paths get.
    var congestionDefault: CongestionAlgorithm
    let random: RandomSource
    let tls: TLSSession
    public internal(set) var state: State = .handshaking

    // MARK: Packet number spaces and keys (RFC 9000 §12.3, RFC 9001 §4)
    /// Initial, Handshake, and the initial path's application-data space (`path.space`).
    let spaces: [PacketNumberSpace]
    /// `spaces[0]` and `spaces[1]` as properties of their own: the per-packet timer code reads
    /// them without walking (and retaining) the array.
    let initialSpace: PacketNumberSpace
    let handshakeSpace: PacketNumberSpace
    /// Indexed by EncryptionLevel.rawValue.
    var readKeys: [PacketKeys?] = [nil, nil, nil, nil]
    var writeKeys: [PacketKeys?] = [nil, nil, nil, nil]
    var keyUpdate = KeyUpdateState()
    /// Crypto stream per packet number space (RFC 9000 §19.6: CRYPTO offsets are per space).
    var cryptoSend = [SendBuffer(), SendBuffer(), SendBuffer()]
    var cryptoRecv = [ReceiveBuffer(), ReceiveBuffer(), ReceiveBuffer()]
    public internal(set) var handshakeComplete = false
    /// RFC 9001 §4.1.2: confirmed on HANDSHAKE_DONE (client) or handshake completion (server).
    public internal(set) var handshakeConfirmed = false
    var handshakeDoneToSend = false

    // MARK: Connection IDs (RFC 9000 §5.1)
    /// Our connection IDs by sequence number.
    var localCIDs: [UInt64: ConnectionID] = [:]
    var nextLocalCIDSequence: UInt64 = 0
    var localCIDsToAnnounce: [UInt64] = []
    /// The peer's connection IDs by sequence number, with reset tokens.
    var peerCIDs: [UInt64: (cid: ConnectionID, token: StatelessResetToken?)] = [:]
    var activePeerCIDSequence: UInt64 = 0
    var peerCIDRetirePriorTo: UInt64 = 0
    var peerCIDsToRetire: [UInt64] = []
    /// The DCID on the initial path.
    public internal(set) var destinationCID: ConnectionID {
        get { path.destinationCID }
        set { path.destinationCID = newValue }
    }
    /// The DCID of our long-header packets: the client's first random DCID, then the server's SCID
    /// from its Retry or first Initial; the server uses the client's SCID. RFC 9000 §7.2: it never
    /// changes after that, whatever NEW_CONNECTION_ID does to the 1-RTT DCID of path 0.
    var handshakeDestinationCID: ConnectionID
    public internal(set) var sourceCID: ConnectionID
    /// The DCID of the client's first Initial (RFC 9000 §7.3).
    public let originalDestinationCID: ConnectionID
    var retrySourceCID: ConnectionID?
    /// Client: a Retry or first server packet was seen (it may change the DCID once, §7.2).
    var receivedFirstServerPacket = false
    var retryToken: [UInt8] = []
    var receivedRetry = false

    // MARK: Peer parameters
    public internal(set) var peerParameters: TransportParameters? {
        didSet {
            peerMaxDatagramFrameSize = effectivePeerParameters?.maxDatagramFrameSize
            peerMaxAckDelay = .milliseconds(peerParameters?.maxAckDelay ?? 25)
            peerMaxIdleTimeout = peerParameters?.maxIdleTimeout
        }
    }
    /// Client: the server's parameters from an earlier connection, for 0-RTT (RFC 9000 §7.4.1).
    var rememberedParameters: TransportParameters? {
        didSet { peerMaxDatagramFrameSize = effectivePeerParameters?.maxDatagramFrameSize }
    }
    /// max_datagram_frame_size of `effectivePeerParameters`, kept beside it: the per-datagram
    /// checks would otherwise copy the whole parameter struct.
    private(set) var peerMaxDatagramFrameSize: UInt64?
    /// The peer's max_ack_delay (25 ms until known, RFC 9000 §18.2) and max_idle_timeout, kept
    /// beside the parameters for the same reason.
    private(set) var peerMaxAckDelay = Duration.milliseconds(25)
    private(set) var peerMaxIdleTimeout: UInt64?
    /// The parameters that bind us now: the peer's, or remembered ones during 0-RTT.
    var effectivePeerParameters: TransportParameters? { peerParameters ?? rememberedParameters }
    /// The peer's max_udp_payload_size (RFC 9000 §18.2; its default until the parameters arrive):
    /// it caps every path's datagrams.
    var peerMaxUDPPayloadSize = 65527
    var localParameters: TransportParameters

    // MARK: Paths (RFC 9000 §9, draft-ietf-quic-multipath)
    /// The initial path (path ID 0): the handshake runs on it. A `let`, so that reading it needs
    /// no retain; it stays in `paths` for the connection's life.
    let path: Path
    /// Every path by path ID (including path 0).
    var paths: [UInt32: Path] = [:] {
        didSet {
            pathOrder = paths.keys.sorted()
            pathList = pathOrder.map { paths[$0]! }
        }
    }
    /// Reused buffers of the per-packet paths (see where each is taken): kept empty with their
    /// capacity between uses, so that a steady flow of packets allocates nothing.
    var ackedScratch: [SentPacket] = []
    var pendingScratch: [PendingPacket] = []
    /// The path IDs in ascending order, kept with `paths` so that sending and timers visit the
    /// paths in a stable order without sorting (and allocating) on every call.
    private(set) var pathOrder: [UInt32] = []
    /// The paths in `pathOrder`'s order: the per-packet loops walk this array instead of
    /// looking each path up in `paths` (a hash per path per poll).
    private(set) var pathList: [Path] = []
    var multipath = MultipathState()
    /// Which path `poll` tries first next time (round robin).
    var pollCursor = 0
    /// A path being validated after the peer's address changed.

    // MARK: Streams and flow control (RFC 9000 §2-§4)
    var streams: [UInt64: Stream] = [:]
    var nextLocalBidiIndex: UInt64 = 0
    var nextLocalUniIndex: UInt64 = 0
    var peerMaxStreamsBidi: UInt64 = 0
    var peerMaxStreamsUni: UInt64 = 0
    var localMaxStreamsBidi: UInt64
    var localMaxStreamsUni: UInt64
    var remoteStreamsOpenedBidi: UInt64 = 0
    var remoteStreamsOpenedUni: UInt64 = 0
    var maxStreamsBidiToSend = false
    var maxStreamsUniToSend = false
    var closedRemoteBidi: UInt64 = 0
    var closedRemoteUni: UInt64 = 0
    /// Connection-level flow control: what the peer lets us send, and what we sent.
    var peerMaxData: UInt64 = 0
    var dataSent: UInt64 = 0
    /// What we let the peer send, and what it sent (highest offsets) and the app consumed.
    var localMaxData: UInt64
    var dataReceived: UInt64 = 0
    var dataConsumed: UInt64 = 0
    var maxDataToSend = false
    /// The connection limit last reported in DATA_BLOCKED, and one waiting to be (RFC 9000 §4.1).
    var dataBlockedSentAt: UInt64?
    var dataBlockedToSend: UInt64?
    /// Round-robin order for sending stream data.
    var sendQueue: [UInt64] = []

    /// Packets that arrived before their keys (RFC 9001 §5.7), in arrival order.
    var packetsAwaitingKeys: [PacketAwaitingKeys] = []

    // MARK: Datagrams (RFC 9221)
    var datagramsToSend = DatagramQueue()
    /// The memory of the zero-copy send (`Connection+Datagrams.swift`).
    let datagramSlots: DatagramSlots

    // MARK: Session tickets, tokens, 0-RTT
    /// Client: the newest NEW_TOKEN value from the server (RFC 9000 §8.1.3), for the next
    /// connection's Initial packets (`init(clientWith:...token:)`).
    public internal(set) var newTokenReceived: [UInt8]?
    /// Server: the NEW_TOKEN value the endpoint gave this connection, until acknowledged
    /// (`newTokenToSend` while it waits for a packet, again after a loss: RFC 9000 §13.3).
    var newTokenIssued: [UInt8]?
    var newTokenToSend = false
    var newTokenAcknowledged = false

    // MARK: Timers and closing
    var lastReceiveTime: Timestamp
    var idleDeadline: Timestamp?
    var ackElicitingSentSinceReceive = false
    var closeDeadline: Timestamp?
    var closeFrame: ConnectionCloseFrame?
    var closeReason: ConnectionCloseReason?
    var sendCloseFrame = false

    // MARK: Events and statistics
    /// When set, each received DATAGRAM frame's payload (RFC 9221) is handed to it where it lies
    /// in the receive buffer, with the ID of the path it arrived on, instead of being copied into
    /// a `.datagramReceived` event: the zero-copy way for a data plane (the tunnel hands it to its
    /// reorder buffer or TUN device). The bytes are valid only during the call, and the handler
    /// must not call back into the connection (it runs in the middle of `receive`).
    public var onDatagram: ((UnsafeRawBufferPointer, _ pathID: UInt32) -> Void)?
    var events: [ConnectionEvent] = []
    var eventsHead = 0
    public internal(set) var stats = ConnectionStatistics()
    var qlog: QlogSink? { config.qlog }

    /// Scratch space reused for every outgoing datagram.
    var datagramWriter = ByteWriter(capacity: 1500)

    // MARK: - Creating connections

    /// Creates a client connection and starts its handshake.
    /// - Parameters:
    ///   - serverName: SNI and certificate name.
    ///   - session: a ticket from an earlier `.sessionTicket` event, to resume (and send 0-RTT).
    ///   - token: a NEW_TOKEN value from an earlier connection to the same server.
    ///   - rememberedParameters: the server's transport parameters saved with the ticket; 0-RTT
    ///     data obeys their limits (RFC 9000 §7.4.1).
    public init(
        clientWith config: ConnectionConfiguration, serverName: String?, remote: SocketAddress,
        random: RandomSource, now: Timestamp, session: [UInt8]? = nil, token: [UInt8]? = nil,
        rememberedParameters: [UInt8]? = nil
    ) throws {
        self.role = .client
        self.config = config
        let coupling = Connection.makeCoupling(config.coupling)
        self.congestionCoupling = coupling
        self.congestionDefault = config.congestion
        self.random = random
        // RFC 9000 §7.2: the client's first DCID is unpredictable and at least 8 bytes.
        let odcid = ConnectionID(random.bytes(8))
        originalDestinationCID = odcid
        handshakeDestinationCID = odcid
        sourceCID = config.connectionIDGenerator.generate(random: random)
        localMaxData = config.initialMaxData
        localMaxStreamsBidi = config.initialMaxStreamsBidi
        localMaxStreamsUni = config.initialMaxStreamsUni
        lastReceiveTime = now
        datagramSlots = DatagramSlots(capacity: max(1, config.datagramSlotCount), slotSize: max(1200, config.maxUDPPayloadSize))
        path = Path(
            id: 0, remote: remote, state: .active, addressValidated: true,
            maxDatagramSize: Connection.firstPathMTU(config), mtu: Connection.firstPathMTUDiscovery(config),
            congestion: Connection.makeController(
                config.congestion, maxDatagramSize: Connection.firstPathMTU(config),
                coupling: coupling, random: random),
            congestionAlgorithm: config.congestion, ecnEnabled: config.ecn, destinationCID: odcid)
        initialSpace = PacketNumberSpace(id: .initial)
        handshakeSpace = PacketNumberSpace(id: .handshake)
        spaces = [initialSpace, handshakeSpace, path.space]
        paths[0] = path
        pathOrder = [0]  // observers do not run inside init
        pathList = [path]
        retryToken = token ?? []
        localParameters = Connection.makeLocalParameters(
            config: config, isServer: false, sourceCID: sourceCID,
            originalDestinationCID: odcid, retrySourceCID: nil)
        tls = try TLSSession(
            context: config.tls, transportParameters: localParameters.encode(grease: true),
            serverName: serverName, session: session, earlyDataContext: [])
        localCIDs[0] = sourceCID
        nextLocalCIDSequence = 1
        peerCIDs[0] = (odcid, nil)
        if session != nil, let raw = rememberedParameters, !raw.isEmpty,
            let p = try? TransportParameters.decode(raw, isServer: true)
        {
            self.rememberedParameters = p
            peerMaxDatagramFrameSize = p.maxDatagramFrameSize  // observers do not run inside init
            peerMaxData = p.initialMaxData
            peerMaxStreamsBidi = p.initialMaxStreamsBidi
            peerMaxStreamsUni = p.initialMaxStreamsUni
        }
        installInitialKeys(dcid: odcid)
        resetIdleTimer(now: now)
        try driveTLS(now: now)
    }

    /// Creates a server connection for a client's first Initial packet (the endpoint has already
    /// checked version, size and address validation).
    init(
        serverWith config: ConnectionConfiguration, clientInitial header: PacketHeader, remote: SocketAddress,
        random: RandomSource, now: Timestamp, originalDestinationCID: ConnectionID,
        retrySourceCID: ConnectionID?, addressValidated: Bool
    ) throws {
        self.role = .server
        self.config = config
        let coupling = Connection.makeCoupling(config.coupling)
        self.congestionCoupling = coupling
        self.congestionDefault = config.congestion
        self.random = random
        self.originalDestinationCID = originalDestinationCID
        self.retrySourceCID = retrySourceCID
        handshakeDestinationCID = header.sourceConnectionID
        sourceCID = config.connectionIDGenerator.generate(random: random)
        localMaxData = config.initialMaxData
        localMaxStreamsBidi = config.initialMaxStreamsBidi
        localMaxStreamsUni = config.initialMaxStreamsUni
        lastReceiveTime = now
        datagramSlots = DatagramSlots(capacity: max(1, config.datagramSlotCount), slotSize: max(1200, config.maxUDPPayloadSize))
        path = Path(
            id: 0, remote: remote, state: .active, addressValidated: addressValidated,
            maxDatagramSize: Connection.firstPathMTU(config), mtu: Connection.firstPathMTUDiscovery(config),
            congestion: Connection.makeController(
                config.congestion, maxDatagramSize: Connection.firstPathMTU(config),
                coupling: coupling, random: random),
            congestionAlgorithm: config.congestion, ecnEnabled: config.ecn,
            destinationCID: header.sourceConnectionID)
        initialSpace = PacketNumberSpace(id: .initial)
        handshakeSpace = PacketNumberSpace(id: .handshake)
        spaces = [initialSpace, handshakeSpace, path.space]
        paths[0] = path
        pathOrder = [0]  // observers do not run inside init
        pathList = [path]
        localParameters = Connection.makeLocalParameters(
            config: config, isServer: true, sourceCID: sourceCID,
            originalDestinationCID: originalDestinationCID,
            retrySourceCID: retrySourceCID)
        // RFC 9001 §4.6.1: 0-RTT is accepted only if the settings it relied on are unchanged; the
        // context is our parameters without the per-connection values (connection IDs, token).
        var stable = localParameters
        stable.originalDestinationConnectionID = nil
        stable.initialSourceConnectionID = nil
        stable.retrySourceConnectionID = nil
        stable.statelessResetToken = nil
        tls = try TLSSession(
            context: config.tls, transportParameters: localParameters.encode(grease: true), serverName: nil,
            session: nil, earlyDataContext: stable.encode() + Array(config.tls.configuration.alpnProtocols.joined(separator: ",").utf8))
        localCIDs[0] = sourceCID
        nextLocalCIDSequence = 1
        peerCIDs[0] = (header.sourceConnectionID, nil)
        // RFC 9001 §5.2: Initial keys come from the DCID the client chose for this Initial.
        installInitialKeys(dcid: header.destinationConnectionID)
        resetIdleTimer(now: now)
    }

    /// The initial path's first size and discovery state, before the peer's parameters are known
    /// (`initialPathMTU` and `makePathMTUDiscovery` once they may be).
    static func firstPathMTU(_ config: ConnectionConfiguration) -> Int {
        config.pmtuDiscovery ? min(PathMTUDiscovery.basePLPMTU, config.maxUDPPayloadSize) : config.maxUDPPayloadSize
    }

    static func firstPathMTUDiscovery(_ config: ConnectionConfiguration) -> PathMTUDiscovery {
        PathMTUDiscovery(maximum: config.maxUDPPayloadSize, raiseInterval: config.pmtuRaiseInterval)
    }

    static func makeLocalParameters(
        config: ConnectionConfiguration, isServer: Bool, sourceCID: ConnectionID,
        originalDestinationCID: ConnectionID, retrySourceCID: ConnectionID?
    ) -> TransportParameters {
        var p = TransportParameters()
        p.maxIdleTimeout = config.maxIdleTimeout.nanoseconds / 1_000_000
        p.maxUDPPayloadSize = UInt64(max(1200, config.maxUDPPayloadSize))
        p.initialMaxData = config.initialMaxData
        p.initialMaxStreamDataBidiLocal = config.initialMaxStreamData
        p.initialMaxStreamDataBidiRemote = config.initialMaxStreamData
        p.initialMaxStreamDataUni = config.initialMaxStreamData
        p.initialMaxStreamsBidi = config.initialMaxStreamsBidi
        p.initialMaxStreamsUni = config.initialMaxStreamsUni
        p.ackDelayExponent = config.ackDelayExponent
        p.maxAckDelay = config.maxAckDelay.nanoseconds / 1_000_000
        p.disableActiveMigration = config.disableActiveMigration
        p.activeConnectionIDLimit = config.activeConnectionIDLimit
        p.initialSourceConnectionID = sourceCID
        p.maxDatagramFrameSize = config.maxDatagramFrameSize
        p.initialMaxPathID = config.maxPathID.map { UInt64($0) }
        if isServer {
            p.originalDestinationConnectionID = originalDestinationCID
            p.retrySourceConnectionID = retrySourceCID
            p.statelessResetToken = StatelessResetTokens.token(for: sourceCID, key: config.statelessResetKey)
        }
        return p
    }

    func installInitialKeys(dcid: ConnectionID) {
        let keys = PacketKeys.initial(destinationConnectionID: dcid, isServer: isServer)
        readKeys[EncryptionLevel.initial.rawValue] = keys.read
        writeKeys[EncryptionLevel.initial.rawValue] = keys.write
    }

    // MARK: - Public state

    public var isClosed: Bool { state == .closed }
    /// Why the connection closed or is closing (nil while it is open).
    public var closingReason: ConnectionCloseReason? { closeReason }
    public var negotiatedALPN: String? { tls.negotiatedALPN }
    public var isResumed: Bool { tls.isResumed }
    public var earlyDataAccepted: Bool { tls.earlyDataAccepted }
    public var cipherSuite: CipherSuite? { tls.cipherSuite }
    /// The pin (SHA-256 of the SubjectPublicKeyInfo) of the peer certificate's key, nil before
    /// it arrived: on the VPS, which tenant this connection is (after the handshake).
    public var peerPublicKeySHA256: [UInt8]? { tls.peerPublicKeySHA256 }
    public var remoteAddress: SocketAddress { path.remote }
    /// Our connection IDs currently valid (the endpoint routes on them).
    /// Bumped whenever a local connection ID is issued or retired, so the endpoint re-reads
    /// `localConnectionIDs` only when it changed (not for every packet).
    private(set) var localCIDsVersion = 0
    /// The `localCIDsVersion` the endpoint last routed (kept here: a lookup per packet otherwise).
    var endpointRoutedCIDsVersion: Int?

    public var localConnectionIDs: [ConnectionID] {
        Array(localCIDs.values) + multipath.pathIDForLocalCID.keys
    }
    public var keyPhase: Bool { keyUpdate.writePhase }
    public var keyUpdatesCompleted: Int { keyUpdate.generation }

    /// Statistics of the initial path.
    public var pathStatistics: PathStatistics { path.statistics() }

    /// Next application event, or nil.
    public func pollEvent() -> ConnectionEvent? {
        guard eventsHead < events.count else {
            if eventsHead > 0 {
                events.removeAll(keepingCapacity: true)
                eventsHead = 0
            }
            return nil
        }
        defer { eventsHead += 1 }
        return events[eventsHead]
    }

    func emit(_ e: ConnectionEvent) {
        switch e {
        case .connectionIDIssued, .connectionIDRetired: localCIDsVersion += 1
        default: break
        }
        events.append(e)
    }

    // MARK: - Closing (RFC 9000 §10.2)

    /// Closes the connection with an application error code (0 = no error).
    public func close(errorCode: UInt64 = 0, reason: String = "", now: Timestamp) {
        guard state != .closing && state != .draining && state != .closed else { return }
        // RFC 9000 §10.2.3: before the handshake is confirmed an application close is sent as a
        // transport CONNECTION_CLOSE (APPLICATION_ERROR) in Initial/Handshake packets; we keep it
        // simple and use 0x1d only once 1-RTT keys exist.
        let app = writeKeys[EncryptionLevel.application.rawValue] != nil
        closeFrame =
            app
            ? ConnectionCloseFrame(isApplication: true, errorCode: errorCode, reason: ArraySlice(reason.utf8))
            : ConnectionCloseFrame(isApplication: false, errorCode: TransportErrorCode.applicationError.rawValue, reason: [])
        enterClosing(reason: .localApplication(code: errorCode, reason: reason), now: now)
    }

    func closeWithError(_ error: TransportError, now: Timestamp) {
        guard state != .closing && state != .draining && state != .closed else { return }
        closeFrame = ConnectionCloseFrame(
            isApplication: false, errorCode: error.code.rawValue, frameType: error.frameType,
            reason: ArraySlice(error.reason.utf8.prefix(200)))
        stats.closeError = error
        enterClosing(reason: .localTransport(code: error.code, reason: error.reason), now: now)
    }

    private func enterClosing(reason: ConnectionCloseReason, now: Timestamp) {
        state = .closing
        closeReason = reason
        sendCloseFrame = true
        closeDeadline = now + path.rtt.probeTimeout(maxAckDelay: peerMaxAckDelay) * 3
        qlogConnectionState("closing", now: now)
    }

    func enterDraining(reason: ConnectionCloseReason, now: Timestamp) {
        guard state != .draining && state != .closed else { return }
        closeReason = reason
        state = .draining
        closeDeadline = now + path.rtt.probeTimeout(maxAckDelay: peerMaxAckDelay) * 3
        qlogConnectionState("draining", now: now)
    }

    func finishClose(now: Timestamp) {
        guard state != .closed else { return }
        state = .closed
        emit(.closed(closeReason ?? .idleTimeout))
        qlogConnectionState("closed", now: now)
    }

    // MARK: - Timers

    /// When `handleTimeout` must be called next (nil: no timer).
    public var nextTimeout: Timestamp? {
        if state == .closed { return nil }
        if state == .closing || state == .draining { return closeDeadline }
        var t = idleDeadline
        func consider(_ x: Timestamp?) { if let x { t = t.map { min($0, x) } ?? x } }
        if !initialSpace.discarded { consider(initialSpace.ackDeadline) }
        if !handshakeSpace.discarded { consider(handshakeSpace.ackDeadline) }
        if !path.space.discarded { consider(path.space.ackDeadline) }
        consider(keyUpdate.discardPreviousAt)
        func consider(path p: Path) {
            consider(p.abandonDeadline)
            guard p.state == .active || p.state == .validating else { return }
            consider(p.lossDetectionDeadline)
            if p.id != 0 { consider(p.space.ackDeadline) }
            if let pacing = p.pacingDeadline, p.bytesInFlight < p.congestion.congestionWindow { consider(pacing) }
            if p.challenge != nil, let sent = p.challengeSentAt { consider(sent + pathValidationTimeout(p)) }
            // Path MTU discovery's PROBE_TIMER and PMTU_RAISE_TIMER (RFC 8899 §5.1.1), keep-alive.
            consider(p.mtu.probeDeadline)
            consider(p.mtu.raiseAt)
            consider(keepAliveDeadline(p))
        }
        // One path: it is `path` (no array to walk and retain).
        if pathList.count == 1 { consider(path: path) } else { for p in pathList { consider(path: p) } }
        return t
    }

    func pathValidationTimeout(_ p: Path) -> Duration {
        // RFC 9000 §8.2.4: three times the larger of the current PTO and the new path's initial PTO.
        max(p.rtt.probeTimeout(maxAckDelay: peerMaxAckDelay), RTTEstimator.initialRTT * 2) * 3
    }

    public func handleTimeout(now: Timestamp) {
        switch state {
        case .closed: return
        case .closing, .draining:
            if let d = closeDeadline, now >= d { finishClose(now: now) }
            return
        default: break
        }
        if let d = idleDeadline, now >= d {
            // RFC 9000 §10.1: silently close after the idle timeout.
            closeReason = .idleTimeout
            finishClose(now: now)
            return
        }
        func timeouts(of p: Path) {
            if let d = p.lossDetectionDeadline, now >= d { onLossDetectionTimeout(path: p, now: now) }
            if p.challenge != nil, let sent = p.challengeSentAt, now >= sent + pathValidationTimeout(p) {
                onPathValidationFailed(p, now: now)
            }
            if let d = p.abandonDeadline, now >= d { forgetPath(p) }
            if p.state == .active || p.state == .validating { onPMTUTimers(path: p, now: now) }
        }
        // One path: it is `path` (no array to walk and retain).
        if pathList.count == 1 { timeouts(of: path) } else { for p in pathList { timeouts(of: p) } }
        if let d = keyUpdate.discardPreviousAt, now >= d {
            keyUpdate.previousRead = nil
            keyUpdate.discardPreviousAt = nil
        }
        // Delayed ACK deadlines are honoured by poll(), which sends the ACK when due.
    }

    /// RFC 9000 §10.1: the minimum of both advertised idle timeouts (0 = none); nil when neither
    /// endpoint has one.
    var negotiatedIdleTimeout: Duration? {
        var timeout = config.maxIdleTimeout
        if let peer = peerMaxIdleTimeout, peer > 0 {
            // The peer's value is any varint (up to 2^62 ms): clamp it (a year) before converting
            // to nanoseconds, which would otherwise overflow and trap.
            let peerTimeout = Duration.milliseconds(min(peer, 365 * 24 * 3_600_000))
            timeout = timeout.nanoseconds == 0 ? peerTimeout : min(timeout, peerTimeout)
        }
        return timeout.nanoseconds > 0 ? timeout : nil
    }

    func resetIdleTimer(now: Timestamp) {
        // RFC 9000 §10.1: the effective timeout is the negotiated one, and at least three PTOs.
        guard let timeout = negotiatedIdleTimeout else {
            idleDeadline = nil
            return
        }
        idleDeadline = now + max(timeout, path.rtt.probeTimeout(maxAckDelay: peerMaxAckDelay) * 3)
    }
}

/// Counters the owner (and later the daemon) can read.
public struct ConnectionStatistics: Sendable {
    public var packetsReceived: UInt64 = 0
    public var packetsSent: UInt64 = 0
    public var packetsDropped: UInt64 = 0
    /// Packets kept because their keys had not arrived yet (RFC 9001 §5.7), and those dropped
    /// for it (no room, or keys that never came).
    public var packetsKeptForKeys: UInt64 = 0
    public var packetsDroppedAwaitingKeys: UInt64 = 0
    public var decryptionFailures: UInt64 = 0
    public var packetsLost: UInt64 = 0
    public var datagramsSent: UInt64 = 0
    public var datagramsReceived: UInt64 = 0
    /// Datagrams dropped unsent: the send queue overflowed, or the datagram no longer fits a
    /// packet on its path (the path's MTU fell after it was queued; RFC 9221 §5: never fragmented).
    public var datagramsDropped: UInt64 = 0
    /// Path MTU discovery on all paths (see `PathStatistics` for each path's own).
    public var pmtuProbesSent: UInt64 = 0
    public var pmtuProbesLost: UInt64 = 0
    public var pmtuBlackHolesDetected: UInt64 = 0
    /// Keep-alive PINGs (RFC 9000 §10.1.2) on all paths.
    public var keepAlivesSent: UInt64 = 0
    public var streamBytesSent: UInt64 = 0
    public var streamBytesReceived: UInt64 = 0
    public var closeError: TransportError?
    /// Blocked frames from the peer (RFC 9000 §4.1): informational, kept for diagnostics.
    public var dataBlockedReceived: UInt64 = 0
    public var lastDataBlockedLimit: UInt64?
    public var streamDataBlockedReceived: UInt64 = 0
    public var lastStreamDataBlocked: (streamID: UInt64, limit: UInt64)?
    public var streamsBlockedReceived: UInt64 = 0
}

/// RFC 9001 §6: 1-RTT key phases.
struct KeyUpdateState {
    /// Key phase bit of packets we send.
    var writePhase = false
    /// Key phase bit of the current read keys.
    var readPhase = false
    var nextRead: PacketKeys?
    var previousRead: PacketKeys?
    var discardPreviousAt: Timestamp?
    var currentPhaseAcked = false
    var generation = 0
    var updateRequested = false
}
