// Tunnel identities: Ed25519 keys in base64, self-signed certificates made from them, and mutual
// TLS where each side pins the other's key (the router pins the VPS, the VPS asks its tenants).
import XCTest

@testable import QUIC

final class TunnelKeyTests: XCTestCase {
    func testBase64RoundTripAndRejects() throws {
        let k = TunnelKey.generate()
        XCTAssertEqual(k.base64.count, 44)
        XCTAssertEqual(TunnelKey(base64: k.base64), k)
        XCTAssertEqual(TunnelKey.publicKey(base64: k.publicKeyBase64), k.publicKey)
        XCTAssertNotEqual(TunnelKey.generate(), k)
        for bad in ["", "abc", String(k.base64.dropLast()), k.base64 + "AAAA", "!!!!" + k.base64.dropFirst(4)] {
            XCTAssertNil(TunnelKey(base64: bad), bad)
        }
    }

    /// RFC 8032 §7.1 TEST 1: the seed's public key.
    func testRFC8032PublicKey() throws {
        let seed = hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
        XCTAssertEqual(TunnelKey(seed: seed)?.publicKey, hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"))
    }

    /// The pin computed from the bare public key equals the SHA-256 of the SubjectPublicKeyInfo
    /// the certificate carries.
    func testPinMatchesCertificateKey() throws {
        let k = TunnelKey.generate()
        XCTAssertEqual(try k.certificateKeyPin(), k.pin)
    }

    private func tls(_ key: TunnelKey, verification: TLSConfiguration.PeerVerification) -> TLSConfiguration {
        var c = TLSConfiguration(alpnProtocols: ["tquic-test"])
        c.identity = key
        c.verification = verification
        return c
    }

    func testMutualPinnedHandshakeIdentifiesTheTenant() throws {
        let vps = TunnelKey.generate()
        let router = TunnelKey.generate()
        let routerPin = router.pin
        let net = try SimulatedNetwork(
            seed: 5,
            serverTLS: tls(vps, verification: .pinnedBy { $0 == routerPin }),
            clientTLS: tls(router, verification: .pinnedPublicKeySHA256([vps.pin])))
        XCTAssertTrue(net.run(for: .seconds(5)) { net.client.handshakeConfirmed })
        XCTAssertEqual(net.serverConnection?.peerPublicKeySHA256, router.pin)
        XCTAssertEqual(net.client.peerPublicKeySHA256, vps.pin)
    }

    func testServerRefusesAnUnknownKey() throws {
        let vps = TunnelKey.generate()
        let stranger = TunnelKey.generate()
        let tenant = TunnelKey.generate().pin
        let net = try SimulatedNetwork(
            seed: 6,
            serverTLS: tls(vps, verification: .pinnedBy { $0 == tenant }),
            clientTLS: tls(stranger, verification: .pinnedPublicKeySHA256([vps.pin])))
        _ = net.run(for: .seconds(5)) { net.client.isClosed }
        XCTAssertFalse(net.client.handshakeConfirmed)
        XCTAssertTrue(net.client.isClosed, "the client learns it was refused")
    }

    func testServerRefusesAClientWithoutCertificate() throws {
        let vps = TunnelKey.generate()
        var anonymous = TLSConfiguration(alpnProtocols: ["tquic-test"])
        anonymous.verification = .pinnedPublicKeySHA256([vps.pin])
        let net = try SimulatedNetwork(seed: 7, serverTLS: tls(vps, verification: .pinnedBy { _ in true }), clientTLS: anonymous)
        _ = net.run(for: .seconds(5)) { net.client.isClosed }
        XCTAssertFalse(net.client.handshakeConfirmed)
    }

    func testClientRefusesAServerWithAnotherKey() throws {
        let vps = TunnelKey.generate()
        let impostor = TunnelKey.generate()
        let router = TunnelKey.generate()
        let net = try SimulatedNetwork(
            seed: 8,
            serverTLS: tls(impostor, verification: .pinnedBy { _ in true }),
            clientTLS: tls(router, verification: .pinnedPublicKeySHA256([vps.pin])))
        _ = net.run(for: .seconds(5)) { net.client.isClosed }
        XCTAssertFalse(net.client.handshakeConfirmed)
        XCTAssertTrue(net.client.isClosed)
    }

    private func hex(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        var i = s.startIndex
        while i < s.endIndex {
            let j = s.index(i, offsetBy: 2)
            out.append(UInt8(s[i..<j], radix: 16)!)
            i = j
        }
        return out
    }
}
