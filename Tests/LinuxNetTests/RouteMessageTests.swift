import CMnl
import Glibc
import QUIC
// The rtnetlink reader on hand-made buffers (no root, no kernel): well-formed link, address and
// error messages decode; malformed ones (short headers, lying lengths, attributes running past
// the end, wrong-sized addresses, a misaligned buffer, random bytes) are skipped and never trap.
import XCTest

@testable import LinuxNet

/// Builds netlink messages byte by byte (host byte order, as netlink uses).
struct MessageBytes {
    var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v) { bytes += $0 } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v) { bytes += $0 } }
    mutating func pad() { while bytes.count % 4 != 0 { bytes.append(0) } }

    /// An attribute: type, payload, padding.
    mutating func attribute(_ type: Int, _ payload: [UInt8]) {
        u16(UInt16(4 + payload.count))
        u16(UInt16(type))
        bytes += payload
        pad()
    }

    /// A whole message around `body` (the family header and attributes), padded to 4 bytes as
    /// the kernel pads them (nlmsg_len does not count the padding).
    static func message(type: Int, flags: UInt16 = 0, sequence: UInt32 = 0, _ body: (inout MessageBytes) -> Void) -> [UInt8] {
        var inner = MessageBytes()
        body(&inner)
        var m = MessageBytes()
        m.u32(UInt32(16 + inner.bytes.count))
        m.u16(UInt16(type))
        m.u16(flags)
        m.u32(sequence)
        m.u32(0)
        m.bytes += inner.bytes
        m.pad()
        return m.bytes
    }

    static func newLink(index: Int32, name: String, flags: UInt32, mtu: UInt32?) -> [UInt8] {
        message(type: Int(RTM_NEWLINK)) { m in
            m.u8(UInt8(AF_UNSPEC))
            m.u8(0)
            m.u16(1)  // family, pad, ARPHRD_ETHER
            m.u32(UInt32(bitPattern: index))
            m.u32(flags)
            m.u32(0)
            m.attribute(Int(IFLA_IFNAME), Array(name.utf8) + [0])
            if let mtu { m.attribute(Int(IFLA_MTU), withUnsafeBytes(of: mtu) { Array($0) }) }
        }
    }

    static func newAddress(family: Int32, prefixLength: UInt8, index: UInt32, address: [UInt8], flags: UInt8 = 0) -> [UInt8] {
        message(type: Int(RTM_NEWADDR)) { m in
            m.u8(UInt8(family))
            m.u8(prefixLength)
            m.u8(flags)
            m.u8(0)
            m.u32(index)
            m.attribute(Int(IFA_ADDRESS), address)
        }
    }
}

final class RouteMessageTests: XCTestCase {
    func events(_ bytes: [UInt8], names: [Int32: String] = [7: "wan0"]) -> [NetlinkEvent] {
        var names = names
        var out: [NetlinkEvent] = []
        bytes.withUnsafeBytes { NetlinkMonitor.events(in: $0, names: &names) { out.append($0) } }
        return out
    }

    let up = UInt32(IFF_UP) | UInt32(CMnl_IFF_LOWER_UP)
    var wan0Link: [UInt8] { MessageBytes.newLink(index: 7, name: "wan0", flags: up, mtu: 1500) }
    var wan0Event: NetlinkEvent {
        .linkChanged(NetworkInterface(index: 7, name: "wan0", isUp: true, hasCarrier: true, mtu: 1500, flags: up))
    }

    func testWellFormedLinkAndAddressMessagesDecode() {
        let v4 = MessageBytes.newAddress(family: AF_INET, prefixLength: 24, index: 7, address: [192, 0, 2, 10])
        let v6 = MessageBytes.newAddress(family: AF_INET6, prefixLength: 64, index: 7, address: SocketAddress.parseIP("2001:db8::10")!)
        let tentative = MessageBytes.newAddress(
            family: AF_INET6, prefixLength: 64, index: 7, address: SocketAddress.parseIP("2001:db8::11")!,
            flags: UInt8(IFA_F_TENTATIVE))
        XCTAssertEqual(
            events(wan0Link + v4 + v6 + tentative),
            [
                wan0Event,
                .addressAdded(InterfaceAddress(interfaceIndex: 7, interfaceName: "wan0", prefix: IPPrefix("192.0.2.10/24")!)),
                .addressAdded(InterfaceAddress(interfaceIndex: 7, interfaceName: "wan0", prefix: IPPrefix("2001:db8::10/64")!)),
            ], "a tentative IPv6 address is not reported until duplicate address detection is done")
    }

    func testAKernelErrorWithItsExplanationDecodes() {
        let error = MessageBytes.message(type: Int(NLMSG_ERROR), flags: UInt16(NLM_F_CAPPED | NLM_F_ACK_TLVS)) { m in
            m.u32(UInt32(bitPattern: -EEXIST))
            m.bytes += [UInt8](repeating: 0, count: 16)  // the echoed request's header
            m.attribute(Int(NLMSGERR_ATTR_MSG.rawValue), Array("Address already assigned".utf8) + [0])
        }
        var decoded: [String] = []
        error.withUnsafeBytes { buffer in
            RouteMessage.forEach(in: buffer) { _, message in
                if case .failure(let e, let text) = message { decoded.append("\(e) \(text ?? "-")") }
            }
        }
        XCTAssertEqual(decoded, ["\(EEXIST) Address already assigned"])
    }

    func testMessagesWithImpossibleLengthsEndTheWalkWithoutATrap() {
        XCTAssertEqual(events([]), [])
        for n in 1..<16 { XCTAssertEqual(events(Array(wan0Link.prefix(n))), [], "a \(n)-byte header fragment") }
        for length: UInt32 in [0, 8, 15] {
            var bytes = wan0Link
            withUnsafeBytes(of: length) { for i in 0..<4 { bytes[i] = $0[i] } }
            XCTAssertEqual(events(bytes + wan0Link), [], "nlmsg_len \(length), shorter than the header: the next message cannot be found")
        }
        // Longer than the buffer; 2 GiB and more is what libmnl's signed comparison lets through.
        for length: UInt32 in [UInt32(wan0Link.count + 4), 0x7fff_ffff, 0x8000_0000, 0xffff_ffff] {
            var bytes = wan0Link
            withUnsafeBytes(of: length) { for i in 0..<4 { bytes[i] = $0[i] } }
            XCTAssertEqual(events(bytes), [], "nlmsg_len \(length) runs past the buffer")
        }
        // Cut anywhere, a message is never read past its end; cut after a whole one, that one counts.
        for cut in 0..<wan0Link.count { XCTAssertEqual(events(Array((wan0Link + wan0Link).prefix(wan0Link.count + cut))), [wan0Event]) }
    }

    func testWellFramedButMalformedMessagesAreSkippedAndTheNextOneIsRead() {
        let shortLink = MessageBytes.message(type: Int(RTM_NEWLINK)) { $0.u32(7) }  // 4 bytes of a 16-byte ifinfomsg
        let noName = MessageBytes.message(type: Int(RTM_NEWLINK)) { m in
            m.u32(0)
            m.u32(7)
            m.u32(1)
            m.u32(0)
        }
        let overrunningAttribute = MessageBytes.message(type: Int(RTM_NEWLINK)) { m in
            m.u32(0)
            m.u32(7)
            m.u32(1)
            m.u32(0)
            m.u16(200)
            m.u16(UInt16(IFLA_IFNAME))
            m.bytes += Array("eth0".utf8)  // says 200 bytes, has 8
        }
        let zeroAttribute = MessageBytes.message(type: Int(RTM_NEWLINK)) { m in
            m.u32(0)
            m.u32(7)
            m.u32(1)
            m.u32(0)
            m.u16(0)
            m.u16(UInt16(IFLA_IFNAME))
        }
        let negativeIndex = MessageBytes.newLink(index: -3, name: "x", flags: 1, mtu: nil)
        let shortMTU = MessageBytes.message(type: Int(RTM_NEWLINK)) { m in
            m.u32(0)
            m.u32(9)
            m.u32(0)
            m.u32(0)
            m.attribute(Int(IFLA_IFNAME), Array("lte0".utf8))  // no NUL: still a name
            m.attribute(Int(IFLA_MTU), [0xdc, 0x05])  // 2 bytes of a u32: ignored
        }
        let shortAddressHeader = MessageBytes.message(type: Int(RTM_NEWADDR)) { $0.u32(0x0000_1802) }
        let unknownFamily = MessageBytes.newAddress(family: 99, prefixLength: 24, index: 7, address: [1, 2, 3, 4])
        let threeByteAddress = MessageBytes.newAddress(family: AF_INET, prefixLength: 24, index: 7, address: [1, 2, 3])
        let v4InV6 = MessageBytes.newAddress(family: AF_INET6, prefixLength: 64, index: 7, address: [1, 2, 3, 4])
        let longPrefix = MessageBytes.newAddress(family: AF_INET, prefixLength: 33, index: 7, address: [1, 2, 3, 4])
        let hugeIndex = MessageBytes.newAddress(family: AF_INET, prefixLength: 24, index: 0xffff_ffff, address: [1, 2, 3, 4])
        let shortError = MessageBytes.message(type: Int(NLMSG_ERROR)) { $0.u16(1) }
        let unknownType = MessageBytes.message(type: 0x7777) { $0.u32(1) }
        let malformed = [
            shortLink, noName, overrunningAttribute, zeroAttribute, negativeIndex, shortAddressHeader, unknownFamily,
            threeByteAddress, v4InV6, longPrefix, hugeIndex, shortError, unknownType,
        ]
        for (i, bad) in malformed.enumerated() {
            XCTAssertEqual(events(bad + wan0Link), [wan0Event], "malformed message \(i) is skipped and the next one read")
        }
        XCTAssertEqual(
            events(shortMTU), [.linkChanged(NetworkInterface(index: 9, name: "lte0", isUp: false, hasCarrier: false, mtu: 0, flags: 0))])
    }

    func testAMisalignedBufferIsIgnored() {
        let bytes = [0] + wan0Link
        var names: [Int32: String] = [:]
        var count = 0
        bytes.withUnsafeBytes { NetlinkMonitor.events(in: UnsafeRawBufferPointer(rebasing: $0[1...]), names: &names) { _ in count += 1 } }
        XCTAssertEqual(count, 0)
    }

    func testRandomBytesAndMutatedMessagesNeverTrap() {
        var generator = SplitMix64(seed: 0x7175_6963)
        let valid =
            wan0Link
            + MessageBytes.newAddress(family: AF_INET6, prefixLength: 64, index: 7, address: SocketAddress.parseIP("2001:db8::10")!)
            + MessageBytes.message(type: Int(NLMSG_ERROR), flags: UInt16(NLM_F_ACK_TLVS)) { m in
                m.u32(UInt32(bitPattern: -EINVAL))
                m.u32(40)
                m.u16(0)
                m.u16(0)
                m.u32(0)
                m.u32(0)
                m.attribute(Int(NLMSGERR_ATTR_MSG.rawValue), Array("x".utf8))
            }
        var decoded = 0
        for round in 0..<20_000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<Int(generator.next() % 200)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
                // Plausible framing now and then, so the walk gets past the first header.
                if bytes.count >= 16 && round % 4 == 0 {
                    let length = UInt32(16 + generator.next() % UInt64(bytes.count - 15))
                    withUnsafeBytes(of: length) { for i in 0..<4 { bytes[i] = $0[i] } }
                    let type: UInt16 = [16, 17, 20, 21, 2, 3][Int(generator.next() % 6)]
                    withUnsafeBytes(of: type) { for i in 0..<2 { bytes[4 + i] = $0[i] } }
                }
            } else {
                bytes = valid
                for _ in 0..<(1 + generator.next() % 4) {
                    bytes[Int(generator.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: generator.next())
                }
                bytes = Array(bytes.prefix(Int(generator.next() % UInt64(bytes.count + 1))))
            }
            decoded += events(bytes).count
            bytes.withUnsafeBytes { RouteMessage.forEach(in: $0) { _, _ in } }
        }
        XCTAssertGreaterThan(decoded, 0, "some mutated messages still decode")
    }
}

/// A small seeded generator, so a failing round can be replayed.
struct SplitMix64 {
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
