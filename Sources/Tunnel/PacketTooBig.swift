// An inner packet larger than the tunnel can carry right now (a path's MTU shrank before the TUN
// MTU followed) is answered, not silently dropped: ICMPv4 "fragmentation needed" (RFC 792, RFC
// 1191 §4) or ICMPv6 "packet too big" (RFC 4443 §3.2) back to the LAN host, which lowers its path
// MTU and resends smaller. DATAGRAM frames are never fragmented (RFC 9221 §5).
import QUIC

public enum PacketTooBig {
    /// Writes into `out` the ICMP error for `packet`, which did not fit `mtu` bytes, back to the
    /// packet's sender; returns its length, or nil when no answer is due: not IP, an IPv4 packet
    /// that may be fragmented (DF clear), an ICMP error itself (RFC 1122 §3.2.2, RFC 4443
    /// §2.4(e)), a sender address that is unspecified or multicast, or an `mtu` below the
    /// family's minimum (the packet is dropped then).
    ///
    /// The error comes from the packet's own destination, as if the far side of the tunnel had
    /// sent it: it is written into the TUN, and the kernel drops a packet arriving there from one
    /// of its own addresses (a martian), while the destination routes back through the tunnel.
    /// Hosts accept "too big" from any router on the path (RFC 1191 §4, RFC 8201 §4).
    public static func reply(to packet: UnsafeRawBufferPointer, mtu: Int, into out: UnsafeMutableRawBufferPointer) -> Int? {
        guard let (v6, headerLength) = InnerPacketAddresses.header(packet),
            let destination = InnerPacketAddresses.destination(of: packet)
        else { return nil }
        // Never below what the family guarantees (RFC 8200 §5: 1280; IPv4 hosts keep at least
        // 552–576 anyway): such an answer would only pin the sender to its minimum for minutes.
        guard mtu >= (v6 ? 1280 : 576) else { return nil }
        let source = SocketAddress(ipBytes: destination, port: 0)
        return v6
            ? reply6(packet, mtu: mtu, source: source, out: out)
            : reply4(packet, headerLength: headerLength, mtu: mtu, source: source, out: out)
    }

    private static func reply4(
        _ p: UnsafeRawBufferPointer, headerLength: Int, mtu: Int, source: SocketAddress,
        out: UnsafeMutableRawBufferPointer
    ) -> Int? {
        let dontFragment = p[6] & 0x40 != 0
        let fragmentOffset = (Int(p[6] & 0x1f) << 8) | Int(p[7])
        guard dontFragment, fragmentOffset == 0, p[12] != 0, p[12] < 224 else { return nil }
        if p[9] == 1, p.count > headerLength {
            // ICMP: answer only queries (echo request 8, timestamp 13), never errors.
            let type = p[headerLength]
            guard type == 8 || type == 13 || type == 0 || type == 14 else { return nil }
        }
        // RFC 792: the original IP header and its first 8 data bytes.
        let quoted = min(p.count, headerLength + 8)
        let total = 20 + 8 + quoted
        guard out.count >= total else { return nil }
        for i in 0..<total { out[i] = 0 }
        out[0] = 0x45
        out[2] = UInt8(total >> 8)
        out[3] = UInt8(total & 0xff)
        out[8] = 64  // TTL
        out[9] = 1  // ICMP
        for i in 0..<4 {
            out[12 + i] = source.ipByte(i)
            out[16 + i] = p[12 + i]
        }
        store(checksum(UnsafeRawBufferPointer(rebasing: out[0..<20])), at: 10, in: out)
        out[20] = 3  // destination unreachable
        out[21] = 4  // fragmentation needed and DF set
        let m = min(mtu, 0xffff)
        out[26] = UInt8(m >> 8)
        out[27] = UInt8(m & 0xff)  // RFC 1191 §4: next-hop MTU
        for i in 0..<quoted { out[28 + i] = p[i] }
        store(checksum(UnsafeRawBufferPointer(rebasing: out[20..<total])), at: 22, in: out)
        return total
    }

    private static func reply6(
        _ p: UnsafeRawBufferPointer, mtu: Int, source: SocketAddress,
        out: UnsafeMutableRawBufferPointer
    ) -> Int? {
        // The sender (bytes 8..<24) must be a unicast address: not :: and not ff00::/8.
        guard p[8] != 0xff, (8..<24).contains(where: { p[$0] != 0 }) else { return nil }
        if p[6] == 58, p.count > 40, p[40] < 128 { return nil }  // an ICMPv6 error (RFC 4443 §2.4(e))
        // RFC 4443 §3.2: as much of the packet as fits without exceeding the minimum MTU, 1280.
        let quoted = min(p.count, 1280 - 40 - 8)
        let total = 40 + 8 + quoted
        guard out.count >= total else { return nil }
        for i in 0..<48 { out[i] = 0 }
        out[0] = 0x60
        let payload = 8 + quoted
        out[4] = UInt8(payload >> 8)
        out[5] = UInt8(payload & 0xff)
        out[6] = 58  // ICMPv6
        out[7] = 64  // hop limit
        for i in 0..<16 {
            out[8 + i] = source.ipByte(i)
            out[24 + i] = p[8 + i]
        }
        out[40] = 2  // packet too big
        let m = UInt32(clamping: mtu)
        out[44] = UInt8(m >> 24)
        out[45] = UInt8(m >> 16 & 0xff)
        out[46] = UInt8(m >> 8 & 0xff)
        out[47] = UInt8(m & 0xff)
        for i in 0..<quoted { out[48 + i] = p[i] }
        // RFC 4443 §2.3: the checksum covers the IPv6 pseudo-header (RFC 8200 §8.1).
        var sum: UInt32 = 0
        for i in stride(from: 8, to: 40, by: 2) { sum &+= UInt32(out[i]) << 8 | UInt32(out[i + 1]) }
        sum &+= UInt32(payload)
        sum &+= 58
        store(checksum(UnsafeRawBufferPointer(rebasing: out[40..<total]), initial: sum), at: 42, in: out)
        return total
    }

    /// The Internet checksum (RFC 1071) of `bytes`, plus `initial` (a pseudo-header's sum).
    static func checksum(_ bytes: UnsafeRawBufferPointer, initial: UInt32 = 0) -> UInt16 {
        var sum = initial
        var i = 0
        while i + 1 < bytes.count {
            sum &+= UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1])
            i += 2
        }
        if i < bytes.count { sum &+= UInt32(bytes[i]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xffff) &+ (sum >> 16) }
        return ~UInt16(truncatingIfNeeded: sum)
    }

    private static func store(_ v: UInt16, at offset: Int, in out: UnsafeMutableRawBufferPointer) {
        out[offset] = UInt8(v >> 8)
        out[offset + 1] = UInt8(v & 0xff)
    }
}
