import XCTest

@testable import QUIC

final class IPPrefixTests: XCTestCase {
    func testParsesAndMatches() throws {
        let p = try XCTUnwrap(IPPrefix("10.8.0.1/24"))
        XCTAssertEqual(p.length, 24)
        XCTAssertEqual(p.description, "10.8.0.1/24")
        XCTAssertEqual(p.network.description, "10.8.0.0/24")
        XCTAssertTrue(p.contains(SocketAddress("10.8.0.200:0")!))
        XCTAssertFalse(p.contains(SocketAddress("10.8.1.1:0")!))
        let odd = try XCTUnwrap(IPPrefix("192.168.1.130/25"))
        XCTAssertEqual(odd.network.description, "192.168.1.128/25")
        XCTAssertTrue(odd.contains(SocketAddress("192.168.1.255:0")!))
        XCTAssertFalse(odd.contains(SocketAddress("192.168.1.127:0")!))
        let v6 = try XCTUnwrap(IPPrefix("fd00:8::/64"))
        XCTAssertTrue(v6.contains(SocketAddress("[fd00:8::1234]:0")!))
        XCTAssertFalse(v6.contains(SocketAddress("[fd00:9::1]:0")!))
        XCTAssertFalse(v6.contains(SocketAddress("10.8.0.1:0")!), "families never match")
        XCTAssertEqual(IPPrefix("10.0.0.7")?.length, 32)
        XCTAssertEqual(IPPrefix("0.0.0.0/0")?.contains(SocketAddress("1.2.3.4:0")!), true)
    }

    func testRejectsMalformed() {
        for bad in ["10.8.0.0/33", "10.8.0.0/", "10.8.0.0/+4", "10.8.0/24", "fd00::/129", "x/8", "10.0.0.0/8/8", ""] {
            XCTAssertNil(IPPrefix(bad), bad)
        }
    }

    func testOverlaps() {
        XCTAssertTrue(IPPrefix("10.0.0.0/8")!.overlaps(IPPrefix("10.8.0.0/24")!))
        XCTAssertTrue(IPPrefix("10.8.0.0/24")!.overlaps(IPPrefix("10.0.0.0/8")!))
        XCTAssertFalse(IPPrefix("10.8.0.0/24")!.overlaps(IPPrefix("10.9.0.0/24")!))
        XCTAssertFalse(IPPrefix("10.8.0.0/24")!.overlaps(IPPrefix("fd00::/8")!))
    }
}
