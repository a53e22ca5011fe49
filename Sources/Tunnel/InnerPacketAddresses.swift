// The source and destination of an inner IP packet, read in place: the VPS checks every packet a
// tenant sends against the tenant's prefixes and picks the tenant of every packet read from its
// TUN by destination. Nothing is copied or allocated.
import QUIC

public enum InnerPacketAddresses {
    /// The source address bytes (4 or 16) of an IPv4 or IPv6 packet, nil if it is neither or is
    /// shorter than its fixed header (RFC 791 §3.1, RFC 8200 §3).
    @inline(__always)
    public static func source(of packet: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        guard let (v6, _) = header(packet) else { return nil }
        return UnsafeRawBufferPointer(rebasing: v6 ? packet[8..<24] : packet[12..<16])
    }

    @inline(__always)
    public static func destination(of packet: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        guard let (v6, _) = header(packet) else { return nil }
        return UnsafeRawBufferPointer(rebasing: v6 ? packet[24..<40] : packet[16..<20])
    }

    /// Whether the packet's destination never leaves its link, so the tunnel must not carry it:
    /// IPv6 link-local unicast (fe80::/10) and link-scope multicast (ff?2::/16, RFC 4291 §2.4,
    /// §2.7: the kernel's MLD reports on the TUN), IPv4 local network control multicast
    /// (224.0.0.0/24, RFC 5771 §4) and limited broadcast.
    @inline(__always)
    public static func isLinkScoped(_ packet: UnsafeRawBufferPointer) -> Bool {
        guard let (v6, _) = header(packet) else { return false }
        if v6 {
            let d0 = packet[24]
            let d1 = packet[25]
            return (d0 == 0xfe && d1 & 0xc0 == 0x80) || (d0 == 0xff && d1 & 0x0f <= 2)
        }
        return (packet[16] == 224 && packet[17] == 0 && packet[18] == 0)
            || (packet[16] == 255 && packet[17] == 255 && packet[18] == 255 && packet[19] == 255)
    }

    /// (is IPv6, header length) of a packet long enough for its fixed header.
    @inline(__always)
    static func header(_ packet: UnsafeRawBufferPointer) -> (Bool, Int)? {
        guard packet.count >= 1 else { return nil }
        switch packet[0] >> 4 {
        case 4:
            let ihl = Int(packet[0] & 0x0f) * 4
            guard ihl >= 20, packet.count >= ihl else { return nil }
            return (false, ihl)
        case 6:
            guard packet.count >= 40 else { return nil }
            return (true, 40)
        default:
            return nil
        }
    }
}
