import Congestion
// RFC 9001 §5.7: packets that arrive before their keys are kept (a few per level) and opened once
// the keys are installed, instead of being dropped and waiting for the peer's retransmission.
import XCTest

@testable import QUIC

final class EarlyPacketTests: XCTestCase {
    func testHandshakePacketsThatOvertakeTheServerInitialAreKeptAndOpened() throws {
        let net = try SimulatedNetwork(seed: 71)
        // The server's datagrams that carry an Initial packet (its ServerHello) arrive 30 ms after
        // the Handshake-only ones behind them: the client sees Handshake packets before it has
        // Handshake keys.
        net.serverDatagramExtraDelay = { bytes in
            (try? PacketHeader.parse(bytes, shortHeaderCIDLength: 8))?.type == .initial ? .milliseconds(30) : nil
        }
        let start = net.now
        XCTAssertTrue(net.run(for: .seconds(5)) { net.client.handshakeComplete })
        XCTAssertGreaterThan(net.client.stats.packetsKeptForKeys, 0, "Handshake packets were kept until their keys arrived")
        XCTAssertEqual(net.client.stats.packetsDroppedAwaitingKeys, 0)
        XCTAssertLessThan(
            net.now - start, .milliseconds(150),
            "no wait for a retransmission: ~1 RTT (20 ms) + 30 ms, far below the 1 s initial PTO")
        XCTAssertTrue(net.client.packetsAwaitingKeys.isEmpty)
    }

    func testWithoutReorderingNothingIsKept() throws {
        let net = try SimulatedNetwork(seed: 71)
        XCTAssertTrue(net.run(for: .seconds(5)) { net.client.handshakeComplete })
        XCTAssertEqual(net.client.stats.packetsKeptForKeys, 0)
    }

    func testOnlyAFewPacketsPerLevelAreKeptAndTheRestAreCounted() throws {
        let net = try SimulatedNetwork(seed: 72)
        XCTAssertTrue(net.run(for: .seconds(5)) { net.serverConnection != nil })
        // A fresh client that has sent nothing has no Handshake keys: feed it 20 copies of a
        // Handshake-looking packet (long header type 2 with its own DCID).
        let c = net.client
        var w = ByteWriter(capacity: 200)
        w.writeUInt8(0xe0 | 0x01)  // long header, Handshake, 2-byte packet number
        w.writeUInt32(QUICVersion.v1)
        w.writeUInt8(UInt8(c.sourceCID.length))
        c.sourceCID.write(to: &w)
        w.writeUInt8(8)
        ConnectionID([1, 2, 3, 4, 5, 6, 7, 8]).write(to: &w)
        w.writeVarInt(100, length: 2)
        w.writeBytes([UInt8](repeating: 0x42, count: 100))
        let packet = w.bytes
        for _ in 0..<20 { c.receive(datagram: packet, from: net.serverAddress, now: net.now) }
        XCTAssertEqual(c.packetsAwaitingKeys.count, Connection.packetsKeptPerLevelBeforeKeys)
        XCTAssertEqual(c.stats.packetsDroppedAwaitingKeys, UInt64(20 - Connection.packetsKeptPerLevelBeforeKeys))
    }
}
