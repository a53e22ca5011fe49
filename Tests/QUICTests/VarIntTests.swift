import XCTest

@testable import QUIC

/// RFC 9000 §16 variable-length integers and Appendix A.1 sample encodings.
final class VarIntTests: XCTestCase {
    private func decode(_ bytes: [UInt8]) throws -> (value: UInt64, consumed: Int) {
        var r = ByteReader(bytes)
        let v = try r.readVarInt()
        return (v, r.position)
    }

    func testAppendixA1_eightByteExampleDecodesTo151288809941952652() throws {
        let (v, n) = try decode([0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c])
        XCTAssertEqual(v, 151_288_809_941_952_652, "RFC 9000 A.1: 0xc2197c5eff14e88c decodes to 151288809941952652")
        XCTAssertEqual(n, 8)
    }

    func testAppendixA1_fourByteExampleDecodesTo494878333() throws {
        let (v, n) = try decode([0x9d, 0x7f, 0x3e, 0x7d])
        XCTAssertEqual(v, 494_878_333, "RFC 9000 A.1: 0x9d7f3e7d decodes to 494878333")
        XCTAssertEqual(n, 4)
    }

    func testAppendixA1_twoByteExampleDecodesTo15293() throws {
        let (v, n) = try decode([0x7b, 0xbd])
        XCTAssertEqual(v, 15293, "RFC 9000 A.1: 0x7bbd decodes to 15293")
        XCTAssertEqual(n, 2)
    }

    func testAppendixA1_oneByteExampleDecodesTo37() throws {
        let (v, n) = try decode([0x25])
        XCTAssertEqual(v, 37, "RFC 9000 A.1: 0x25 decodes to 37")
        XCTAssertEqual(n, 1)
    }

    func testAppendixA1_nonMinimalTwoByteEncodingOf37IsAccepted() throws {
        let (v, n) = try decode([0x40, 0x25])
        XCTAssertEqual(v, 37, "RFC 9000 A.1: 0x4025 also decodes to 37 (values need not use the minimal encoding)")
        XCTAssertEqual(n, 2)
    }

    func testAppendixA1_examplesReEncodeToTheirMinimalForm() {
        XCTAssertEqual(VarInt.encode(151_288_809_941_952_652), [0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c])
        XCTAssertEqual(VarInt.encode(494_878_333), [0x9d, 0x7f, 0x3e, 0x7d])
        XCTAssertEqual(VarInt.encode(15293), [0x7b, 0xbd])
        XCTAssertEqual(VarInt.encode(37), [0x25], "RFC 9000 §16: the writer uses the shortest encoding of 37")
    }

    func testWriterUsesTheShortestEncodingAtEveryLengthBoundary() throws {
        let cases: [(UInt64, Int)] = [
            (0, 1), (63, 1), (64, 2), (16383, 2), (16384, 4),
            ((1 << 30) - 1, 4), (1 << 30, 8), ((1 << 62) - 1, 8),
        ]
        for (value, expectedLength) in cases {
            let bytes = VarInt.encode(value)
            XCTAssertEqual(bytes.count, expectedLength, "RFC 9000 §16: \(value) takes \(expectedLength) bytes at minimum")
            XCTAssertEqual(VarInt.encodedLength(value), expectedLength)
            let (decoded, consumed) = try decode(bytes)
            XCTAssertEqual(decoded, value, "round trip of \(value)")
            XCTAssertEqual(consumed, expectedLength)
        }
    }

    func testLargestVarIntIs2ToThe62MinusOne() {
        XCTAssertEqual(VarInt.max, (1 << 62) - 1)
        XCTAssertEqual(VarInt.encode(VarInt.max), [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
    }

    func testTruncatedVarIntThrowsTruncated() {
        for bytes: [UInt8] in [[], [0x40], [0x80, 0, 0], [0xc0, 0, 0, 0, 0, 0, 0]] {
            var r = ByteReader(bytes)
            XCTAssertThrowsError(try r.readVarInt(), "a varint cut short (\(bytes)) must throw") { error in
                XCTAssertEqual(error as? WireError, .truncated)
            }
        }
    }
}
