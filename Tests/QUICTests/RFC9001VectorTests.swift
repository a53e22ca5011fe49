// RFC 9001 Appendix A: Initial secrets, client/server Initial packets, Retry integrity, ChaCha20
// short header; and the multipath nonce example of draft-ietf-quic-multipath.
import XCTest

@testable import QUIC

func hex(_ s: String) -> [UInt8] {
    let clean = s.filter { !$0.isWhitespace }
    var out: [UInt8] = []
    out.reserveCapacity(clean.count / 2)
    var it = clean.makeIterator()
    while let a = it.next(), let b = it.next() { out.append(UInt8(String([a, b]), radix: 16)!) }
    return out
}

final class RFC9001VectorTests: XCTestCase {
    let dcid = ConnectionID(hex("8394c8f03e515708"))

    func testA1InitialSecretsAndKeys() {
        let s = KeySchedule.initialSecrets(destinationConnectionID: dcid)
        XCTAssertEqual(s.client, hex("c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea"), "client_initial_secret")
        XCTAssertEqual(s.server, hex("3c199828fd139efd216c155ad844cc81fb82fa8d7446fa7d78be803acdda951b"), "server_initial_secret")
        let c = KeySchedule.packetKeyMaterial(secret: s.client, suite: .aes128GCMSHA256)
        XCTAssertEqual(c.key, hex("1f369613dd76d5467730efcbe3b1a22d"))
        XCTAssertEqual(c.iv, hex("fa044b2f42a3fd3b46fb255c"))
        XCTAssertEqual(c.hp, hex("9f50449e04a0e810283a1e9933adedd2"))
        let sv = KeySchedule.packetKeyMaterial(secret: s.server, suite: .aes128GCMSHA256)
        XCTAssertEqual(sv.key, hex("cf3a5331653c364c88f0f379b6067e37"))
        XCTAssertEqual(sv.iv, hex("0ac1493ca1905853b0bba03e"))
        XCTAssertEqual(sv.hp, hex("c206b8d9b9f0f37644430b490eeaa314"))
    }

    /// Seals `header + payload` and checks the exact protected bytes, then opens them again.
    private func checkRoundTrip(
        header: [UInt8], payload: [UInt8], pn: UInt64, pnOffset: Int, keys: PacketKeys,
        readKeys: PacketKeys, expected: [UInt8], shortCIDLength: Int = 0,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        var buf = header + payload
        let pnLength = Int(header[0] & 0x03) + 1
        let end = PacketProtection.seal(
            &buf, start: 0, pnOffset: pnOffset, pnLength: pnLength, payloadEnd: buf.count,
            packetNumber: pn, keys: keys)
        XCTAssertEqual(Array(buf[0..<end]), expected, "protected packet differs from the RFC", file: file, line: line)

        var rx = expected
        guard let h = try? PacketHeader.parse(rx, shortHeaderCIDLength: shortCIDLength) else {
            return XCTFail("header did not parse", file: file, line: line)
        }
        XCTAssertEqual(h.packetNumberOffset, pnOffset, file: file, line: line)
        guard let hp = PacketProtection.removeHeaderProtection(&rx, header: h, hp: readKeys.headerProtection) else {
            return XCTFail("header protection removal failed", file: file, line: line)
        }
        let fullPN = PacketNumberCoding.decode(largest: pn > 0 ? pn - 1 : nil, truncated: hp.truncatedPN, bits: hp.pnLength * 8)
        XCTAssertEqual(fullPN, pn, file: file, line: line)
        guard let payloadEnd = PacketProtection.openPayload(&rx, header: h, pnLength: hp.pnLength, packetNumber: fullPN, keys: readKeys)
        else {
            return XCTFail("AEAD open failed", file: file, line: line)
        }
        XCTAssertEqual(Array(rx[0..<(pnOffset + hp.pnLength)]), header, "unprotected header", file: file, line: line)
        XCTAssertEqual(Array(rx[(pnOffset + hp.pnLength)..<payloadEnd]), payload, "decrypted payload", file: file, line: line)
    }

    func testA2ClientInitial() {
        let header = hex("c300000001088394c8f03e5157080000449e00000002")
        let payload = hex(RFCVectors.clientInitialPayload) + [UInt8](repeating: 0, count: 917)
        let client = PacketKeys.initial(destinationConnectionID: dcid, isServer: false)
        let server = PacketKeys.initial(destinationConnectionID: dcid, isServer: true)
        checkRoundTrip(
            header: header, payload: payload, pn: 2, pnOffset: 18, keys: client.write, readKeys: server.read,
            expected: hex(RFCVectors.clientInitialProtected))
    }

    func testA3ServerInitial() {
        let header = hex("c1000000010008f067a5502a4262b50040750001")
        let payload = hex(RFCVectors.serverInitialPayload)
        let client = PacketKeys.initial(destinationConnectionID: dcid, isServer: false)
        let server = PacketKeys.initial(destinationConnectionID: dcid, isServer: true)
        checkRoundTrip(
            header: header, payload: payload, pn: 1, pnOffset: 18, keys: server.write, readKeys: client.read,
            expected: hex(RFCVectors.serverInitialProtected))
    }

    func testA4RetryIntegrityTag() throws {
        let retry = hex("ff000000010008f067a5502a4262b5746f6b656e04a265ba2eff4d829058fb3f0f2496ba")
        let tag = RetryIntegrity.tag(originalDestinationConnectionID: dcid, retryWithoutTag: retry[0..<(retry.count - 16)])
        XCTAssertEqual(tag, Array(retry[(retry.count - 16)...]), "Retry Integrity Tag")
        XCTAssertTrue(RetryIntegrity.isValid(originalDestinationConnectionID: dcid, retryPacket: retry))
        var tampered = retry
        tampered[10] ^= 1
        XCTAssertFalse(RetryIntegrity.isValid(originalDestinationConnectionID: dcid, retryPacket: tampered))
        let h = try PacketHeader.parse(retry, shortHeaderCIDLength: 0)
        XCTAssertEqual(h.type, .retry)
        XCTAssertEqual(Array(h.token), Array("token".utf8))
        XCTAssertEqual(h.sourceConnectionID, ConnectionID(hex("f067a5502a4262b5")))
    }

    func testA5ChaCha20ShortHeader() {
        let secret = hex("9ac312a7f877468ebe69422748ad00a15443f18203a07d6060f688f30f21632b")
        let m = KeySchedule.packetKeyMaterial(secret: secret, suite: .chacha20Poly1305SHA256)
        XCTAssertEqual(m.key, hex("c6d98ff3441c3fe1b2182094f69caa2ed4b716b65488960a7a984979fb23e1c8"))
        XCTAssertEqual(m.iv, hex("e0459b3474bdd0e44a41c144"))
        XCTAssertEqual(m.hp, hex("25a282b9e82f06f21f488917a4fc8f1b73573685608597d0efcb076b0ab7a7a4"))
        XCTAssertEqual(
            KeySchedule.nextGenerationSecret(secret, suite: .chacha20Poly1305SHA256),
            hex("1223504755036d556342ee9361d253421a826c9ecdf3c7148684b36b714881f9"), "quic ku")
        let keys = PacketKeys(secret: secret, suite: .chacha20Poly1305SHA256)
        let pn: UInt64 = 654_360_564
        checkRoundTrip(
            header: hex("4200bff4"), payload: [0x01], pn: pn, pnOffset: 1, keys: keys, readKeys: keys,
            expected: hex("4cfe4189655e5cd55c41f69080575d7999c25a5bfb"))
    }

    func testMultipathNonceIncludesPathID() {
        // draft-ietf-quic-multipath §2.4 example: IV 6b26114b9cba2b63a9e8dd4f, path 3, PN 54321.
        let aead = PacketAEAD(suite: .aes128GCMSHA256, key: [UInt8](repeating: 0, count: 16), iv: hex("6b26114b9cba2b63a9e8dd4f"))
        XCTAssertEqual(aead.nonce(packetNumber: 54321, pathID: 3), hex("6b2611489cba2b63a9e8097e"))
        XCTAssertEqual(aead.nonce(packetNumber: 54321, pathID: 0), hex("6b26114b9cba2b63a9e8097e"))
    }

    func testAEADRejectsTamperedPacket() {
        let keys = PacketKeys(secret: [UInt8](repeating: 7, count: 32), suite: .aes256GCMSHA384)
        var buf = hex("4200bff4") + [UInt8](repeating: 0xab, count: 40)
        let end = PacketProtection.seal(&buf, start: 0, pnOffset: 1, pnLength: 3, payloadEnd: buf.count, packetNumber: 5, keys: keys)
        var good = Array(buf[0..<end])
        var bad = good
        bad[20] ^= 0x01
        let h = try! PacketHeader.parse(good, shortHeaderCIDLength: 0)
        let hp1 = PacketProtection.removeHeaderProtection(&good, header: h, hp: keys.headerProtection)!
        XCTAssertNotNil(PacketProtection.openPayload(&good, header: h, pnLength: hp1.pnLength, packetNumber: 5, keys: keys))
        let hp2 = PacketProtection.removeHeaderProtection(&bad, header: h, hp: keys.headerProtection)!
        XCTAssertNil(
            PacketProtection.openPayload(&bad, header: h, pnLength: hp2.pnLength, packetNumber: 5, keys: keys),
            "a flipped ciphertext bit must fail authentication")
    }

    func testPacketNumberDecodingAppendixA3() {
        // RFC 9000 Appendix A.3 example: largest 0xa82f30ea, truncated 0x9b32 (16 bits) → 0xa82f9b32.
        XCTAssertEqual(PacketNumberCoding.decode(largest: 0xa82f_30ea, truncated: 0x9b32, bits: 16), 0xa82f_9b32)
        // RFC 9000 Appendix A.2 example: largest acked 0xabe8b3, sending 0xac5c02 needs 16 bits.
        XCTAssertEqual(PacketNumberCoding.encodedLength(packetNumber: 0xac5c02, largestAcked: 0xabe8b3), 2)
        XCTAssertEqual(PacketNumberCoding.encodedLength(packetNumber: 0xace8fe, largestAcked: 0xabe8b3), 3)
        XCTAssertEqual(PacketNumberCoding.decode(largest: nil, truncated: 0, bits: 8), 0)
    }
}
