// The real QUIC code as simulated endpoints: the router is a multipath client Connection with one
// (simulated) socket per WAN path, the VPS an Endpoint serving it. Path index i of the topology is
// the router's WAN i: local address 10.0.i.2, and QUIC path ID assigned when the path is opened.
import Congestion
import QUIC

/// Addresses used inside the simulation (never leave the process).
enum SimulatedAddresses {
    static let vps = SocketAddress(ip: [10, 255, 0, 1], port: 443)
    static func router(path i: Int) -> SocketAddress { SocketAddress(ip: [10, 0, UInt8(i), 2], port: 40000 + UInt16(i)) }
}

public struct SimulatedQUICConfiguration {
    /// Each path's congestion controller, and the coupling across a connection's paths.
    public var congestion: CongestionAlgorithm = .bbr
    public var coupling: CouplingAlgorithm = .none
    /// ECN marking and response (the links mark CE only if their model says so).
    public var ecn = true
    public var maxUDPPayloadSize = 1350
    public var seed: UInt64 = 1
    public init() {}
}

/// The router side: a client connection that opens one path per WAN once the handshake is done.
public final class SimulatedRouter: SimulatedEndpoint {
    public let connection: Connection
    let pathCount: Int
    public internal(set) var pathIDForIndex: [Int: UInt32] = [0: 0]
    var indexForPathID: [UInt32: Int] = [0: 0]
    /// Paths marked backup from the start (by index).
    let backupIndexes: Set<Int>
    /// Called after every event with the time: the tunnel source hooks in here.
    public var onEvent: ((Timestamp) -> Void)?
    /// An extra timer the tunnel source wants (e.g. the next packet of a rate-limited source).
    public var applicationTimeout: (() -> Timestamp?)?
    /// Opens the other WAN paths itself (false: the tunnel engine's PathHealth does).
    public var opensPaths = true
    var indexForAddress: [SocketAddress: Int] = [:]

    public init(pathCount: Int, backupIndexes: Set<Int> = [], configuration: SimulatedQUICConfiguration, now: Timestamp) throws {
        var tls = TLSConfiguration(alpnProtocols: ["tquic-sim"])
        tls.verification = .none
        var config = ConnectionConfiguration(tls: try TLSContext(configuration: tls, isServer: false))
        // Path IDs are never reused, and a flapping WAN link uses a new one per revival.
        config.maxPathID = 1 << 16
        config.maxUDPPayloadSize = configuration.maxUDPPayloadSize
        config.congestion = configuration.congestion
        config.coupling = configuration.coupling
        config.ecn = configuration.ecn
        config.datagramSendQueueLimit = 64
        self.pathCount = pathCount
        self.backupIndexes = backupIndexes
        for i in 0..<pathCount { indexForAddress[SimulatedAddresses.router(path: i)] = i }
        connection = try Connection(
            clientWith: config, serverName: nil, remote: SimulatedAddresses.vps,
            random: SeededRandom(seed: configuration.seed), now: now)
    }

    public func receive(_ datagram: [UInt8], path: Int, now: Timestamp) {
        receive(datagram, path: path, now: now, ecn: .notECT)
    }

    public func receive(_ datagram: [UInt8], path: Int, now: Timestamp, ecn: ECNCodepoint) {
        connection.receive(datagram: datagram, from: SimulatedAddresses.vps, now: now, ecn: ecn)
        afterEvent(now)
    }

    public func poll(now: Timestamp) -> OutgoingDatagram? {
        guard let t = connection.poll(now: now) else { return nil }
        // The WAN a datagram leaves on: the path's index, or the path's local address (paths the
        // tunnel engine opened).
        let index = indexForPathID[t.pathID] ?? t.source.flatMap { indexForAddress[$0] } ?? 0
        return OutgoingDatagram(t.bytes, path: index, ecn: t.ecn)
    }

    public var nextTimeout: Timestamp? {
        [connection.nextTimeout, applicationTimeout?()].compactMap { $0 }.min()
    }

    public func handleTimeout(now: Timestamp) {
        if let t = connection.nextTimeout, t <= now { connection.handleTimeout(now: now) }
        afterEvent(now)
    }

    /// Opens the other WAN paths as soon as multipath allows it.
    private func afterEvent(_ now: Timestamp) {
        if opensPaths && connection.isMultipathEnabled && connection.handshakeConfirmed && pathIDForIndex.count < pathCount {
            for i in 1..<pathCount where pathIDForIndex[i] == nil {
                guard
                    let id = connection.openPath(
                        local: SimulatedAddresses.router(path: i), backup: backupIndexes.contains(i),
                        now: now)
                else { break }
                pathIDForIndex[i] = id
                indexForPathID[id] = i
            }
        }
        if opensPaths && backupIndexes.contains(0) { connection.setPathBackup(0, true) }
        onEvent?(now)
    }
}

/// The VPS side: an endpoint that accepts the router's connection.
public final class SimulatedVPS: SimulatedEndpoint {
    public let endpoint: Endpoint
    public var connection: Connection? { endpoint.connections.first }
    var indexForAddress: [SocketAddress: Int] = [:]
    public var onEvent: ((Timestamp) -> Void)?
    /// An extra timer of the tunnel receiver (the reorder buffer's next hold expiry).
    public var applicationTimeout: (() -> Timestamp?)?

    public init(pathCount: Int, configuration: SimulatedQUICConfiguration) throws {
        var tls = TLSConfiguration(alpnProtocols: ["tquic-sim"])
        tls.certificateChainPEM = SimulatorIdentity.certificatePEM
        tls.privateKeyPEM = SimulatorIdentity.privateKeyPEM
        var config = ConnectionConfiguration(tls: try TLSContext(configuration: tls, isServer: true))
        config.maxPathID = 1 << 16
        config.maxUDPPayloadSize = configuration.maxUDPPayloadSize
        config.congestion = configuration.congestion
        config.coupling = configuration.coupling
        config.ecn = configuration.ecn
        config.datagramSendQueueLimit = 64
        let random = SeededRandom(seed: configuration.seed &+ 1000)
        endpoint = Endpoint(configuration: Endpoint.Configuration(connection: config, tokenKey: random.bytes(16)), random: random)
        for i in 0..<pathCount { indexForAddress[SimulatedAddresses.router(path: i)] = i }
    }

    public func receive(_ datagram: [UInt8], path: Int, now: Timestamp) {
        receive(datagram, path: path, now: now, ecn: .notECT)
    }

    public func receive(_ datagram: [UInt8], path: Int, now: Timestamp, ecn: ECNCodepoint) {
        endpoint.receive(datagram: datagram, from: SimulatedAddresses.router(path: path), now: now, ecn: ecn)
        onEvent?(now)
    }

    public func poll(now: Timestamp) -> OutgoingDatagram? {
        guard let t = endpoint.poll(now: now) else { return nil }
        return OutgoingDatagram(t.bytes, path: indexForAddress[t.destination] ?? 0, ecn: t.ecn)
    }

    public var nextTimeout: Timestamp? { [endpoint.nextTimeout, applicationTimeout?()].compactMap { $0 }.min() }

    public func handleTimeout(now: Timestamp) {
        if let t = endpoint.nextTimeout, t <= now { endpoint.handleTimeout(now: now) }
        onEvent?(now)
    }
}
