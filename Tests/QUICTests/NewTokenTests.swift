import Congestion
// RFC 9000 §8.1.3: after the handshake the server gives the client a NEW_TOKEN token; a client that
// comes back (a router after a reboot or a WAN change) presents it and skips the Retry round trip.
// The token is bound to the client's IP address (not its port) and has its own lifetime.
import XCTest

@testable import QUIC

final class NewTokenTests: XCTestCase {
    private func connect(_ net: SimulatedNetwork) -> Bool {
        net.run(for: .seconds(5)) { net.client.handshakeConfirmed && net.serverConnection?.handshakeConfirmed == true }
    }

    func testAReturningClientSkipsRetryWithItsToken() throws {
        let net = try SimulatedNetwork(seed: 81, serverConfig: { $0.requireRetry = true })
        XCTAssertTrue(connect(net))
        // (A ClientHello with a post-quantum key share spans two Initial datagrams: each gets a Retry.)
        let retries = net.server.retriesSent
        XCTAssertGreaterThan(retries, 0, "the first connection goes through Retry")
        XCTAssertTrue(net.run(for: .seconds(1)) { net.client.newTokenReceived != nil }, "NEW_TOKEN arrives after the handshake")
        XCTAssertEqual(net.server.newTokensIssued, 1)
        let token = try XCTUnwrap(net.client.newTokenReceived)

        // Same IP, new port (a new socket after a reboot).
        try net.reconnectClient(token: token, from: SocketAddress(ip: [10, 0, 0, 1], port: 40123), seed: 900)
        let start = net.now
        XCTAssertTrue(connect(net))
        XCTAssertEqual(net.server.retriesSent, retries, "no Retry this time")
        XCTAssertEqual(net.server.newTokensAccepted, 1)
        XCTAssertLessThan(net.now - start, .milliseconds(60), "one round trip less: the handshake takes ~2 RTT (40 ms)")
    }

    func testATokenFromAnotherAddressOrTooOldMeansRetry() throws {
        let net = try SimulatedNetwork(
            seed: 82,
            serverConfig: {
                $0.requireRetry = true
                $0.newTokenLifetime = .seconds(3600)
            })
        XCTAssertTrue(connect(net))
        XCTAssertTrue(net.run(for: .seconds(1)) { net.client.newTokenReceived != nil })
        let token = try XCTUnwrap(net.client.newTokenReceived)
        var retries = net.server.retriesSent

        try net.reconnectClient(token: token, from: SocketAddress(ip: [10, 0, 0, 9], port: 40000), seed: 901)
        XCTAssertTrue(connect(net), "another address: the token is refused but the client still gets in, through Retry")
        XCTAssertGreaterThan(net.server.retriesSent, retries)
        retries = net.server.retriesSent
        let rejected = net.server.tokensRejected
        XCTAssertGreaterThan(rejected, 0)

        net.now = net.now + .seconds(3601)
        try net.reconnectClient(token: token, from: SocketAddress(ip: [10, 0, 0, 1], port: 40000), seed: 902)
        XCTAssertTrue(connect(net), "an expired token: Retry again")
        XCTAssertGreaterThan(net.server.retriesSent, retries)
        XCTAssertGreaterThan(net.server.tokensRejected, rejected)
        XCTAssertEqual(net.server.newTokensAccepted, 0)
    }

    func testANewTokenIsNotARetryToken() throws {
        let net = try SimulatedNetwork(seed: 83)
        XCTAssertTrue(connect(net))
        XCTAssertTrue(net.run(for: .seconds(1)) { net.client.newTokenReceived != nil })
        let protector = AddressTokenProtector(key: net.server.configuration.tokenKey)
        let opened = try XCTUnwrap(protector.open(try XCTUnwrap(net.client.newTokenReceived)))
        XCTAssertEqual(opened.kind, .newToken)
        XCTAssertEqual(opened.originalDestinationConnectionID, .empty, "it carries no connection IDs a Retry token would need")
    }
}
