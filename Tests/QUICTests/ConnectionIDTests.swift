import Congestion
// Connection IDs under multipath (draft-ietf-quic-multipath-21 §3.2): path 0 has one set of
// connection IDs whichever frame carries them (NEW_CONNECTION_ID or PATH_NEW_CONNECTION_ID with
// path ID 0), and the DCID of long-header packets never changes after the server's first Initial
// (RFC 9000 §7.2). Also the QUIC-LB connection IDs (draft-ietf-quic-load-balancers) on every path.
import XCTest

@testable import QUIC

final class ConnectionIDTests: XCTestCase {
    private func multipathNetwork(seed: UInt64 = 61, serverConfig: ((inout Endpoint.Configuration) -> Void)? = nil) throws
        -> SimulatedNetwork
    {
        try SimulatedNetwork(
            seed: seed, clientConfig: { $0.maxPathID = 4 },
            serverConfig: {
                $0.connection.maxPathID = 4
                serverConfig?(&$0)
            })
    }

    /// Long-header DCIDs in everything the client sent.
    private func longHeaderDestinationCIDs(_ datagrams: [[UInt8]]) -> Set<ConnectionID> {
        var out = Set<ConnectionID>()
        for d in datagrams {
            var offset = 0
            while offset < d.count, let h = try? PacketHeader.parse(d, at: offset, shortHeaderCIDLength: 8), h.packetEnd <= d.count {
                if h.isLongHeader { out.insert(h.destinationConnectionID) }
                offset = h.packetEnd
            }
        }
        return out
    }

    func testPathNewConnectionIDForPathZeroDuringTheHandshakeJoinsTheHandshakeSet() throws {
        let net = try multipathNetwork()
        net.clientDatagramLog = []
        // Stop as soon as the server connection exists, before it sends its first flight.
        XCTAssertTrue(net.run(for: .seconds(1)) { net.serverConnection != nil })
        let sc = try XCTUnwrap(net.serverConnection)
        // The server announces path 0's sequence 1 with PATH_NEW_CONNECTION_ID in 0.5-RTT data, as
        // another implementation does (ours uses NEW_CONNECTION_ID for path 0).
        let cid = ConnectionID([0xaa, 0xbb, 0xcc, 0xdd, 1, 2, 3, 4])
        sc.localCIDs[1] = cid
        sc.nextLocalCIDSequence = 2
        sc.multipath.localCIDs[0, default: [:]][1] = cid
        sc.multipath.localCIDsToAnnounce.append((0, 1))
        sc.emit(.connectionIDIssued(cid, StatelessResetTokens.token(for: cid, key: sc.config.statelessResetKey)))

        XCTAssertTrue(net.run(for: .seconds(5)) { net.client.handshakeConfirmed && sc.handshakeConfirmed }, "handshake completes")
        XCTAssertEqual(net.client.peerCIDs[1]?.cid, cid, "PATH_NEW_CONNECTION_ID for path 0 lands in path 0's one table")
        XCTAssertEqual(net.client.peerCIDs[0]?.cid, sc.sourceCID, "beside the handshake's sequence 0")
        XCTAssertNil(net.client.multipath.peerCIDs[0], "no second table for path 0")
        XCTAssertEqual(net.client.destinationCID, sc.sourceCID, "path 0 keeps the CID it uses (sequence 0 is not retired)")
        let used = longHeaderDestinationCIDs(try XCTUnwrap(net.clientDatagramLog))
        XCTAssertEqual(
            used, [net.client.originalDestinationCID, sc.sourceCID],
            "Initial and Handshake packets use only the first random DCID, then the server's SCID (RFC 9000 §7.2)")
    }

    func testPathRetireConnectionIDForPathZeroRetiresFromTheHandshakeSet() throws {
        let net = try multipathNetwork()
        XCTAssertTrue(net.run(for: .seconds(5)) { net.client.handshakeConfirmed && net.serverConnection?.handshakeConfirmed == true })
        net.run(for: .milliseconds(200)) { false }
        let sc = try XCTUnwrap(net.serverConnection)
        let retired = try XCTUnwrap(sc.localCIDs[1], "the server issued path 0's sequence 1")
        XCTAssertEqual(net.client.peerCIDs[1]?.cid, retired)
        // The client retires it with PATH_RETIRE_CONNECTION_ID(path 0).
        net.client.peerCIDs[1] = nil
        net.client.multipath.peerCIDsToRetire.append((0, 1))
        XCTAssertTrue(
            net.run(for: .seconds(2)) { net.serverEvents.contains(.connectionIDRetired(retired)) },
            "PATH_RETIRE_CONNECTION_ID with path ID 0 retires from path 0's set")
        XCTAssertNil(sc.localCIDs[1])
        XCTAssertTrue(
            net.run(for: .seconds(1)) { net.client.peerCIDs.count == sc.localCIDs.count && sc.localCIDs.count >= 2 },
            "a replacement is issued")
    }

    func testRetiringAPathZeroSequenceNeverIssuedIsAProtocolViolation() throws {
        let net = try multipathNetwork()
        XCTAssertTrue(net.run(for: .seconds(5)) { net.client.handshakeConfirmed && net.serverConnection?.handshakeConfirmed == true })
        net.client.multipath.peerCIDsToRetire.append((0, 1000))
        XCTAssertTrue(net.run(for: .seconds(2)) { net.serverConnection?.stats.closeError != nil })
        XCTAssertEqual(net.serverConnection?.stats.closeError?.code, .protocolViolation)
        XCTAssertEqual(net.serverConnection?.stats.closeError?.frameType, FrameType.pathRetireConnectionID)
    }

    // MARK: - QUIC-LB

    func testQUICLBPlaintextLayout() {
        let g = QUICLBConnectionIDGenerator(configRotation: 2, serverID: [0x31, 0x44, 0x1a], nonceLength: 5)
        let cid = g.generate(random: SeededRandom(seed: 3))
        XCTAssertEqual(cid.length, 9)
        XCTAssertEqual(cid[0] >> 5, 2, "config rotation in the first three bits")
        XCTAssertEqual(cid[0] & 0x1f, 8, "self-encoded length: 9 - 1")
        XCTAssertEqual([cid[1], cid[2], cid[3]], [0x31, 0x44, 0x1a], "server ID after the first octet")
        XCTAssertEqual(QUICLBConnectionIDGenerator.serverID(in: cid, configRotation: 2, serverIDLength: 3), [0x31, 0x44, 0x1a])
        XCTAssertNil(QUICLBConnectionIDGenerator.serverID(in: cid, configRotation: 3, serverIDLength: 3), "another configuration")
        XCTAssertNotEqual(g.generate(random: SeededRandom(seed: 4)), cid, "the nonce differs")
    }

    func testEveryPathsConnectionIDsCarryTheServerID() throws {
        let serverID: [UInt8] = [0x0a, 0x17]
        let net = try multipathNetwork(serverConfig: {
            $0.connection.connectionIDGenerator = QUICLBConnectionIDGenerator(configRotation: 1, serverID: serverID)
        })
        XCTAssertTrue(net.run(for: .seconds(5)) { net.client.handshakeConfirmed && net.serverConnection?.handshakeConfirmed == true })
        net.run(for: .milliseconds(200)) { false }
        var opened: [UInt32] = []
        for (i, ip) in ([[10, 0, 0, 3], [10, 0, 0, 4]] as [[UInt8]]).enumerated() {
            opened.append(try XCTUnwrap(net.client.openPath(local: SocketAddress(ip: ip, port: UInt16(41000 + i)), now: net.now)))
        }
        XCTAssertTrue(net.run(for: .seconds(3)) { opened.allSatisfy { net.client.pathStatistics($0)?.state == .active } })
        let sc = try XCTUnwrap(net.serverConnection)
        let decode = { (cid: ConnectionID) in QUICLBConnectionIDGenerator.serverID(in: cid, configRotation: 1, serverIDLength: 2) }
        // What a balancer sees: the DCID of every packet the client sends on each path.
        for id in [0] + opened {
            let dcid = try XCTUnwrap(net.client.paths[id]?.destinationCID)
            XCTAssertEqual(decode(dcid), serverID, "path \(id)'s DCID \(dcid) routes to the server")
        }
        // And every connection ID the server issued, for any path.
        XCTAssertGreaterThan(sc.localConnectionIDs.count, 4)
        for cid in sc.localConnectionIDs { XCTAssertEqual(decode(cid), serverID, "issued CID \(cid)") }
    }
}
