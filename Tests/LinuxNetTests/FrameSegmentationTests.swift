// Cutting GSO super-frames (what a veth with GSO/TSO on hands a packet socket) into the wire
// frames they stand for, as tquic-netem does before its link model sees them: lengths, IP IDs and
// header checksums, TCP sequence numbers and flags, and L4 checksums that complete correctly.
import XCTest

@testable import LinuxNet

final class FrameSegmentationTests: XCTestCase {
    static let tcpFlagsFIN: UInt8 = 0x01, tcpFlagsPSH: UInt8 = 0x08, tcpFlagsACK: UInt8 = 0x10, tcpFlagsCWR: UInt8 = 0x80

    /// Ethernet + IPv4 (20) + TCP (32, with options) + `payload` bytes counting up.
    func tcp4SuperFrame(payload: Int, flags: UInt8) -> [UInt8] {
        var f = [UInt8](repeating: 0, count: 14 + 20 + 32 + payload)
        f[12] = 0x08
        f[13] = 0x00
        let ip = 14
        f[ip] = 0x45
        put16(&f, ip + 2, UInt16(20 + 32 + payload))
        put16(&f, ip + 4, 0xFFFE)  // the ID wraps between segments
        f[ip + 6] = 0x40
        f[ip + 8] = 64
        f[ip + 9] = 6
        f.replaceSubrange(ip + 12..<ip + 20, with: [10, 77, 0, 1, 10, 77, 0, 2])
        let tcp = ip + 20
        put16(&f, tcp, 40000)
        put16(&f, tcp + 2, 5201)
        f.replaceSubrange(tcp + 4..<tcp + 8, with: [0xFF, 0xFF, 0xFA, 0x00])  // the sequence number wraps
        f[tcp + 12] = 8 << 4
        f[tcp + 13] = flags
        for i in 0..<payload { f[tcp + 32 + i] = UInt8(truncatingIfNeeded: i) }
        return f
    }

    func put16(_ f: inout [UInt8], _ at: Int, _ v: UInt16) {
        f[at] = UInt8(v >> 8)
        f[at + 1] = UInt8(v & 0xFF)
    }

    func get16(_ f: [UInt8], _ at: Int) -> UInt16 { UInt16(f[at]) << 8 | UInt16(f[at + 1]) }

    func ones(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var s: UInt32 = 0
        var i = bytes.startIndex
        while i + 1 < bytes.endIndex {
            s += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1])
            i += 2
        }
        if i < bytes.endIndex { s += UInt32(bytes[i]) << 8 }
        return s
    }

    func fold(_ s: UInt32) -> UInt16 {
        var s = s
        while s >> 16 != 0 { s = (s & 0xFFFF) + (s >> 16) }
        return UInt16(s)
    }

    /// Does what the kernel does for NEEDS_CSUM (sum from checksumStart, field included, stored
    /// complemented at checksumStart + checksumOffset), then checks the L4 checksum against the
    /// pseudo-header the receiver computes.
    func completedChecksumIsValid(_ segment: [UInt8], header: VirtioNetHeader, ipv6: Bool, proto: UInt8) -> Bool {
        var s = segment
        let start = Int(header.checksumStart)
        let at = start + Int(header.checksumOffset)
        let check = ~fold(ones(s[start...]))
        put16(&s, at, check)
        let l4Length = UInt32(s.count - start)
        let pseudo =
            ipv6
            ? ones(s[(14 + 8)..<(14 + 40)]) + (l4Length >> 16) + (l4Length & 0xFFFF) + UInt32(proto)
            : ones(s[(14 + 12)..<(14 + 20)]) + l4Length + UInt32(proto)
        return fold(pseudo + ones(s[start...])) == 0xFFFF
    }

    func segments(_ frame: [UInt8], _ header: VirtioNetHeader) throws -> [[UInt8]] {
        try frame.withUnsafeBytes { raw in
            let gso = try XCTUnwrap(GSOFrame(frame: raw, header: header))
            return (0..<gso.segmentCount).map { i in
                var out = [UInt8](repeating: 0, count: gso.segmentLength(i))
                out.withUnsafeMutableBytes { gso.writeSegment(i, to: $0.baseAddress!) }
                return out
            }
        }
    }

    func testATCPv4SuperFrameBecomesMSSSizedSegmentsWithTheirOwnHeaders() throws {
        let frame = tcp4SuperFrame(payload: 3000, flags: Self.tcpFlagsACK | Self.tcpFlagsPSH | Self.tcpFlagsFIN | Self.tcpFlagsCWR)
        let header = VirtioNetHeader(
            flags: VirtioNetHeader.needsChecksum, gsoType: VirtioNetHeader.gsoTCPv4 | VirtioNetHeader.gsoECN,
            headerLength: 66, gsoSize: 1448, checksumStart: 34, checksumOffset: 16)
        let out = try segments(frame, header)
        XCTAssertEqual(out.map(\.count), [66 + 1448, 66 + 1448, 66 + 104])
        for (i, s) in out.enumerated() {
            XCTAssertEqual(Int(get16(s, 14 + 2)), s.count - 14, "IPv4 total length of segment \(i)")
            XCTAssertEqual(get16(s, 14 + 4), UInt16(truncatingIfNeeded: 0xFFFE + i), "IP ID counts up per segment")
            XCTAssertEqual(fold(ones(s[14..<34])), 0xFFFF, "IPv4 header checksum of segment \(i)")
            let sequence = UInt32(get16(s, 34 + 4)) << 16 | UInt32(get16(s, 34 + 6))
            XCTAssertEqual(sequence, 0xFFFF_FA00 &+ UInt32(i * 1448))
            let flags = s[34 + 13]
            XCTAssertEqual(flags & Self.tcpFlagsACK, Self.tcpFlagsACK)
            XCTAssertEqual(flags & (Self.tcpFlagsPSH | Self.tcpFlagsFIN) != 0, i == 2, "PSH and FIN on the last segment only")
            XCTAssertEqual(flags & Self.tcpFlagsCWR != 0, i == 0, "CWR on the first segment only")
            XCTAssertEqual(Array(s[66...]), Array(frame[(66 + i * 1448)..<(66 + i * 1448 + s.count - 66)]), "payload \(i)")
            XCTAssertTrue(completedChecksumIsValid(s, header: header, ipv6: false, proto: 6), "TCP checksum of segment \(i)")
        }
        XCTAssertEqual(header.forSingleFrame, VirtioNetHeader(flags: VirtioNetHeader.needsChecksum, checksumStart: 34, checksumOffset: 16))
    }

    func testAUDPv6GSOFrameBecomesDatagramsOfTheSegmentSize() throws {
        let payload = 2500
        var f = [UInt8](repeating: 0, count: 14 + 40 + 8 + payload)
        f[12] = 0x86
        f[13] = 0xDD
        f[14] = 0x60
        put16(&f, 14 + 4, UInt16(8 + payload))
        f[14 + 6] = 17
        f[14 + 7] = 64
        f[14 + 8] = 0xFD
        f[14 + 23] = 1
        f[14 + 24] = 0xFD
        f[14 + 39] = 2
        put16(&f, 54, 4433)
        put16(&f, 56, 443)
        put16(&f, 58, UInt16(8 + payload))
        for i in 0..<payload { f[62 + i] = UInt8(truncatingIfNeeded: i * 7) }
        let header = VirtioNetHeader(
            flags: VirtioNetHeader.needsChecksum, gsoType: VirtioNetHeader.gsoUDPL4,
            gsoSize: 1200, checksumStart: 54, checksumOffset: 6)
        let out = try segments(f, header)
        XCTAssertEqual(out.map(\.count), [62 + 1200, 62 + 1200, 62 + 100])
        for (i, s) in out.enumerated() {
            XCTAssertEqual(Int(get16(s, 14 + 4)), s.count - 54, "IPv6 payload length of datagram \(i)")
            XCTAssertEqual(Int(get16(s, 58)), s.count - 54, "UDP length of datagram \(i)")
            XCTAssertTrue(completedChecksumIsValid(s, header: header, ipv6: true, proto: 17), "UDP checksum of datagram \(i)")
        }
    }

    func testFramesThatCannotBeCutAreRefused() {
        let frame = tcp4SuperFrame(payload: 3000, flags: Self.tcpFlagsACK)
        frame.withUnsafeBytes { raw in
            XCTAssertNil(
                GSOFrame(
                    frame: raw,
                    header: VirtioNetHeader(
                        gsoType: VirtioNetHeader.gsoTCPv4, gsoSize: 1448,
                        checksumStart: 34, checksumOffset: 16)),
                "GSO without NEEDS_CSUM")
            XCTAssertNil(
                GSOFrame(
                    frame: raw,
                    header: VirtioNetHeader(
                        flags: 1, gsoType: VirtioNetHeader.gsoUDP, gsoSize: 1448,
                        checksumStart: 34, checksumOffset: 16)),
                "UFO (IP fragmentation) is not cut")
            XCTAssertNil(
                GSOFrame(
                    frame: raw,
                    header: VirtioNetHeader(
                        flags: 1, gsoType: VirtioNetHeader.gsoTCPv6, gsoSize: 1448,
                        checksumStart: 34, checksumOffset: 16)),
                "a TCPv6 GSO type on an IPv4 frame")
            XCTAssertNil(
                GSOFrame(
                    frame: raw,
                    header: VirtioNetHeader(
                        flags: 1, gsoType: VirtioNetHeader.gsoTCPv4, gsoSize: 1448,
                        checksumStart: 30, checksumOffset: 16)),
                "checksum start not at the TCP header")
        }
    }

    func testTheHeaderRoundTripsThroughMemory() {
        let h = VirtioNetHeader(flags: 1, gsoType: 5, headerLength: 62, gsoSize: 1200, checksumStart: 54, checksumOffset: 6)
        var bytes = [UInt8](repeating: 0, count: VirtioNetHeader.size)
        bytes.withUnsafeMutableBytes { h.store(to: $0.baseAddress!) }
        XCTAssertEqual(bytes.withUnsafeBytes { VirtioNetHeader(loading: $0.baseAddress!) }, h)
        XCTAssertTrue(h.isGSO)
        XCTAssertFalse(VirtioNetHeader(gsoType: VirtioNetHeader.gsoECN).isGSO)
    }
}
