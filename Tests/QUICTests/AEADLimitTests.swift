import Congestion
// RFC 9001 §6.6: the AEAD limits. A key's confidentiality limit (packets sealed) makes the
// endpoint update keys well before it is reached; its integrity limit (packets that failed
// authentication) ends the connection with AEAD_LIMIT_REACHED. The limits (2^23 and 2^52 for
// AES-GCM) are far beyond a test's reach, so the counters are set close to them.
import XCTest

@testable import QUIC

final class AEADLimitTests: XCTestCase {
    private func establishedNetwork() throws -> (SimulatedNetwork, Connection) {
        let net = try SimulatedNetwork(seed: 61)
        XCTAssertTrue(net.run(for: .seconds(10)) { net.client.handshakeConfirmed && net.serverConnection?.handshakeConfirmed == true })
        return (net, try XCTUnwrap(net.serverConnection))
    }

    func testForgedPacketsUpToTheIntegrityLimitCloseTheConnection() throws {
        let (net, server) = try establishedNetwork()
        let keys = try XCTUnwrap(server.readKeys[EncryptionLevel.application.rawValue])
        keys.usageCount = keys.suite.integrityLimit - 2
        let failuresBefore = server.stats.decryptionFailures
        for i in 0..<2 {
            try net.client.sendDatagram([UInt8(i), 2, 3])
            let t = try XCTUnwrap(net.client.poll(now: net.now))
            var forged = t.bytes
            forged[forged.count - 1] ^= 0x01  // the AEAD tag no longer matches
            server.receive(datagram: &forged, from: net.clientAddress, now: net.now)
            if i == 0 {
                XCTAssertNil(server.closeReason, "one failure below the limit is only counted")
            }
        }
        XCTAssertEqual(server.stats.decryptionFailures, failuresBefore + 2)
        guard case .localTransport(let code, _)? = server.closeReason else {
            return XCTFail("expected a local transport close, got \(String(describing: server.closeReason))")
        }
        XCTAssertEqual(code, .aeadLimitReached)
    }

    func testNearingTheConfidentialityLimitUpdatesTheKeys() throws {
        let (net, _) = try establishedNetwork()
        let keys = try XCTUnwrap(net.client.writeKeys[EncryptionLevel.application.rawValue])
        let phase = net.client.keyPhase
        keys.usageCount = keys.suite.confidentialityLimit / 2
        try net.client.sendDatagram([1, 2, 3])
        XCTAssertTrue(net.run(for: .seconds(5)) { net.client.keyUpdatesCompleted > 0 })
        XCTAssertNotEqual(net.client.keyPhase, phase, "half the confidentiality limit starts a key update")
        XCTAssertFalse(net.client.isClosed)
        let fresh = try XCTUnwrap(net.client.writeKeys[EncryptionLevel.application.rawValue])
        XCTAssertFalse(fresh === keys, "new packets are sealed with the next generation's key")
        XCTAssertLessThan(fresh.usageCount, 100)
    }
}
