import Congestion
// Reproductions of what the whole-connection fuzz target (Tests/Fuzz/ConnectionFuzz.swift) found:
// a server past its handshake receives one 1-RTT packet sealed with the client's keys and must
// close with the transport error RFC 9000 / draft-ietf-quic-multipath names (or not trap), and a
// receive buffer must not hold more than the offsets it covers.
import XCTest

@_spi(Testing) @testable import QUIC

final class ConnectionFuzzFindingsTests: XCTestCase {
    private func establishedPair(multipath: Bool = false, serverStreamWindow: UInt64? = nil) throws -> SimulatedNetwork {
        let net = try SimulatedNetwork(
            seed: 11, clientConfig: { if multipath { $0.maxPathID = 3 } },
            serverConfig: {
                if multipath { $0.connection.maxPathID = 3 }
                if let w = serverStreamWindow { $0.connection.initialMaxStreamData = w }
            })
        XCTAssertTrue(
            net.run(for: .seconds(5)) { net.client.handshakeConfirmed && net.serverConnection?.handshakeConfirmed == true },
            "handshake did not complete")
        return net
    }

    /// Seals `frames` as the client's next 1-RTT packet (`later` packet numbers on, for a second
    /// packet: the client itself never sends these) and hands it to the server.
    private func deliver(_ frames: [Frame], in net: SimulatedNetwork, later: UInt64 = 0) throws -> Connection {
        let server = try XCTUnwrap(net.serverConnection)
        var w = ByteWriter()
        for f in frames { f.encode(to: &w) }
        let d = try XCTUnwrap(net.client.testingOneRTTDestination())
        let datagram = try XCTUnwrap(
            net.client.testingSealOneRTTPacket(
                payload: w.bytes, destinationCID: d.cid,
                packetNumber: d.nextPacketNumber + later))
        let before = server.stats.packetsReceived
        server.receive(datagram: datagram, from: net.clientAddress, now: net.now)
        XCTAssertEqual(server.stats.packetsReceived, before + 1, "the sealed packet was not accepted")
        return server
    }

    func testStreamDataBlockedOnTheServersUnidirectionalStreamIsStreamStateError() throws {
        // RFC 9000 §19.13: STREAM_DATA_BLOCKED for a send-only stream is STREAM_STATE_ERROR.
        // Stream 3 is the server's first unidirectional stream: send-only for the server.
        let net = try establishedPair()
        let server = try deliver([.streamDataBlocked(streamID: 3, limit: 0)], in: net)
        XCTAssertEqual(server.stats.closeError?.code, .streamStateError, "closed with \(String(describing: server.stats.closeError))")
    }

    func testStreamDataBlockedBeyondTheStreamLimitIsStreamLimitError() throws {
        // RFC 9000 §4.6: a frame with a stream ID beyond the advertised limit is STREAM_LIMIT_ERROR.
        let net = try establishedPair()
        let server = try deliver([.streamDataBlocked(streamID: 4 * 1000, limit: 0)], in: net)
        XCTAssertEqual(server.stats.closeError?.code, .streamLimitError, "closed with \(String(describing: server.stats.closeError))")
    }

    func testResetStreamWithAFinalSizeBeyondTheStreamLimitIsFlowControlError() throws {
        // RFC 9000 §4.5: the final size is the flow-control credit the stream consumed; §4.1: a
        // sender beyond the stream's limit is a FLOW_CONTROL_ERROR.
        let net = try establishedPair()
        let window = try XCTUnwrap(net.serverConnection).config.initialMaxStreamData
        let server = try deliver([.resetStream(streamID: 0, errorCode: 1, finalSize: window + 1)], in: net)
        XCTAssertEqual(server.stats.closeError?.code, .flowControlError, "closed with \(String(describing: server.stats.closeError))")
    }

    func testPathAbandonWithAPathIDAbove32BitsClosesInsteadOfTrapping() throws {
        // PATH_ABANDON(path ID 2^32) used to pass the "known path" check through a truncated
        // path ID (path 0) and then trap converting 2^32 to UInt32.
        let net = try establishedPair(multipath: true)
        XCTAssertTrue(try XCTUnwrap(net.serverConnection).isMultipathEnabled)
        let server = try deliver([.pathAbandon(pathID: 1 << 32, errorCode: 0)], in: net)
        XCTAssertEqual(server.stats.closeError?.code, .protocolViolation, "closed with \(String(describing: server.stats.closeError))")
    }

    func testAnAckWithAHugeAckDelayDoesNotTrap() throws {
        // RFC 9000 §19.3: ACK Delay is any varint. Scaled by 2^ack_delay_exponent and turned into
        // nanoseconds it used to overflow (a trap) when it acknowledged a new ack-eliciting packet.
        let net = try establishedPair()
        let server = try XCTUnwrap(net.serverConnection)
        let id = try XCTUnwrap(server.openStream())
        try server.writeStream(id, [1, 2, 3])
        while server.poll(now: net.now) != nil {}
        let largest = server.path.space.nextPacketNumber - 1
        _ = try deliver([.ack(AckFrame(ranges: [0...largest], ackDelay: (1 << 62) - 1))], in: net)
        XCTAssertEqual(server.state, .established)
        XCTAssertNil(server.stats.closeError)
    }

    func testALateAckOfDataSentBeforeAResetDoesNotTrap() throws {
        // The server sends stream data, the client asks it to stop (STOP_SENDING: the server
        // resets the stream and drops its send buffer), then acknowledges the data sent before.
        // The discarded buffer used to keep its old base, so the ACK released bytes past the
        // empty storage and the next look at the stream trapped.
        let net = try establishedPair()
        let server = try XCTUnwrap(net.serverConnection)
        let id = try XCTUnwrap(server.openStream())
        try server.writeStream(id, [UInt8](repeating: 5, count: 3000), fin: true)
        while server.poll(now: net.now) != nil {}
        _ = try deliver([.stopSending(streamID: id, errorCode: 9)], in: net)
        while server.poll(now: net.now) != nil {}
        let largest = server.path.space.nextPacketNumber - 1
        _ = try deliver([.ack(AckFrame(ranges: [0...largest], ackDelay: 0))], in: net, later: 1)
        XCTAssertEqual(server.state, .established)
        XCTAssertNil(server.stats.closeError)
    }

    func testResetStreamCarriesTheBytesSentAsItsFinalSize() throws {
        // RFC 9000 §4.5: the final size is the number of bytes sent. Data written beyond the
        // peer's stream limit was never sent, so it must not count (the peer would see a
        // FLOW_CONTROL_ERROR).
        let net = try establishedPair(serverStreamWindow: 64 * 1024)
        let client = net.client
        let id = try XCTUnwrap(client.openStream())
        let window = try XCTUnwrap(net.serverConnection).config.initialMaxStreamData
        try client.writeStream(id, [UInt8](repeating: 1, count: Int(window) + 5000))
        XCTAssertTrue(net.run(for: .seconds(5)) { net.serverConnection?.testingSnapshot().streams[id]?.highestOffset == window })
        client.resetStream(id, errorCode: 3)
        XCTAssertTrue(net.run(for: .seconds(2)) { net.serverConnection?.testingSnapshot().streams[id]?.resetReceived ?? true })
        XCTAssertNil(net.serverConnection?.stats.closeError)
        XCTAssertEqual(net.serverConnection?.state, .established)
    }

    func testOverlappingOutOfOrderChunksAreNotBufferedTwice() throws {
        // RFC 9000 §4.1: a receiver buffers no more than its window. Three 800-byte chunks at
        // offsets 33, 34 and 35 cover 802 offsets; they used to be held as 2400 bytes.
        var buffer = ReceiveBuffer()
        let data = [UInt8](repeating: 7, count: 800)
        for offset: UInt64 in [33, 34, 35] { try buffer.insert(offset: offset, data: data[...], fin: false) }
        XCTAssertEqual(buffer.bufferedBytes, 802)
        // A chunk inside an existing one adds nothing; one spanning several replaces them.
        try buffer.insert(offset: 100, data: data[..<10], fin: false)
        XCTAssertEqual(buffer.bufferedBytes, 802)
        try buffer.insert(offset: 20, data: [UInt8](repeating: 7, count: 900)[...], fin: false)
        XCTAssertEqual(buffer.bufferedBytes, 900)
        // Filling the gap delivers every byte once, in order.
        try buffer.insert(offset: 0, data: [UInt8](repeating: 7, count: 20)[...], fin: false)
        XCTAssertEqual(buffer.readableBytes, 920)
        XCTAssertEqual(buffer.read(max: .max).count, 920)
        XCTAssertEqual(buffer.bufferedBytes, 0)
    }
}

extension ConnectionFuzzFindingsTests {
    /// A peer's max_idle_timeout is any varint: up to 2^62 ms would overflow the nanosecond
    /// conversion (found by reading, next to the fuzz findings). It is clamped; ours still rules.
    func testAHugePeerIdleTimeoutIsClampedNotATrap() throws {
        let net = try SimulatedNetwork(seed: 5)
        XCTAssertTrue(net.run(for: .seconds(5)) { net.client.handshakeConfirmed })
        var parameters = try XCTUnwrap(net.client.peerParameters)
        parameters.maxIdleTimeout = 1 << 61
        net.client.peerParameters = parameters
        net.client.resetIdleTimer(now: net.now)
        let deadline = try XCTUnwrap(net.client.idleDeadline)
        XCTAssertEqual(deadline - net.now, .seconds(30), "the smaller of the two timeouts (ours, 30 s)")
    }
}
