// RFC 9000 §17 packet headers as read before decryption (long headers §17.2, Version Negotiation
// §17.2.1, Initial/0-RTT/Handshake/Retry §17.2.2-17.2.5, short header §17.3.1, coalescing §12.2),
// the RFC 8999 invariants for unknown versions, and packet number encoding/decoding (§17.1,
// Appendix A.2/A.3).
import XCTest

@testable import QUIC

/// Hex to bytes (local name: the test target also has a module-level `hex`).
private func bytesFromHex(_ s: String) -> [UInt8] {
    let clean = Array(s.filter { !$0.isWhitespace })
    return stride(from: 0, to: clean.count, by: 2).map { UInt8(String(clean[$0...$0 + 1]), radix: 16)! }
}

/// Builds a long header packet: first byte, version, DCID, SCID, then (when given) a token with its
/// length prefix, a Length varint and `lengthCovers` bytes of packet number + payload (0x5a).
private func longPacket(
    first: UInt8, version: UInt32 = QUICVersion.v1, dcid: [UInt8], scid: [UInt8],
    token: [UInt8]? = nil, length: UInt64?, lengthCovers: Int? = nil
) -> [UInt8] {
    var w = ByteWriter()
    w.writeUInt8(first)
    w.writeUInt32(version)
    w.writeUInt8(UInt8(dcid.count))
    w.writeBytes(dcid)
    w.writeUInt8(UInt8(scid.count))
    w.writeBytes(scid)
    if let token {
        w.writeVarInt(UInt64(token.count))
        w.writeBytes(token)
    }
    if let length {
        w.writeVarInt(length)
        w.writeBytes([UInt8](repeating: 0x5a, count: lengthCovers ?? Int(length)))
    }
    return w.bytes
}

final class PacketHeaderTests: XCTestCase {
    private let dcid8: [UInt8] = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08]
    private let scid5: [UInt8] = [0xf0, 0x67, 0xa5, 0x50, 0x2a]

    /// RFC 9001 Appendix A.2: the client Initial's unprotected header (PN 2 in 4 bytes, Length 1182),
    /// followed by the payload so that the datagram is exactly 1200 bytes.
    private var rfc9001ClientInitial: [UInt8] {
        bytesFromHex("c300000001088394c8f03e5157080000449e00000002") + [UInt8](repeating: 0, count: 1178)
    }

    // MARK: - Long headers (RFC 9000 §17.2)

    func testInitial_RFC9001ClientInitialHeaderExposesDCIDAndPacketNumberOffset() throws {
        let datagram = rfc9001ClientInitial
        XCTAssertEqual(datagram.count, 1200)
        let h = try PacketHeader.parse(datagram, shortHeaderCIDLength: 8)
        XCTAssertTrue(h.isLongHeader)
        XCTAssertEqual(h.type, .initial)
        XCTAssertEqual(h.version, QUICVersion.v1)
        XCTAssertEqual(h.destinationConnectionID, ConnectionID(dcid8))
        XCTAssertEqual(h.sourceConnectionID, .empty)
        XCTAssertTrue(h.token.isEmpty, "Token Length 0 means no token")
        XCTAssertEqual(h.packetStart, 0)
        XCTAssertEqual(h.packetNumberOffset, 18, "the packet number follows the 2-byte Length field")
        XCTAssertEqual(h.packetEnd, 18 + 1182, "Length (1182) counts the packet number and payload")
    }

    func testInitial_tokenIsTheTokenLengthBytesBeforeLength() throws {
        let token: [UInt8] = Array("retry-or-new-token".utf8)
        let packet = longPacket(first: 0xc1, dcid: dcid8, scid: scid5, token: token, length: 40)
        let h = try PacketHeader.parse(packet, shortHeaderCIDLength: 8)
        XCTAssertEqual(h.type, .initial)
        XCTAssertEqual(Array(h.token), token)
        XCTAssertEqual(h.sourceConnectionID, ConnectionID(scid5))
        let expectedPNOffset = 1 + 4 + 1 + 8 + 1 + 5 + 1 + token.count + 1
        XCTAssertEqual(h.packetNumberOffset, expectedPNOffset)
        XCTAssertEqual(h.packetEnd, expectedPNOffset + 40)
        XCTAssertEqual(h.packetEnd, packet.count)
    }

    func testZeroRTT_hasNoTokenFieldAndLengthFollowsSCID() throws {
        // Type bits 01. A token-length-shaped byte here would be misread if 0-RTT had a token.
        let packet = longPacket(first: 0xd0, dcid: dcid8, scid: scid5, length: 25)
        let h = try PacketHeader.parse(packet, shortHeaderCIDLength: 8)
        XCTAssertEqual(h.type, .zeroRTT)
        XCTAssertTrue(h.token.isEmpty)
        XCTAssertEqual(h.packetNumberOffset, 1 + 4 + 1 + 8 + 1 + 5 + 1)
        XCTAssertEqual(h.packetEnd, packet.count)
    }

    func testHandshake_hasNoTokenFieldAndLengthFollowsSCID() throws {
        let packet = longPacket(first: 0xe2, dcid: [], scid: dcid8, length: 0x1234)
        let h = try PacketHeader.parse(packet, shortHeaderCIDLength: 0)
        XCTAssertEqual(h.type, .handshake)
        XCTAssertEqual(h.destinationConnectionID, .empty)
        XCTAssertEqual(h.sourceConnectionID, ConnectionID(dcid8))
        XCTAssertEqual(h.packetNumberOffset, 1 + 4 + 1 + 1 + 8 + 2, "a 2-byte Length varint")
        XCTAssertEqual(h.packetEnd, packet.count)
    }

    func testRetry_RFC9001A4TokenRunsUpToThe16ByteIntegrityTag() throws {
        let packet = bytesFromHex("ff000000010008f067a5502a4262b5746f6b656e04a265ba2eff4d829058fb3f0f2496ba")
        let h = try PacketHeader.parse(packet, shortHeaderCIDLength: 8)
        XCTAssertEqual(h.type, .retry)
        XCTAssertEqual(h.destinationConnectionID, .empty)
        XCTAssertEqual(h.sourceConnectionID, ConnectionID(bytesFromHex("f067a5502a4262b5")))
        XCTAssertEqual(Array(h.token), Array("token".utf8))
        XCTAssertEqual(Array(h.retryIntegrityTag), bytesFromHex("04a265ba2eff4d829058fb3f0f2496ba"))
        XCTAssertEqual(h.packetEnd, packet.count, "a Retry has no Length: it runs to the end of the datagram")
    }

    func testRetry_withFewerThan16BytesForTheIntegrityTagIsTruncated() {
        let header = bytesFromHex("f0000000010008f067a5502a4262b5")
        for tail in 0..<16 {
            let packet = header + [UInt8](repeating: 0xaa, count: tail)
            XCTAssertThrowsError(
                try PacketHeader.parse(packet, shortHeaderCIDLength: 8),
                "a Retry with \(tail) bytes after SCID has no room for its integrity tag"
            ) { error in
                XCTAssertEqual(error as? WireError, .truncated)
            }
        }
        XCTAssertNoThrow(
            try PacketHeader.parse(header + [UInt8](repeating: 0xaa, count: 16), shortHeaderCIDLength: 8),
            "an empty Retry token is a receiver decision (RFC 9000 §17.2.5.2), not a parse error")
    }

    func testVersionNegotiation_listsEverySupportedVersionAndIgnoresTheUnusedFirstByteBits() throws {
        // RFC 9000 §17.2.1: Version 0; the 7 bits after the header form bit are unused (arbitrary),
        // so even a clear fixed bit is accepted.
        let versions: [UInt32] = [0x0000_0001, 0x6b33_43cf, 0xff00_001d, 0x1a2a_3a4a]
        for first: UInt8 in [0x80, 0xc0, 0xbf, 0xff] {
            var packet = longPacket(first: first, version: 0, dcid: scid5, scid: dcid8, length: nil)
            var w = ByteWriter()
            for v in versions { w.writeUInt32(v) }
            packet += w.bytes
            let h = try PacketHeader.parse(packet, shortHeaderCIDLength: 5)
            XCTAssertEqual(h.type, .versionNegotiation, "first byte 0x\(String(first, radix: 16))")
            XCTAssertEqual(h.version, 0)
            XCTAssertEqual(h.supportedVersions, versions)
            XCTAssertEqual(h.destinationConnectionID, ConnectionID(scid5))
            XCTAssertEqual(h.sourceConnectionID, ConnectionID(dcid8))
            XCTAssertEqual(h.packetEnd, packet.count, "Version Negotiation runs to the end of the datagram")
        }
    }

    func testVersionNegotiation_aTrailingPartialVersionIsNotAVersion() throws {
        let packet = longPacket(first: 0x80, version: 0, dcid: [], scid: [], length: nil) + [0, 0, 0, 1, 0xff, 0]
        let h = try PacketHeader.parse(packet, shortHeaderCIDLength: 0)
        XCTAssertEqual(h.supportedVersions, [1])
        XCTAssertLessThanOrEqual(h.packetEnd, packet.count)
    }

    func testUnknownVersion_onlyTheRFC8999InvariantFieldsAreRead() throws {
        // Version-specific bytes after SCID (including what would be an absurd v1 Length) are not parsed,
        // and the version-specific first-byte bits (fixed bit included) are not checked.
        for first: UInt8 in [0xc0, 0x80, 0xff] {
            let packet =
                longPacket(first: first, version: 0x1a2a_3a4a, dcid: dcid8, scid: scid5, length: nil)
                + [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
            let h = try PacketHeader.parse(packet, shortHeaderCIDLength: 8)
            XCTAssertTrue(h.isLongHeader)
            XCTAssertEqual(h.version, 0x1a2a_3a4a, "the version is kept for Version Negotiation")
            XCTAssertFalse(QUICVersion.isSupported(h.version))
            XCTAssertEqual(h.destinationConnectionID, ConnectionID(dcid8))
            XCTAssertEqual(h.sourceConnectionID, ConnectionID(scid5))
            XCTAssertTrue(h.token.isEmpty)
            XCTAssertTrue(h.supportedVersions.isEmpty)
            XCTAssertEqual(h.packetNumberOffset, 1 + 4 + 1 + 8 + 1 + 5)
            XCTAssertEqual(h.packetEnd, packet.count)
        }
    }

    func testUnknownVersion_connectionIDsLongerThan20BytesCannotBeEchoedAndAreRejected() {
        // RFC 8999 allows up to 255 bytes; ConnectionID holds at most 20, so such a packet gets no
        // Version Negotiation (RFC 9000 §17.2 only says servers SHOULD be able to read them).
        let packet =
            longPacket(
                first: 0xc0, version: 0x1a2a_3a4a, dcid: [UInt8](repeating: 1, count: 21), scid: [],
                length: nil) + [UInt8](repeating: 0, count: 1200)
        XCTAssertThrowsError(try PacketHeader.parse(packet, shortHeaderCIDLength: 8))
    }

    // MARK: - Short header (RFC 9000 §17.3.1)

    func testShortHeader_DCIDIsTheLocallyChosenLengthFor0_8And20ByteConnectionIDs() throws {
        for cidLength in [0, 8, 20] {
            let cid = (0..<cidLength).map { UInt8($0 + 1) }
            let packet = [0x41] + cid + [UInt8](repeating: 0x77, count: 24)
            let h = try PacketHeader.parse(packet, shortHeaderCIDLength: cidLength)
            XCTAssertFalse(h.isLongHeader)
            XCTAssertEqual(h.type, .oneRTT)
            XCTAssertEqual(h.destinationConnectionID, ConnectionID(cid), "CID length \(cidLength)")
            XCTAssertEqual(h.sourceConnectionID, .empty)
            XCTAssertEqual(h.packetNumberOffset, 1 + cidLength)
            XCTAssertEqual(h.packetStart, 0)
            XCTAssertEqual(h.packetEnd, packet.count, "a short header packet runs to the end of the datagram")
        }
    }

    func testShortHeader_shorterThanTheConnectionIDIsTruncated() {
        let packet: [UInt8] = [0x40, 1, 2, 3, 4, 5, 6, 7]
        XCTAssertThrowsError(try PacketHeader.parse(packet, shortHeaderCIDLength: 8)) { error in
            XCTAssertEqual(error as? WireError, .truncated)
        }
    }

    func testShortHeader_withTheFixedBitClearIsDiscarded() {
        let packet: [UInt8] = [0x01] + [UInt8](repeating: 0x11, count: 30)
        XCTAssertThrowsError(
            try PacketHeader.parse(packet, shortHeaderCIDLength: 8),
            "RFC 9000 §17.3.1: packets with the fixed bit 0 are discarded")
    }

    // MARK: - Coalesced packets (RFC 9000 §12.2)

    func testCoalesced_packetEndOfEachLongHeaderPacketIsTheNextPacketsStart() throws {
        let initial = longPacket(first: 0xc3, dcid: dcid8, scid: scid5, token: [], length: 40)
        let handshake = longPacket(first: 0xe1, dcid: dcid8, scid: scid5, length: 300)
        let short = [0x43] + dcid8 + [UInt8](repeating: 0x33, count: 30)
        let datagram = initial + handshake + short

        var offsets: [(start: Int, end: Int, type: PacketType)] = []
        var offset = 0
        while offset < datagram.count {
            let h = try PacketHeader.parse(datagram, at: offset, shortHeaderCIDLength: 8)
            XCTAssertEqual(h.packetStart, offset)
            XCTAssertGreaterThan(h.packetEnd, offset)
            XCTAssertLessThanOrEqual(h.packetEnd, datagram.count)
            offsets.append((h.packetStart, h.packetEnd, h.type))
            offset = h.packetEnd
        }
        XCTAssertEqual(offsets.map(\.type), [.initial, .handshake, .oneRTT])
        XCTAssertEqual(offsets.map(\.start), [0, initial.count, initial.count + handshake.count])
        XCTAssertEqual(offsets.map(\.end), [initial.count, initial.count + handshake.count, datagram.count])
    }

    func testCoalesced_parsingAtTheEndOfTheDatagramIsTruncated() {
        let packet = longPacket(first: 0xe1, dcid: dcid8, scid: [], length: 20)
        XCTAssertThrowsError(try PacketHeader.parse(packet, at: packet.count, shortHeaderCIDLength: 8)) { error in
            XCTAssertEqual(error as? WireError, .truncated)
        }
    }

    // MARK: - Malformed input

    func testTruncatedInitial_everyPrefixOfTheRFC9001ClientInitialThrows() {
        let datagram = rfc9001ClientInitial
        for cut in 0..<datagram.count {
            let prefix = Array(datagram[..<cut])
            XCTAssertThrowsError(
                try PacketHeader.parse(prefix, shortHeaderCIDLength: 8),
                "an Initial cut to \(cut) of \(datagram.count) bytes must be rejected"
            ) { error in
                XCTAssertEqual(error as? WireError, .truncated, "cut at \(cut)")
            }
        }
    }

    func testTruncatedInitial_everyPrefixOfAnInitialWithTokenThrows() {
        let packet = longPacket(
            first: 0xc0, dcid: dcid8, scid: scid5, token: [UInt8](repeating: 0xee, count: 70),
            length: 1000)
        XCTAssertNoThrow(try PacketHeader.parse(packet, shortHeaderCIDLength: 8))
        for cut in 0..<packet.count {
            XCTAssertThrowsError(
                try PacketHeader.parse(Array(packet[..<cut]), shortHeaderCIDLength: 8),
                "cut at \(cut) of \(packet.count)")
        }
    }

    func testConnectionIDLength_v1DCIDOrSCIDLongerThan20BytesIsDropped() {
        // RFC 9000 §17.2: "Endpoints that receive a version 1 long header with a value larger than 20
        // MUST drop the packet."
        let long21 = [UInt8](repeating: 0xab, count: 21)
        let badDCID = longPacket(first: 0xc0, dcid: long21, scid: [], token: [], length: 30)
        let badSCID = longPacket(first: 0xc0, dcid: dcid8, scid: long21, token: [], length: 30)
        XCTAssertThrowsError(try PacketHeader.parse(badDCID, shortHeaderCIDLength: 8), "DCID length 21")
        XCTAssertThrowsError(try PacketHeader.parse(badSCID, shortHeaderCIDLength: 8), "SCID length 21")
        // 255 too: the length byte itself must not be trusted to index.
        var dcid255 = badDCID
        dcid255[5] = 0xff
        XCTAssertThrowsError(try PacketHeader.parse(dcid255, shortHeaderCIDLength: 8))

        let max20 = [UInt8](repeating: 0xab, count: 20)
        XCTAssertNoThrow(
            try PacketHeader.parse(
                longPacket(first: 0xc0, dcid: max20, scid: max20, token: [], length: 30),
                shortHeaderCIDLength: 8), "20 bytes is the v1 maximum and allowed")
    }

    func testLength_pointingBeyondTheDatagramIsTruncatedNotAPacketEndPastTheBuffer() {
        // Length says 100 but only 99 bytes follow: packetEnd would be past the datagram.
        let packet = longPacket(first: 0xe0, dcid: dcid8, scid: [], length: 100, lengthCovers: 99)
        XCTAssertThrowsError(try PacketHeader.parse(packet, shortHeaderCIDLength: 8)) { error in
            XCTAssertEqual(error as? WireError, .truncated)
        }
        // Same inside a coalesced datagram: a second packet whose Length overruns the datagram.
        let first = longPacket(first: 0xc0, dcid: dcid8, scid: [], token: [], length: 20)
        let datagram = first + packet
        XCTAssertThrowsError(try PacketHeader.parse(datagram, at: first.count, shortHeaderCIDLength: 8)) { error in
            XCTAssertEqual(error as? WireError, .truncated)
        }
    }

    func testLength_theLargestVarIntDoesNotOverflowPacketEnd() {
        var w = ByteWriter()
        w.writeVarInt(VarInt.max, length: 8)
        let packet = longPacket(first: 0xe0, dcid: dcid8, scid: [], length: nil) + w.bytes + [UInt8](repeating: 0, count: 64)
        XCTAssertThrowsError(try PacketHeader.parse(packet, shortHeaderCIDLength: 8)) { error in
            XCTAssertEqual(error as? WireError, .truncated)
        }
    }

    func testTokenLength_pointingBeyondTheDatagramIsTruncated() {
        var packet = longPacket(first: 0xc0, dcid: dcid8, scid: [], token: [1, 2, 3], length: 20)
        let tokenLengthIndex = 1 + 4 + 1 + 8 + 1
        packet[tokenLengthIndex] = 0x3f  // 63 bytes of token, but only 3 + Length + 20 follow
        XCTAssertThrowsError(try PacketHeader.parse(packet, shortHeaderCIDLength: 8)) { error in
            XCTAssertEqual(error as? WireError, .truncated)
        }
    }

    func testFixedBit_v1LongHeaderWithTheFixedBitClearIsDiscarded() {
        // RFC 9000 §17.2: Fixed Bit "MUST be set to 1 ... Packets containing a zero value for this
        // bit are not valid packets in this version and MUST be discarded."
        for first: UInt8 in [0x80, 0x90, 0xa0, 0xb0] {  // Initial, 0-RTT, Handshake, Retry
            let packet = longPacket(first: first, dcid: dcid8, scid: [], token: first == 0x80 ? [] : nil, length: 30)
            XCTAssertThrowsError(
                try PacketHeader.parse(packet, shortHeaderCIDLength: 8),
                "first byte 0x\(String(first, radix: 16))")
            XCTAssertNoThrow(try PacketHeader.parse([first | 0x40] + packet.dropFirst(), shortHeaderCIDLength: 8))
        }
    }

    func testLength_tooSmallForTheHeaderProtectionSampleIsRejected() {
        // RFC 9001 §5.4.2: the sample starts 4 bytes after the packet number offset and is 16 bytes,
        // so Length (packet number + payload) must be at least 20.
        for type: UInt8 in [0xc0, 0xd0, 0xe0] {
            for length: UInt64 in [0, 1, 4, 19] {
                let packet = longPacket(
                    first: type, dcid: dcid8, scid: [], token: type == 0xc0 ? [] : nil,
                    length: length, lengthCovers: 40)
                XCTAssertThrowsError(
                    try PacketHeader.parse(packet, shortHeaderCIDLength: 8),
                    "type 0x\(String(type, radix: 16)) Length \(length) leaves no room for the sample")
            }
            let ok = longPacket(first: type, dcid: dcid8, scid: [], token: type == 0xc0 ? [] : nil, length: 20)
            XCTAssertEqual(try PacketHeader.parse(ok, shortHeaderCIDLength: 8).packetEnd, ok.count)
        }
    }

    func testArbitraryBytes_neverCrashAndAcceptedHeadersStayInsideTheDatagram() {
        var rng = SplitMix64(seed: 0x9000_0017)
        let templates: [[UInt8]] = [
            rfc9001ClientInitial,
            bytesFromHex("ff000000010008f067a5502a4262b5746f6b656e04a265ba2eff4d829058fb3f0f2496ba"),
            [0x41] + dcid8 + [UInt8](repeating: 0, count: 30),
        ]
        for i in 0..<3000 {
            var packet = templates[i % templates.count]
            packet = Array(packet.prefix(Int(rng.next() % UInt64(packet.count + 1))))
            for _ in 0..<(rng.next() % 4) where !packet.isEmpty {
                packet[Int(rng.next() % UInt64(packet.count))] = UInt8(truncatingIfNeeded: rng.next())
            }
            let cidLength = Int(rng.next() % 21)
            guard let h = try? PacketHeader.parse(packet, shortHeaderCIDLength: cidLength) else { continue }
            XCTAssertEqual(h.packetStart, 0)
            XCTAssertGreaterThan(h.packetEnd, h.packetStart)
            XCTAssertLessThanOrEqual(h.packetEnd, packet.count)
            XCTAssertLessThanOrEqual(h.packetNumberOffset, h.packetEnd)
        }
    }

    // MARK: - Packet numbers (RFC 9000 §17.1, Appendix A.2/A.3)

    func testAppendixA2_pnAC5C02WithLargestAckedABE8B3Needs16Bits() {
        XCTAssertEqual(PacketNumberCoding.encodedLength(packetNumber: 0xac5c02, largestAcked: 0xabe8b3), 2)
    }

    func testAppendixA2_pnACE8FEWithLargestAckedABE8B3Needs24Bits() {
        XCTAssertEqual(PacketNumberCoding.encodedLength(packetNumber: 0xace8fe, largestAcked: 0xabe8b3), 3)
    }

    func testAppendixA3_9B32With16BitsAfterA82F30EADecodesToA82F9B32() {
        XCTAssertEqual(PacketNumberCoding.decode(largest: 0xa82f_30ea, truncated: 0x9b32, bits: 16), 0xa82f_9b32)
    }

    func testEncodedLength_representsMoreThanTwiceTheUnacknowledgedRange() {
        // RFC 9000 §17.1: "the sender MUST use a packet number size able to represent more than twice
        // as large a range as the difference between the largest acknowledged packet number and
        // packet number being sent", capped at 4 bytes.
        var rng = SplitMix64(seed: 171)
        for _ in 0..<20_000 {
            let largestAcked = rng.next() % (1 << 61)
            let gap = rng.next() >> (rng.next() % 64)
            let pn = largestAcked + 1 + min(gap, (1 << 61) - 1)
            let n = PacketNumberCoding.encodedLength(packetNumber: pn, largestAcked: largestAcked)
            XCTAssertTrue((1...4).contains(n))
            let range = pn - largestAcked
            if n < 4 {
                XCTAssertGreaterThan(UInt64(1) << UInt64(8 * n), 2 * range, "pn \(pn), largest acked \(largestAcked)")
            }
            if n > 1 {
                XCTAssertLessThanOrEqual(UInt64(1) << UInt64(8 * (n - 1)), 2 * range, "not longer than needed")
            }
        }
        // Nothing acknowledged yet: the range starts at packet number 0.
        XCTAssertEqual(PacketNumberCoding.encodedLength(packetNumber: 0, largestAcked: nil), 1)
        XCTAssertEqual(PacketNumberCoding.encodedLength(packetNumber: 126, largestAcked: nil), 1)
        XCTAssertEqual(PacketNumberCoding.encodedLength(packetNumber: 127, largestAcked: nil), 2)
        XCTAssertEqual(PacketNumberCoding.encodedLength(packetNumber: 1 << 40, largestAcked: nil), 4)
    }

    func testRoundTrip_decodeOfTheTruncatedPacketNumberRecoversIt() {
        // A receiver whose largest received is between the sender's largest acknowledged and the
        // packet being sent recovers the full number from encodedLength bytes (Appendix A.2/A.3).
        var rng = SplitMix64(seed: 0xa2a3)
        for i in 0..<50_000 {
            let gapBits = rng.next() % 32
            let gap = 1 + (rng.next() & ((1 << gapBits) - 1)) % ((1 << 31) - 1)  // 1...2^31-1 fits 4 bytes
            let largestAcked: UInt64?
            let pn: UInt64
            let largestReceived: UInt64?
            if i % 5 == 0 {
                // Nothing acknowledged yet: the range counts from packet number 0.
                largestAcked = nil
                pn = gap - 1
                largestReceived = pn == 0 || rng.next() % 2 == 0 ? nil : rng.next() % pn
            } else {
                largestAcked = rng.next() % ((1 << 62) - (1 << 32))
                pn = largestAcked! + gap
                largestReceived = largestAcked! + rng.next() % gap
            }
            let n = PacketNumberCoding.encodedLength(packetNumber: pn, largestAcked: largestAcked)
            let truncated = pn & ((1 << UInt64(8 * n)) - 1)
            let decoded = PacketNumberCoding.decode(largest: largestReceived, truncated: truncated, bits: 8 * n)
            XCTAssertEqual(
                decoded, pn,
                "pn \(pn) sent in \(n) bytes (largest acked \(String(describing: largestAcked))) "
                    + "decoded after largest received \(String(describing: largestReceived))")
            if decoded != pn { return }
        }
    }

    func testDecode_picksTheCandidateWithinHalfAWindowOfTheExpectedPacketNumber() {
        // Appendix A.3: the result is the value closest to largest + 1 with the given low bits,
        // i.e. in (expected - win/2, expected + win/2]; this includes reordered (older) packets.
        var rng = SplitMix64(seed: 0x17)
        for _ in 0..<50_000 {
            let bits = 8 * Int(1 + rng.next() % 4)
            let win = UInt64(1) << UInt64(bits)
            let hwin = win / 2
            let largest = hwin + rng.next() % ((1 << 62) - 2 * win - hwin)
            let expected = largest + 1
            let pn = expected - hwin + 1 + rng.next() % win  // (expected - hwin, expected + hwin]
            let decoded = PacketNumberCoding.decode(largest: largest, truncated: pn & (win - 1), bits: bits)
            XCTAssertEqual(decoded, pn, "\(bits)-bit pn \(pn) after largest \(largest)")
            if decoded != pn { return }
        }
    }

    func testDecode_doesNotGoBelowZeroOrReach2To62() {
        // Nothing received: the expected packet number is 0, so 0xff is 255 and not "-1".
        XCTAssertEqual(PacketNumberCoding.decode(largest: nil, truncated: 0xff, bits: 8), 0xff)
        XCTAssertEqual(PacketNumberCoding.decode(largest: 3, truncated: 0xfe, bits: 8), 0xfe)
        // Near 2^62 - 1 the wrap to the next window is refused (A.3 "candidate_pn < (1 << 62) - pn_win").
        let top: UInt64 = (1 << 62) - 1
        for bits in [8, 16, 24, 32] {
            let win = UInt64(1) << UInt64(bits)
            let decoded = PacketNumberCoding.decode(largest: top - 1, truncated: 0, bits: bits)
            XCTAssertLessThan(decoded, 1 << 62, "\(bits) bits")
            XCTAssertEqual(decoded, (1 << 62) - win)
        }
    }
}

/// Deterministic generator for the property tests (reproducible failures).
private struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
