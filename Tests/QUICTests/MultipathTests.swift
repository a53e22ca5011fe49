import Congestion
// draft-ietf-quic-multipath end to end in memory: negotiation and fallback, opening a second
// path from a new local address with validation, per-path packet number spaces and PATH_ACK,
// datagrams steered per path, backup status, abandoning a path mid-transfer, key update.
import XCTest

@testable import QUIC

final class MultipathTests: XCTestCase {
    let secondAddress = SocketAddress(ip: [10, 0, 0, 3], port: 40001)

    private func network(client: UInt32? = 4, server: UInt32? = 4, seed: UInt64 = 51) throws -> SimulatedNetwork {
        let net = try SimulatedNetwork(
            seed: seed, clientConfig: { $0.maxPathID = client },
            serverConfig: { $0.connection.maxPathID = server })
        XCTAssertTrue(net.run(for: .seconds(5)) { net.client.handshakeConfirmed && net.serverConnection?.handshakeConfirmed == true })
        return net
    }

    private func openSecondPath(_ net: SimulatedNetwork, backup: Bool = false) throws -> UInt32 {
        net.run(for: .milliseconds(100)) { false }  // let PATH_NEW_CONNECTION_ID arrive
        let id = try XCTUnwrap(net.client.openPath(local: secondAddress, backup: backup, now: net.now), "openPath")
        XCTAssertTrue(
            net.run(for: .seconds(3)) {
                net.client.pathStatistics(id)?.state == .active && net.serverConnection?.pathStatistics(id)?.state == .active
            }, "path \(id) must be validated on both sides")
        return id
    }

    func testNegotiatedWhenBothSidesOfferIt() throws {
        let net = try network()
        XCTAssertTrue(net.client.isMultipathEnabled)
        XCTAssertEqual(net.serverConnection?.isMultipathEnabled, true)
    }

    func testFallsBackToSinglePathWhenThePeerLacksTheExtension() throws {
        let net = try network(client: 4, server: nil)
        XCTAssertFalse(net.client.isMultipathEnabled)
        XCTAssertNil(net.client.openPath(local: secondAddress, now: net.now), "no paths without negotiation")
        var done = Set<UInt64>()
        let id = try XCTUnwrap(net.client.openStream())
        try net.client.writeStream(id, pattern(100_000), fin: true)
        var got: [UInt8] = []
        XCTAssertTrue(
            net.run(for: .seconds(10)) {
                echoServerStep(net, finished: &done)
                if let r = net.client.readStream(id) {
                    got += r.data
                    return r.fin
                }
                return false
            })
        XCTAssertEqual(got, pattern(100_000))
    }

    func testSecondPathIsValidatedAndCarriesDatagramsWithItsOwnPacketNumbers() throws {
        let net = try network()
        net.pathDelay[secondAddress] = .milliseconds(40)
        let id = try openSecondPath(net)
        XCTAssertEqual(id, 1)
        let before = net.deliveredPerAddress[secondAddress] ?? 0
        var received = 0
        for i in 0..<100 { try net.client.sendDatagram(pattern(800, seed: i), onPath: id) }
        net.run(for: .seconds(3)) {
            for e in net.serverEvents { if case .datagramReceived = e { received += 1 } }
            net.serverEvents.removeAll()
            return received == 100
        }
        XCTAssertEqual(received, 100, "datagrams sent on path 1 must arrive")
        net.run(for: .milliseconds(500)) { false }  // let the last PATH_ACKs come back
        XCTAssertGreaterThanOrEqual((net.deliveredPerAddress[secondAddress] ?? 0) - before, 100, "they travelled on the second address")
        let stats = try XCTUnwrap(net.client.pathStatistics(id))
        XCTAssertGreaterThan(stats.bytesAcked, 80_000, "PATH_ACK frames acknowledged path 1's own packet numbers")
        XCTAssertGreaterThan(stats.smoothedRTT, .milliseconds(70), "path 1 has its own RTT estimate (80 ms RTT)")
        XCTAssertLessThan(try XCTUnwrap(net.client.pathStatistics(0)).smoothedRTT, .milliseconds(40), "path 0 keeps its 20 ms RTT")
        XCTAssertEqual(net.client.allPathStatistics.count, 2)
    }

    func testBackupStatusReachesThePeer() throws {
        let net = try network()
        let id = try openSecondPath(net)
        net.client.setPathBackup(id, true)
        XCTAssertTrue(net.run(for: .seconds(2)) { net.serverEvents.contains(.peerPathStatus(pathID: id, backup: true)) })
        net.client.setPathBackup(id, false)
        XCTAssertTrue(net.run(for: .seconds(2)) { net.serverEvents.contains(.peerPathStatus(pathID: id, backup: false)) })
    }

    func testAbandoningAPathMidTransferLosesNothing() throws {
        let net = try network()
        let id = try openSecondPath(net)
        let sid = try XCTUnwrap(net.client.openStream())
        let payload = pattern(2_000_000)
        try net.client.writeStream(sid, payload, fin: true)
        var got: [UInt8] = []
        var done = Set<UInt64>()
        var abandoned = false
        XCTAssertTrue(
            net.run(for: .seconds(30)) {
                echoServerStep(net, finished: &done)
                if let r = net.client.readStream(sid) { got += r.data }
                if !abandoned && got.count > 500_000 {
                    abandoned = true
                    net.deadAddresses.insert(self.secondAddress)  // the WAN link dies...
                    net.client.abandonPath(id, now: net.now)  // ...and the daemon notices
                }
                return got.count == payload.count
            }, "transfer must finish on the remaining path (got \(got.count))")
        XCTAssertTrue(got == payload)
        XCTAssertTrue(net.clientEvents.contains(.pathClosed(pathID: id)))
        XCTAssertGreaterThan(try XCTUnwrap(net.client.pathStatistics(0)).packetsSent, 100)
    }

    func testKeyUpdateAcrossPaths() throws {
        let net = try network()
        let id = try openSecondPath(net)
        XCTAssertTrue(net.client.initiateKeyUpdate())
        var received = 0
        for i in 0..<50 { try net.client.sendDatagram(pattern(500, seed: i), onPath: id) }
        for i in 0..<50 { try net.client.sendDatagram(pattern(500, seed: i), onPath: 0) }
        net.run(for: .seconds(3)) {
            for e in net.serverEvents { if case .datagramReceived = e { received += 1 } }
            net.serverEvents.removeAll()
            return received == 100
        }
        XCTAssertEqual(received, 100, "both paths use the new keys (same phase, per-path nonce)")
        XCTAssertEqual(net.serverConnection?.keyUpdatesCompleted, 1)
    }
}

extension MultipathTests {
    /// draft-21 §3.1: a path is opened only once the peer holds one of our connection IDs for its
    /// path ID, i.e. it acknowledged the PATH_NEW_CONNECTION_ID that carried it.
    func testPathOpensOnlyForPathIDsThePeerCanAnswerOn() throws {
        let net = try network()
        net.run(for: .milliseconds(100)) { false }
        let c = net.client
        XCTAssertEqual(
            c.multipath.pathIDsPeerCanAnswer, Set(c.multipath.localCIDs.keys),
            "every path ID whose PATH_NEW_CONNECTION_ID was acknowledged")
        XCTAssertTrue(c.multipath.pathIDsPeerCanAnswer.contains(1))
        // Path ID 1's connection IDs not acknowledged yet: the next path ID that is.
        c.multipath.pathIDsPeerCanAnswer.remove(1)
        XCTAssertEqual(c.openPath(local: secondAddress, now: net.now), 2)
        // None acknowledged: no path, nothing probed.
        c.multipath.pathIDsPeerCanAnswer.removeAll()
        let paths = c.pathIDs
        XCTAssertNil(c.openPath(local: SocketAddress(ip: [10, 0, 0, 4], port: 40002), now: net.now))
        XCTAssertEqual(c.pathIDs, paths)
    }
}

extension MultipathTests {
    /// RFC 9000 §8.2.1: a PATH_CHALLENGE lost on the way is sent again (once per PTO), so a path
    /// whose first probe fell into an outage still validates, instead of failing after 3 PTOs.
    func testALostPathChallengeIsSentAgain() throws {
        let net = try network()
        net.run(for: .milliseconds(100)) { false }
        net.deadAddresses.insert(secondAddress)  // the WAN is still down when the path is opened
        let id = try XCTUnwrap(net.client.openPath(local: secondAddress, now: net.now))
        net.run(for: .milliseconds(300)) { false }
        net.deadAddresses.remove(secondAddress)
        XCTAssertTrue(
            net.run(for: .seconds(2)) { net.client.pathStatistics(id)?.state == .active },
            "validated by a repeated PATH_CHALLENGE (state \(String(describing: net.client.pathStatistics(id)?.state)))")
    }
}
