import Congestion
// RFC 9000 §4.1: a sender blocked by flow control says so with DATA_BLOCKED (connection limit) or
// STREAM_DATA_BLOCKED (stream limit), once per limit, and a blocked sender goes quiet instead of
// sending packets that carry nothing new.
import XCTest

@testable import QUIC

final class FlowControlBlockedTests: XCTestCase {
    /// A server that lets the client send `maxData` bytes in all and `maxStreamData` per stream, and
    /// never reads until told to.
    private func network(maxData: UInt64, maxStreamData: UInt64) throws -> SimulatedNetwork {
        let net = try SimulatedNetwork(
            seed: 7,
            serverConfig: {
                $0.connection.initialMaxData = maxData
                $0.connection.initialMaxStreamData = maxStreamData
            })
        XCTAssertTrue(net.run(for: .seconds(5)) { net.client.handshakeConfirmed })
        return net
    }

    func testABlockedSenderGoesQuietAndSendsDataBlockedOncePerLimit() throws {
        let net = try network(maxData: 40_000, maxStreamData: 1_000_000)
        let sid = try XCTUnwrap(net.client.openStream())
        try net.client.writeStream(sid, pattern(200_000), fin: true)
        let sentBefore = net.client.stats.packetsSent
        net.run(for: .seconds(3)) { false }
        let sc = try XCTUnwrap(net.serverConnection)
        XCTAssertEqual(sc.stats.dataBlockedReceived, 1, "one DATA_BLOCKED for the 40 000-byte limit")
        XCTAssertEqual(sc.stats.lastDataBlockedLimit, 40_000)
        XCTAssertLessThan(
            net.client.stats.packetsSent - sentBefore, 200,
            "blocked at the limit, the client stops sending (it sent \(net.client.stats.packetsSent - sentBefore) packets)")

        // The application reads: MAX_DATA raises the limit, the client goes on and is blocked again.
        var got = 0
        net.run(for: .seconds(3)) {
            if let r = sc.readStream(sid) { got += r.data.count }
            return false
        }
        XCTAssertEqual(got, 200_000, "all data arrives once the server reads")
        XCTAssertGreaterThanOrEqual(sc.stats.dataBlockedReceived, 1)
        XCTAssertLessThanOrEqual(sc.stats.dataBlockedReceived, 1 + 200_000 / 40_000 + 1, "at most one DATA_BLOCKED per limit")
    }

    func testStreamDataBlockedNamesTheStreamAndItsLimit() throws {
        let net = try network(maxData: 10_000_000, maxStreamData: 30_000)
        let sid = try XCTUnwrap(net.client.openStream())
        try net.client.writeStream(sid, pattern(100_000))
        net.run(for: .seconds(2)) { false }
        let sc = try XCTUnwrap(net.serverConnection)
        XCTAssertEqual(sc.stats.streamDataBlockedReceived, 1, "one STREAM_DATA_BLOCKED for the 30 000-byte stream limit")
        XCTAssertEqual(sc.stats.lastStreamDataBlocked?.streamID, sid)
        XCTAssertEqual(sc.stats.lastStreamDataBlocked?.limit, 30_000)
        XCTAssertEqual(sc.stats.dataBlockedReceived, 0, "the connection limit was never reached")
    }
}
