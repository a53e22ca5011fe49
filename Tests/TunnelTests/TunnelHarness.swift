import Congestion
import QUIC
// An in-memory network for the router and VPS halves of the tunnel (TunnelClient, TunnelServer):
// each router's WANs are addresses with a fixed one-way delay to the VPS; datagrams are delivered
// in order, a WAN can be cut. Time is simulated, so runs are exact.
import XCTest

@testable import Tunnel

final class TunnelHarness {
    struct InFlight {
        var at: Timestamp
        var bytes: [UInt8]
        var from: SocketAddress
        var to: SocketAddress
    }

    final class Router {
        let key: TunnelKey
        let client: TunnelClient
        let addresses: [SocketAddress]
        var delivered: [[UInt8]] = []
        init(key: TunnelKey, client: TunnelClient, addresses: [SocketAddress]) {
            self.key = key
            self.client = client
            self.addresses = addresses
        }
    }

    var now = Timestamp(nanoseconds: 1_000_000_000)
    let oneWay: Duration
    let vpsKey = TunnelKey(seed: [UInt8](repeating: 0xa5, count: 32))!
    let serverAddress = SocketAddress(ip: [198, 51, 100, 1], port: 4433)
    var server: TunnelServer
    let pins: TenantPins
    var routers: [Router] = []
    var serverDelivered: [(packet: [UInt8], tenant: Int)] = []
    var cut: Set<SocketAddress> = []
    /// A NAT in front of router addresses: what the VPS sees instead (and sends back to).
    var nat: [SocketAddress: SocketAddress] = [:]
    private var queue: [InFlight] = []
    private var seed: UInt64 = 100

    init(tenants: TenantTable, oneWay: Duration = .milliseconds(5)) throws {
        self.oneWay = oneWay
        pins = TenantPins(tenants)
        server = try TunnelHarness.makeServer(key: vpsKey, tenants: tenants, pins: pins, seed: 1)
    }

    static func makeServer(key: TunnelKey, tenants: TenantTable, pins: TenantPins, seed: UInt64) throws -> TunnelServer {
        let tls = try TLSContext(configuration: TunnelTransport.vpsTLS(key: key, isTenant: { pins.contains($0) }), isServer: true)
        let random = SeededRandom(seed: seed)
        let endpoint = Endpoint(
            configuration: Endpoint.Configuration(
                connection: TunnelTransport.connectionConfiguration(tls: tls),
                tokenKey: random.bytes(16)), random: random)
        return TunnelServer(endpoint: endpoint, configuration: TunnelConfiguration(), tenants: tenants)
    }

    /// A router with `wans` WAN links (addresses 10.<router>.<wan>.2).
    @discardableResult
    func addRouter(key: TunnelKey, wans: Int = 2, start: Bool = true) throws -> Router {
        let r = routers.count
        let addresses = (0..<wans).map { SocketAddress(ip: [10, UInt8(r + 1), UInt8($0), 2], port: 40000) }
        let tls = try TLSContext(configuration: TunnelTransport.routerTLS(key: key, serverPublicKey: vpsKey.publicKey), isServer: false)
        seed += 1
        let s = seed
        let server = serverAddress
        let client = TunnelClient(
            configuration: TunnelConfiguration(),
            wans: addresses.enumerated().map { TunnelLink(name: "wan\($0.offset)", local: $0.element) }
        ) { now in
            try Connection(
                clientWith: TunnelTransport.connectionConfiguration(tls: tls), serverName: nil, remote: server,
                random: SeededRandom(seed: s), now: now)
        }
        let router = Router(key: key, client: client, addresses: addresses)
        routers.append(router)
        if start { client.start(now: now) }
        return router
    }

    /// Runs until `done` or `limit` of simulated time; returns whether `done` became true.
    @discardableResult
    func run(for limit: Duration, until done: () -> Bool = { false }) -> Bool {
        let end = now + limit
        while now <= end {
            pump()
            if done() { return true }
            var next = end + .milliseconds(1)
            if let q = queue.map(\.at).min() { next = min(next, q) }
            if let t = server.nextTimeout { next = min(next, t) }
            for r in routers { if let t = r.client.nextTimeout { next = min(next, t) } }
            now = max(now + .microseconds(1), next)
            if now > end { break }
        }
        pump()
        return done()
    }

    private func pump() {
        // Deliver what is due, in order of arrival.
        while let i = queue.indices.min(by: { queue[$0].at < queue[$1].at }), queue[i].at <= now {
            let d = queue.remove(at: i)
            var bytes = d.bytes
            if d.to == serverAddress {
                server.receive(datagram: &bytes, from: d.from, now: now)
            } else {
                // Back through the NAT, if the address is one of its outside ones.
                let inside = nat.first(where: { $0.value == d.to })?.key ?? d.to
                if let r = routers.first(where: { $0.addresses.contains(inside) }) {
                    r.client.receive(datagram: &bytes, from: d.from, now: now)
                }
            }
        }
        server.handleTimeout(now: now)
        server.process(now: now) { p, t in serverDelivered.append((Array(p), t)) }
        for r in routers {
            r.client.handleTimeout(now: now)
            r.client.process(now: now, source: nil) { p, _ in r.delivered.append(Array(p)) }
        }
        while let t = server.poll(now: now) { send(t.bytes, from: serverAddress, to: t.destination) }
        for r in routers {
            while let (t, wan) = r.client.poll(now: now) { send(t.bytes, from: r.addresses[wan], to: t.destination) }
        }
    }

    private func send(_ bytes: [UInt8], from: SocketAddress, to: SocketAddress) {
        guard !cut.contains(from), !cut.contains(to) else { return }
        queue.append(InFlight(at: now + oneWay, bytes: bytes, from: nat[from] ?? from, to: to))
    }

    /// An IPv4 UDP packet (no checksum needed: nothing here verifies it) with a counter payload.
    static func ipv4(from src: [UInt8], to dst: [UInt8], counter: UInt32 = 0, size: Int = 100) -> [UInt8] {
        var p = [UInt8](repeating: 0, count: size)
        p[0] = 0x45
        p[2] = UInt8(size >> 8)
        p[3] = UInt8(size & 0xff)
        p[8] = 64
        p[9] = 17
        p.replaceSubrange(12..<16, with: src)
        p.replaceSubrange(16..<20, with: dst)
        p[20] = 0x30
        p[21] = 0x39
        p[22] = 0x13
        p[23] = 0x89  // ports 12345 → 5001
        p[24] = UInt8((size - 20) >> 8)
        p[25] = UInt8((size - 20) & 0xff)
        withUnsafeBytes(of: counter.bigEndian) { p.replaceSubrange(28..<32, with: $0) }
        return p
    }
}
