import QUIC
// ICMP "fragmentation needed" / ICMPv6 "packet too big" for inner packets the tunnel cannot
// carry: the right type, code and MTU, valid checksums, the quoted original, and silence where
// the RFCs forbid an answer.
import XCTest

@testable import Tunnel

final class PacketTooBigTests: XCTestCase {

    func ipv4(size: Int = 1500, df: Bool = true, protocol proto: UInt8 = 6, src: [UInt8] = [192, 168, 1, 10]) -> [UInt8] {
        var p = [UInt8](repeating: 0xab, count: size)
        p[0] = 0x45
        p[1] = 0
        p[2] = UInt8(size >> 8)
        p[3] = UInt8(size & 0xff)
        p[6] = df ? 0x40 : 0
        p[7] = 0
        p[8] = 64
        p[9] = proto
        p.replaceSubrange(12..<16, with: src)
        p.replaceSubrange(16..<20, with: [203, 0, 113, 9])
        return p
    }

    func ipv6(size: Int = 1500, next: UInt8 = 17, firstPayloadByte: UInt8 = 0) -> [UInt8] {
        var p = [UInt8](repeating: 0xcd, count: size)
        p[0] = 0x60
        p[1] = 0
        p[2] = 0
        p[3] = 0
        p[4] = UInt8((size - 40) >> 8)
        p[5] = UInt8((size - 40) & 0xff)
        p[6] = next
        p[7] = 64
        p.replaceSubrange(8..<24, with: SocketAddress("[fd00:1::10]:0")!.ip)
        p.replaceSubrange(24..<40, with: SocketAddress("[2001:db8::9]:0")!.ip)
        p[40] = firstPayloadByte
        return p
    }

    func reply(_ p: [UInt8], mtu: Int) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: 2048)
        let n = p.withUnsafeBytes { pb in out.withUnsafeMutableBytes { PacketTooBig.reply(to: pb, mtu: mtu, into: $0) } }
        return n.map { Array(out[0..<$0]) }
    }

    func sum(_ bytes: ArraySlice<UInt8>, initial: UInt32 = 0) -> UInt16 {
        Array(bytes).withUnsafeBytes { PacketTooBig.checksum($0, initial: initial) }
    }

    func testIPv4FragmentationNeeded() throws {
        let p = ipv4()
        let r = try XCTUnwrap(reply(p, mtu: 1380))
        XCTAssertEqual(r.count, 20 + 8 + 28)
        XCTAssertEqual(r[9], 1, "ICMP")
        XCTAssertEqual(Array(r[12..<16]), [203, 0, 113, 9], "from the packet's destination (never a local address of the TUN's host)")
        XCTAssertEqual(Array(r[16..<20]), [192, 168, 1, 10], "back to the sender")
        XCTAssertEqual(sum(r[0..<20]), 0, "valid IPv4 header checksum")
        XCTAssertEqual(r[20], 3)
        XCTAssertEqual(r[21], 4)
        XCTAssertEqual(Int(r[26]) << 8 | Int(r[27]), 1380)
        XCTAssertEqual(sum(r[20...]), 0, "valid ICMP checksum")
        XCTAssertEqual(Array(r[28...]), Array(p[0..<28]), "quotes the header and 8 bytes")
    }

    func testIPv6PacketTooBig() throws {
        let p = ipv6()
        let r = try XCTUnwrap(reply(p, mtu: 1400))
        XCTAssertEqual(r.count, 1280, "as much as fits in the minimum MTU")
        XCTAssertEqual(r[6], 58)
        XCTAssertEqual(Array(r[24..<40]), Array(p[8..<24]), "back to the sender")
        XCTAssertEqual(Array(r[8..<24]), Array(p[24..<40]), "from the packet's destination")
        XCTAssertEqual(r[40], 2)
        XCTAssertEqual(r[41], 0)
        XCTAssertEqual(r[44...47].reduce(0) { $0 << 8 | Int($1) }, 1400)
        var pseudo: UInt32 = 0
        for i in stride(from: 8, to: 40, by: 2) { pseudo &+= UInt32(r[i]) << 8 | UInt32(r[i + 1]) }
        pseudo &+= UInt32(r.count - 40) + 58
        XCTAssertEqual(sum(r[40...], initial: pseudo), 0, "valid ICMPv6 checksum")
        XCTAssertEqual(Array(r[48...]), Array(p[0..<(1280 - 48)]))
    }

    func testNoAnswerWhereTheRFCsForbidOne() {
        XCTAssertNil(reply(ipv4(df: false), mtu: 1380), "may be fragmented")
        var icmpError = ipv4(protocol: 1)
        icmpError[20] = 3
        XCTAssertNil(reply(icmpError, mtu: 1380), "never about an ICMP error")
        var echo = ipv4(protocol: 1)
        echo[20] = 8
        XCTAssertNotNil(reply(echo, mtu: 1380), "an echo request gets one")
        XCTAssertNil(reply(ipv4(src: [224, 0, 0, 5]), mtu: 1380), "multicast sender")
        XCTAssertNil(reply(ipv4(src: [0, 0, 0, 0]), mtu: 1380), "unspecified sender")
        XCTAssertNil(reply(ipv6(next: 58, firstPayloadByte: 1), mtu: 1400), "ICMPv6 error")
        XCTAssertNotNil(reply(ipv6(next: 58, firstPayloadByte: 128), mtu: 1400), "ICMPv6 echo request")
        XCTAssertNil(reply([0x45, 0, 0], mtu: 1380), "truncated")
        XCTAssertNil(reply(ipv4(), mtu: 0), "never an MTU a host would lock itself to")
        XCTAssertNil(reply(ipv4(), mtu: 552))
        XCTAssertNotNil(reply(ipv4(), mtu: 576))
        XCTAssertNil(reply(ipv6(), mtu: 1160), "IPv6 never below 1280")
    }
}
