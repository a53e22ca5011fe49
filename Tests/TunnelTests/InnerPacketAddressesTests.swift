import QUIC
// Reading an inner packet's addresses in place, and which packets never leave their link.
import XCTest

@testable import Tunnel

final class InnerPacketAddressesTests: XCTestCase {
    func v4(dst: [UInt8]) -> [UInt8] { TunnelHarness.ipv4(from: [192, 168, 1, 10], to: dst) }
    func v6(dst: String) -> [UInt8] {
        var p = [UInt8](repeating: 0, count: 60)
        p[0] = 0x60
        p[6] = 17
        p[7] = 64
        p.replaceSubrange(8..<24, with: SocketAddress("[fd01::2]:0")!.ip)
        p.replaceSubrange(24..<40, with: SocketAddress("[\(dst)]:0")!.ip)
        return p
    }

    func testAddresses() {
        v4(dst: [203, 0, 113, 9]).withUnsafeBytes { p in
            XCTAssertEqual(InnerPacketAddresses.source(of: p).map(Array.init), [192, 168, 1, 10])
            XCTAssertEqual(InnerPacketAddresses.destination(of: p).map(Array.init), [203, 0, 113, 9])
        }
        v6(dst: "2001:db8::1").withUnsafeBytes { p in
            XCTAssertEqual(InnerPacketAddresses.source(of: p).map(Array.init), SocketAddress("[fd01::2]:0")!.ip)
            XCTAssertEqual(InnerPacketAddresses.destination(of: p).map(Array.init), SocketAddress("[2001:db8::1]:0")!.ip)
        }
        for bad: [UInt8] in [
            [], [0x45], [0x46] + [UInt8](repeating: 0, count: 20), [0x60] + [UInt8](repeating: 0, count: 30), [0x20, 0, 0],
        ] {
            bad.withUnsafeBytes { XCTAssertNil(InnerPacketAddresses.source(of: $0), "\(bad.prefix(2))") }
        }
    }

    func testLinkScoped() {
        for d in ["ff02::16", "ff02::1:ff00:2", "fe80::1", "ff01::1"] {
            v6(dst: d).withUnsafeBytes { XCTAssertTrue(InnerPacketAddresses.isLinkScoped($0), d) }
        }
        for d in ["2001:db8::1", "ff05::2", "ff0e::1", "fd00:8::1"] {
            v6(dst: d).withUnsafeBytes { XCTAssertFalse(InnerPacketAddresses.isLinkScoped($0), d) }
        }
        for d: [UInt8] in [[224, 0, 0, 22], [255, 255, 255, 255]] {
            v4(dst: d).withUnsafeBytes { XCTAssertTrue(InnerPacketAddresses.isLinkScoped($0), "\(d)") }
        }
        for d: [UInt8] in [[224, 0, 1, 1], [10, 202, 0, 2]] {
            v4(dst: d).withUnsafeBytes { XCTAssertFalse(InnerPacketAddresses.isLinkScoped($0), "\(d)") }
        }
    }
}
