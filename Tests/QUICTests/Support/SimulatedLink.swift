import Congestion
// An in-memory network for connection tests: one client Connection and one server Endpoint joined
// by a seeded link with delay, jitter (reordering), random loss and a rate limit. Time is simulated,
// so runs are exact and repeatable.
import Foundation
import QUIC
import XCTest

final class SimulatedNetwork {
    struct InFlight {
        var deliverAt: Timestamp
        var seq: UInt64
        var toServer: Bool
        var bytes: [UInt8]
        var from: SocketAddress
        var to: SocketAddress
        var ecn: ECNCodepoint
    }

    var now = Timestamp(nanoseconds: 1_000_000_000)
    let random: SeededRandom
    var oneWayDelay: Duration
    var jitter: Duration
    var lossRate: Double
    /// Bytes per second each way (0 = unlimited).
    var rate: Double
    private var linkFreeAt: [Timestamp] = [.zero, .zero]
    private var queue: [InFlight] = []
    private var seq: UInt64 = 0
    var dropped = 0
    var delivered = 0
    /// Set when one side produced more than `pollsPerInstantLimit` datagrams at one instant.
    private(set) var runaway = false
    static let pollsPerInstantLimit = 20_000
    /// Drop everything until this time (blackhole).
    var outageUntil: Timestamp?
    /// Rewrite the client's source address (NAT rebinding) from this time on.
    var clientAddress = SocketAddress(ip: [10, 0, 0, 1], port: 40000)
    /// Per client-side address (one per path): one-way delay overrides, and addresses whose
    /// traffic is dropped in both directions (a dead WAN link).
    var pathDelay: [SocketAddress: Duration] = [:]
    var deadAddresses: Set<SocketAddress> = []
    /// An MTU, as the largest UDP payload carried (bigger datagrams are dropped, as a link with
    /// DF set drops them): for every path, and per client-side address (one per path), which
    /// wins. Drops are counted in `droppedTooBig` (and `dropped`).
    var maxDatagramSize: Int?
    var pathMaxDatagramSize: [SocketAddress: Int] = [:]
    var droppedTooBig = 0
    /// What the network does to the ECN bits: pass them, clear them (a bleaching middlebox), or
    /// mark the next `ceMarksToApply` ECN-capable datagrams CE (a congested AQM).
    enum ECNBehaviour { case pass, bleach }
    var ecnBehaviour = ECNBehaviour.pass
    var ceMarksToApply = 0
    var ceMarksApplied = 0
    /// Datagrams delivered per client-side address.
    var deliveredPerAddress: [SocketAddress: Int] = [:]
    let serverAddress = SocketAddress(ip: [10, 0, 0, 2], port: 443)

    private(set) var client: Connection
    private let clientTLSContext: TLSContext
    /// Every datagram the client sent, when set (tests that read the wire).
    var clientDatagramLog: [[UInt8]]?
    /// Extra one-way delay for some of the server's datagrams (given their bytes), so that later
    /// ones overtake them.
    var serverDatagramExtraDelay: (([UInt8]) -> Duration?)?
    var server: Endpoint
    var serverConnection: Connection? { server.connections.last }
    var clientEvents: [ConnectionEvent] = []
    var serverEvents: [ConnectionEvent] = []

    init(
        seed: UInt64, delay: Duration = .milliseconds(10), jitter: Duration = .zero, loss: Double = 0,
        rateMbps: Double = 100, clientConfig: ((inout ConnectionConfiguration) -> Void)? = nil,
        serverConfig: ((inout Endpoint.Configuration) -> Void)? = nil,
        serverTLS customServerTLS: TLSConfiguration? = nil, clientTLS customClientTLS: TLSConfiguration? = nil
    ) throws {
        random = SeededRandom(seed: seed)
        oneWayDelay = delay
        self.jitter = jitter
        lossRate = loss
        rate = rateMbps * 1e6 / 8
        let fixtures = Bundle.module.resourceURL!.appendingPathComponent("Fixtures")
        var serverTLS = TLSConfiguration(alpnProtocols: ["tquic-test"])
        serverTLS.certificateChainFile = fixtures.appendingPathComponent("server.pem").path
        serverTLS.privateKeyFile = fixtures.appendingPathComponent("server.key").path
        let sctx = try TLSContext(configuration: customServerTLS ?? serverTLS, isServer: true)
        var sconf = Endpoint.Configuration(connection: ConnectionConfiguration(tls: sctx), tokenKey: [UInt8](repeating: 9, count: 16))
        serverConfig?(&sconf)
        server = Endpoint(configuration: sconf, random: SeededRandom(seed: seed &+ 1))

        var clientTLS = TLSConfiguration(alpnProtocols: ["tquic-test"])
        clientTLS.verification = .caFile(fixtures.appendingPathComponent("ca.pem").path)
        let cctx = try TLSContext(configuration: customClientTLS ?? clientTLS, isServer: false)
        clientTLSContext = cctx
        var cconf = ConnectionConfiguration(tls: cctx)
        clientConfig?(&cconf)
        self.clientConfig = clientConfig
        client = try Connection(
            clientWith: cconf, serverName: "localhost", remote: serverAddress,
            random: SeededRandom(seed: seed &+ 2), now: now)
    }

    private let clientConfig: ((inout ConnectionConfiguration) -> Void)?

    /// A new client connection to the same server endpoint (the old one is dropped), e.g. a router
    /// coming back after a reboot with the NEW_TOKEN value of its last connection.
    func reconnectClient(token: [UInt8]?, from address: SocketAddress, seed: UInt64) throws {
        var cconf = ConnectionConfiguration(tls: clientTLSContext)
        clientConfig?(&cconf)
        clientAddress = address
        clientEvents.removeAll()
        serverEvents.removeAll()
        client = try Connection(
            clientWith: cconf, serverName: "localhost", remote: serverAddress,
            random: SeededRandom(seed: seed), now: now, token: token)
    }

    private func send(_ t: Transmit, toServer: Bool, from: SocketAddress) {
        if toServer { clientDatagramLog?.append(t.bytes) }  // what the client sent, delivered or not
        if let o = outageUntil, now < o {
            dropped += 1
            return
        }
        let clientSide = toServer ? from : t.destination
        if deadAddresses.contains(clientSide) {
            dropped += 1
            return
        }
        if let mtu = pathMaxDatagramSize[clientSide] ?? maxDatagramSize, t.bytes.count > mtu {
            dropped += 1
            droppedTooBig += 1
            return
        }
        if lossRate > 0 && random.nextUnit() < lossRate {
            dropped += 1
            return
        }
        let dir = toServer ? 0 : 1
        var departure = max(now, linkFreeAt[dir])
        if rate > 0 { departure = departure + Duration(nanoseconds: UInt64(Double(t.bytes.count) / rate * 1e9)) }
        linkFreeAt[dir] = departure
        var at = departure + (pathDelay[clientSide] ?? oneWayDelay)
        if !toServer, let extra = serverDatagramExtraDelay?(t.bytes) { at = at + extra }
        if jitter.nanoseconds > 0 { at = at + Duration(nanoseconds: random.next(below: jitter.nanoseconds)) }
        seq += 1
        var ecn = ecnBehaviour == .bleach ? ECNCodepoint.notECT : t.ecn
        if ecn == .ect0 && ceMarksToApply > 0 {
            ecn = .ce
            ceMarksToApply -= 1
            ceMarksApplied += 1
        }
        queue.append(InFlight(deliverAt: at, seq: seq, toServer: toServer, bytes: t.bytes, from: from, to: t.destination, ecn: ecn))
    }

    func collectEvents() {
        while let e = client.pollEvent() { clientEvents.append(e) }
        if let sc = serverConnection { while let e = sc.pollEvent() { serverEvents.append(e) } }
    }

    /// Moves all ready output onto the link, delivers due datagrams, fires timers, advances time
    /// (never beyond `limit`).
    func step(limit: Timestamp? = nil) {
        // A connection that always has "something" to send at one instant is a bug (it would spin a
        // real event loop): stop it here as a failure instead of letting the queue grow forever.
        var polls = 0
        while let t = client.poll(now: now) {
            send(t, toServer: true, from: t.source ?? clientAddress)
            polls += 1
            if polls > Self.pollsPerInstantLimit {
                runaway = true
                return
            }
        }
        polls = 0
        while let t = server.poll(now: now) {
            send(t, toServer: false, from: serverAddress)
            polls += 1
            if polls > Self.pollsPerInstantLimit {
                runaway = true
                return
            }
        }
        collectEvents()

        var next = queue.map(\.deliverAt).min()
        for t in [client.nextTimeout, server.nextTimeout] { if let t { next = next.map { min($0, t) } ?? t } }
        guard var target = next ?? limit else { return }
        if let limit, target > limit { target = limit }
        if target > now { now = target }
        // Deliver everything due (in arrival order).
        let due = queue.filter { $0.deliverAt <= now }.sorted { ($0.deliverAt, $0.seq) < ($1.deliverAt, $1.seq) }
        queue.removeAll { $0.deliverAt <= now }
        for d in due {
            delivered += 1
            deliveredPerAddress[d.toServer ? d.from : d.to, default: 0] += 1
            // The in-place receive a data plane uses (the copying one wraps it).
            var bytes = d.bytes
            if d.toServer {
                server.receive(datagram: &bytes, from: d.from, now: now, ecn: d.ecn)
            } else {
                client.receive(datagram: &bytes, from: serverAddress, now: now, ecn: d.ecn)
            }
        }
        if let t = client.nextTimeout, t <= now { client.handleTimeout(now: now) }
        if let t = server.nextTimeout, t <= now { server.handleTimeout(now: now) }
    }

    /// Steps until `done` holds or `limit` of simulated time passes. Returns whether `done` held.
    @discardableResult
    func run(for limit: Duration, until done: () -> Bool) -> Bool {
        let end = now + limit
        var steps = 0
        while now < end {
            if done() { return true }
            if runaway {
                XCTFail("a connection kept producing datagrams at one instant (\(now))")
                return false
            }
            step(limit: end)
            steps += 1
            if steps > 5_000_000 { return false }
            if client.isClosed && (serverConnection == nil || serverConnection!.isClosed) && queue.isEmpty { break }
        }
        collectEvents()
        return done()
    }
}
