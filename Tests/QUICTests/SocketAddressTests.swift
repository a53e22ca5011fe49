// SocketAddress keeps its address bytes inline (no array per received datagram); it must still
// round-trip, compare and hash as the address it holds, and parse and print the usual forms.
import XCTest

@testable import QUIC

final class SocketAddressTests: XCTestCase {
    func testBytesRoundTripAndEquality() {
        let v4 = SocketAddress(ip: [192, 0, 2, 7], port: 443)
        XCTAssertEqual(v4.ip, [192, 0, 2, 7])
        XCTAssertFalse(v4.isIPv6)
        XCTAssertEqual(v4.ipByte(3), 7)
        let v6bytes: [UInt8] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34]
        let v6 = SocketAddress(ip: v6bytes, port: 443)
        XCTAssertEqual(v6.ip, v6bytes)
        XCTAssertTrue(v6.isIPv6)
        XCTAssertEqual(v6bytes.withUnsafeBytes { SocketAddress(ipBytes: $0, port: 443) }, v6)
        // Same bytes, other family or port: different addresses.
        XCTAssertNotEqual(SocketAddress(ip: [0, 0, 0, 0], port: 1), SocketAddress(ip: [UInt8](repeating: 0, count: 16), port: 1))
        XCTAssertNotEqual(v4, SocketAddress(ip: [192, 0, 2, 7], port: 444))
        XCTAssertNotEqual(v4, SocketAddress(ip: [192, 0, 2, 8], port: 443))
        XCTAssertEqual(Set([v4, SocketAddress(ip: [192, 0, 2, 7], port: 443), v6]).count, 2)
    }

    func testParsingAndPrinting() throws {
        XCTAssertEqual(try XCTUnwrap(SocketAddress("10.1.2.3:4433")).description, "10.1.2.3:4433")
        XCTAssertEqual(try XCTUnwrap(SocketAddress("[2001:db8::1234]:443")).description, "[2001:db8::1234]:443")
        XCTAssertEqual(try XCTUnwrap(SocketAddress("[::1]:9")).ip, [UInt8](repeating: 0, count: 15) + [1])
        XCTAssertNil(SocketAddress("10.1.2:4433"))
        XCTAssertNil(SocketAddress("[2001:db8::1::2]:443"))
    }
}
