import Congestion
import QUIC
// The VPS half with several tenants, and the router half's reconnection, in memory: a tenant is
// known by its key; it may send only from its own prefixes; it receives only what is addressed
// to its prefixes; a key no tenant has gets no tunnel; a router that comes back replaces its old
// connection; a router whose VPS restarted connects again.
import XCTest

@testable import Tunnel

final class TunnelServerTests: XCTestCase {
    let keyA = TunnelKey(seed: [UInt8](repeating: 1, count: 32))!
    let keyB = TunnelKey(seed: [UInt8](repeating: 2, count: 32))!

    var table: TenantTable {
        TenantTable([
            Tenant(name: "a", pin: keyA.pin, allowed: [IPPrefix("10.8.0.2/32")!, IPPrefix("192.168.1.0/24")!]),
            Tenant(name: "b", pin: keyB.pin, allowed: [IPPrefix("10.8.0.3/32")!, IPPrefix("192.168.2.0/24")!]),
        ])
    }

    func connected(_ h: TunnelHarness) -> Bool {
        h.server.sessions.allSatisfy { $0 != nil } && h.routers.allSatisfy { $0.client.engine?.connection.isMultipathEnabled == true }
    }

    func testTenantsAreIsolated() throws {
        let h = try TunnelHarness(tenants: table)
        let a = try h.addRouter(key: keyA)
        let b = try h.addRouter(key: keyB)
        XCTAssertTrue(h.run(for: .seconds(3)) { connected(h) })
        XCTAssertEqual(h.server.sessions[0]?.connection.peerPublicKeySHA256, keyA.pin, "session 0 is tenant a's key")
        XCTAssertEqual(h.server.sessions[1]?.connection.peerPublicKeySHA256, keyB.pin)

        let inet: [UInt8] = [203, 0, 113, 9]
        // a sends from its LAN; b sends once from its own LAN and once pretending to be a's LAN host.
        let fromA = TunnelHarness.ipv4(from: [192, 168, 1, 10], to: inet, counter: 1)
        let fromB = TunnelHarness.ipv4(from: [192, 168, 2, 10], to: inet, counter: 2)
        let spoofed = TunnelHarness.ipv4(from: [192, 168, 1, 10], to: inet, counter: 3)
        let garbage: [UInt8] = [0x00, 0x01, 0x02]
        fromA.withUnsafeBytes { XCTAssertTrue(a.client.send($0, now: h.now)) }
        fromB.withUnsafeBytes { XCTAssertTrue(b.client.send($0, now: h.now)) }
        spoofed.withUnsafeBytes { XCTAssertTrue(b.client.send($0, now: h.now)) }
        garbage.withUnsafeBytes { _ = b.client.send($0, now: h.now) }
        h.run(for: .milliseconds(200))
        XCTAssertEqual(h.serverDelivered.map(\.packet), [fromA, fromB], "the spoofed packet did not reach the TUN")
        XCTAssertEqual(h.serverDelivered.map(\.tenant), [0, 1])
        XCTAssertEqual(h.server.tenantStatistics[1].droppedSourceNotAllowed, 2, "b's spoofed and non-IP packets were counted")
        XCTAssertEqual(h.server.tenantStatistics[0].droppedSourceNotAllowed, 0)

        // From the internet back: each packet reaches only the tenant owning its destination.
        let toA = TunnelHarness.ipv4(from: inet, to: [192, 168, 1, 10], counter: 4)
        let toB = TunnelHarness.ipv4(from: inet, to: [10, 8, 0, 3], counter: 5)
        let toNobody = TunnelHarness.ipv4(from: inet, to: [192, 168, 3, 1], counter: 6)
        toA.withUnsafeBytes { XCTAssertEqual(h.server.send($0, now: h.now), .sent) }
        toB.withUnsafeBytes { XCTAssertEqual(h.server.send($0, now: h.now), .sent) }
        toNobody.withUnsafeBytes { XCTAssertEqual(h.server.send($0, now: h.now), .dropped) }
        h.run(for: .milliseconds(200))
        XCTAssertEqual(a.delivered, [toA])
        XCTAssertEqual(b.delivered, [toB])
        XCTAssertEqual(h.server.statistics.droppedNoTenant, 1)
    }

    func testAKeyThatIsNoTenantsGetsNoTunnel() throws {
        let stranger = TunnelKey(seed: [UInt8](repeating: 3, count: 32))!
        let h = try TunnelHarness(tenants: table)
        let s = try h.addRouter(key: stranger)
        h.run(for: .seconds(2))
        XCTAssertTrue(h.server.sessions.allSatisfy { $0 == nil })
        XCTAssertFalse(s.client.isConnected)
        XCTAssertGreaterThan(
            s.client.statistics.connectionsLost, 0, "refused in the handshake: \(s.client.statistics.lastCloseReason ?? "-")")
        XCTAssertEqual(h.server.endpoint.connections.filter { !$0.isClosed && $0.handshakeComplete }.count, 0)
    }

    func testAReloadRemovingATenantClosesItsConnection() throws {
        let h = try TunnelHarness(tenants: table)
        let a = try h.addRouter(key: keyA)
        _ = try h.addRouter(key: keyB)
        XCTAssertTrue(h.run(for: .seconds(3)) { connected(h) })
        let onlyB = TenantTable([table.tenants[1]])
        h.pins.replace(with: onlyB)
        h.server.updateTenants(onlyB, now: h.now)
        XCTAssertEqual(h.server.sessions.count, 1)
        XCTAssertEqual(h.server.sessions[0]?.connection.peerPublicKeySHA256, keyB.pin, "b's session moved to its new index")
        h.run(for: .seconds(2))
        XCTAssertFalse(a.client.isConnected, "a was told to go and cannot come back")
        XCTAssertNotNil(h.server.sessions[0], "b kept its connection")
    }

    func testARebootedRouterReplacesItsOldConnection() throws {
        let h = try TunnelHarness(tenants: table)
        let first = try h.addRouter(key: keyA)
        XCTAssertTrue(h.run(for: .seconds(3)) { h.server.sessions[0] != nil })
        let old = try XCTUnwrap(h.server.sessions[0]?.connection)
        h.cut.formUnion(first.addresses)  // the old router is gone without a word
        let second = try h.addRouter(key: keyA)
        XCTAssertTrue(h.run(for: .seconds(3)) { h.server.sessions[0].map { $0.connection !== old } ?? false })
        XCTAssertEqual(h.server.tenantStatistics[0].connectionsReplaced, 1)
        XCTAssertTrue(second.client.isConnected)
        XCTAssertTrue(old.state == .closing || old.state == .draining || old.isClosed)
    }

    func testTheRouterReconnectsAfterTheVPSRestarts() throws {
        let h = try TunnelHarness(tenants: table)
        let a = try h.addRouter(key: keyA)
        XCTAssertTrue(h.run(for: .seconds(3)) { a.client.isConnected })
        // The VPS process restarts: a new endpoint with no memory of the connection.
        h.server = try TunnelHarness.makeServer(key: h.vpsKey, tenants: table, pins: h.pins, seed: 2)
        XCTAssertTrue(
            h.run(for: .seconds(60)) { h.server.sessions[0] != nil && a.client.isConnected },
            "reconnected (\(a.client.statistics))")
        XCTAssertEqual(a.client.statistics.connectionsOpened, 2)
        let p = TunnelHarness.ipv4(from: [192, 168, 1, 10], to: [203, 0, 113, 9], counter: 7)
        XCTAssertTrue(h.run(for: .seconds(2)) { a.client.engine?.connection.isMultipathEnabled == true })
        p.withUnsafeBytes { XCTAssertTrue(a.client.send($0, now: h.now)) }
        h.run(for: .milliseconds(200))
        XCTAssertEqual(h.serverDelivered.last?.packet, p, "traffic flows on the new connection")
    }

    func testAWANDownAtStartIsSkippedForTheHandshake() throws {
        let h = try TunnelHarness(tenants: table)
        let keyAddresses = (0..<2).map { SocketAddress(ip: [10, 1, UInt8($0), 2], port: 40000) }
        h.cut.insert(keyAddresses[0])
        let a = try h.addRouter(key: keyA, start: false)
        a.client.wanDown(0, now: h.now)  // the path manager found wan0 down before the start
        a.client.start(now: h.now)
        XCTAssertTrue(h.run(for: .seconds(3)) { a.client.isConnected }, "the handshake went over wan1")
        a.client.wanUp(0, now: h.now)
        h.cut.remove(keyAddresses[0])
        XCTAssertTrue(
            h.run(for: .seconds(5)) {
                (a.client.engine?.connection.pathIDs.count ?? 0) >= 2 && a.client.engine!.paths.links.allSatisfy { !$0.isDead }
            }, "wan0 became a path once up")
    }

    /// A CGNAT gives wan1's flow a new outside port (a rebinding): the VPS validates the new
    /// address on that path alone, traffic goes on, path 0 is not touched.
    func testANATRebindingOnOnePathLeavesTheOthersAlone() throws {
        let h = try TunnelHarness(tenants: table)
        let a = try h.addRouter(key: keyA)
        XCTAssertTrue(h.run(for: .seconds(3)) { (h.server.sessions[0]?.connection.pathIDs.count ?? 0) == 2 })
        let s = try XCTUnwrap(h.server.sessions[0])
        let ids = s.connection.pathIDs
        let before = ids.map { s.connection.pathStatistics($0)!.remote }
        XCTAssertEqual(before, a.addresses)
        let outside = SocketAddress(ip: [100, 64, 9, 9], port: 61000)
        h.nat[a.addresses[1]] = outside
        var counter: UInt32 = 100
        var sent: [[UInt8]] = []
        for _ in 0..<20 {
            let p = TunnelHarness.ipv4(from: [192, 168, 1, 10], to: [203, 0, 113, 9], counter: counter)
            counter += 1
            p.withUnsafeBytes { _ = a.client.send($0, now: h.now) }
            sent.append(p)
            h.run(for: .milliseconds(50))
        }
        h.run(for: .seconds(1))
        XCTAssertEqual(s.connection.pathIDs, ids, "no path was lost")
        XCTAssertEqual(s.connection.pathStatistics(ids[0])?.remote, a.addresses[0], "path 0 untouched")
        XCTAssertEqual(s.connection.pathStatistics(ids[1])?.remote, outside, "path 1 follows the new address")
        XCTAssertEqual(s.connection.pathStatistics(ids[1])?.state, .active)
        XCTAssertTrue(h.server.sessions[0] === s, "the same connection")
        let delivered = Set(h.serverDelivered.map(\.packet))
        XCTAssertTrue(sent.allSatisfy { delivered.contains($0) }, "every packet arrived across the rebinding")
        // And the VPS's answers reach the router through the new binding.
        let back = TunnelHarness.ipv4(from: [203, 0, 113, 9], to: [192, 168, 1, 10], counter: 999)
        for _ in 0..<10 {
            back.withUnsafeBytes { _ = h.server.send($0, now: h.now) }
            h.run(for: .milliseconds(20))
        }
        XCTAssertEqual(a.delivered.count, 10)
    }
}
