// Receive-side coalescing for a TUN with IFF_VNET_HDR (the GRO the kernel does for a NIC): TCP
// segments of one flow that arrive back to back out of the tunnel are joined into one packet of up
// to 64 KB with a GSO header, so the kernel routes, NATs and delivers one packet instead of forty.
// The rules are the kernel's own for TCP GRO (net/ipv4/tcp_offload.c): the same flow, the next
// sequence number, the same acknowledgement, window and options, only ACK (PSH on the last), full-
// sized segments except the last, and IP headers that differ only in length, ID and checksum.
// Pure code over one buffer (no syscalls): TUNDevice writes what `finish` leaves there.
import Glibc

/// One coalesced packet being built: a virtio header then an IPv4 or IPv6 packet carrying TCP.
public struct TCPCoalescer {
    /// Room for the virtio header and the largest IP packet (the IPv4 total length is 16 bits).
    public static let capacity = VirtioNetHeader.size + 65_535
    /// The kernel's GSO limit on segments per packet (gso_max_segs on a TUN is larger; 64 keeps
    /// one coalesced write under the 64 KB length field with any segment size).
    static let maximumSegments = 64

    /// The buffer: `VirtioNetHeader.size` bytes of header, then the packet.
    public let buffer: UnsafeMutableRawPointer
    /// Segments held (0: empty).
    public private(set) var segments = 0
    /// The packet's length so far (without the virtio header).
    public private(set) var length = 0
    private var isIPv6 = false
    private var ipHeaderLength = 0
    private var tcpHeaderLength = 0
    /// The payload size of the first segment: every later one but the last must match it.
    private var segmentSize = 0
    private var nextSequence: UInt32 = 0
    /// A shorter segment or PSH ended the run: nothing more joins.
    private var closed = false

    public init(buffer: UnsafeMutableRawPointer) {
        self.buffer = buffer
    }

    private var packet: UnsafeMutableRawPointer { buffer + VirtioNetHeader.size }

    /// The TCP segment's layout if it may be coalesced at all: IPv4 without fragmentation and with
    /// DF, or IPv6 with TCP as the next header; a payload; flags ACK or ACK|PSH only.
    struct Segment {
        var isIPv6: Bool
        var ipHeaderLength: Int
        var tcpHeaderLength: Int
        var payloadLength: Int
        var sequence: UInt32
        var flags: UInt8
    }

    static func segment(_ p: UnsafeRawBufferPointer) -> Segment? {
        guard let first = p.first else { return nil }
        let ipHeader: Int
        let isIPv6: Bool
        switch first >> 4 {
        case 4:
            ipHeader = Int(first & 0x0F) * 4
            guard ipHeader >= 20, p.count >= ipHeader + 20, p[9] == 6,
                (Int(p[2]) << 8 | Int(p[3])) == p.count,
                // DF set, MF clear, fragment offset zero.
                p[6] == 0x40, p[7] == 0
            else { return nil }
            isIPv6 = false
        case 6:
            ipHeader = 40
            guard p.count >= 60, p[6] == 6, (Int(p[4]) << 8 | Int(p[5])) + 40 == p.count else { return nil }
            isIPv6 = true
        default:
            return nil
        }
        let tcpHeader = Int(p[ipHeader + 12] >> 4) * 4
        let flags = p[ipHeader + 13]
        guard tcpHeader >= 20, p.count > ipHeader + tcpHeader, flags & ~UInt8(0x08) == 0x10 else { return nil }
        let sequence =
            UInt32(p[ipHeader + 4]) << 24 | UInt32(p[ipHeader + 5]) << 16 | UInt32(p[ipHeader + 6]) << 8 | UInt32(p[ipHeader + 7])
        return Segment(
            isIPv6: isIPv6, ipHeaderLength: ipHeader, tcpHeaderLength: tcpHeader,
            payloadLength: p.count - ipHeader - tcpHeader, sequence: sequence, flags: flags)
    }

    /// Whether `p` may be coalesced with others (a TCP data segment as above).
    public static func isCandidate(_ p: UnsafeRawBufferPointer) -> Bool { segment(p) != nil }

    /// Adds `p` when it continues the packet held; false (nothing changed) when it does not, or
    /// is no candidate. An empty coalescer takes any candidate.
    public mutating func append(_ p: UnsafeRawBufferPointer) -> Bool {
        guard let s = Self.segment(p) else { return false }
        if segments == 0 {
            packet.copyMemory(from: p.baseAddress!, byteCount: p.count)
            length = p.count
            segments = 1
            isIPv6 = s.isIPv6
            ipHeaderLength = s.ipHeaderLength
            tcpHeaderLength = s.tcpHeaderLength
            segmentSize = s.payloadLength
            nextSequence = s.sequence &+ UInt32(s.payloadLength)
            closed = s.flags & 0x08 != 0
            return true
        }
        guard !closed, segments < Self.maximumSegments, s.isIPv6 == isIPv6, s.ipHeaderLength == ipHeaderLength,
            s.tcpHeaderLength == tcpHeaderLength, s.sequence == nextSequence, s.payloadLength <= segmentSize,
            length + s.payloadLength <= Self.capacity - VirtioNetHeader.size,
            sameHeaders(p)
        else { return false }
        (packet + length).copyMemory(from: p.baseAddress! + ipHeaderLength + tcpHeaderLength, byteCount: s.payloadLength)
        length += s.payloadLength
        segments += 1
        nextSequence = s.sequence &+ UInt32(s.payloadLength)
        if s.flags & 0x08 != 0 {
            packet.storeBytes(
                of: packet.load(fromByteOffset: ipHeaderLength + 13, as: UInt8.self) | 0x08,
                toByteOffset: ipHeaderLength + 13, as: UInt8.self)
        }
        closed = s.flags & 0x08 != 0 || s.payloadLength < segmentSize
        return true
    }

    /// The IP header equal but for length, ID and checksum; the TCP header equal but for the
    /// sequence number, PSH and the checksum (ports, acknowledgement, window, options: all equal).
    private func sameHeaders(_ p: UnsafeRawBufferPointer) -> Bool {
        let held = UnsafeRawBufferPointer(start: packet, count: ipHeaderLength + tcpHeaderLength)
        if isIPv6 {
            // Version, traffic class (ECN) and flow label; next header, hop limit, addresses.
            guard memcmp(held.baseAddress!, p.baseAddress!, 4) == 0,
                memcmp(held.baseAddress! + 6, p.baseAddress! + 6, 34) == 0
            else { return false }
        } else {
            // Version, header length, TOS (ECN); flags; TTL, protocol, addresses, options.
            guard held[0] == p[0], held[1] == p[1], held[6] == p[6], held[7] == p[7],
                memcmp(held.baseAddress! + 8, p.baseAddress! + 8, 2) == 0,
                memcmp(held.baseAddress! + 12, p.baseAddress! + 12, ipHeaderLength - 12) == 0
            else { return false }
        }
        let t = ipHeaderLength
        return memcmp(held.baseAddress! + t, p.baseAddress! + t, 4) == 0  // ports
            && memcmp(held.baseAddress! + t + 8, p.baseAddress! + t + 8, 5) == 0  // ack, offset
            && held[t + 13] & ~UInt8(0x08) == p[t + 13] & ~UInt8(0x08)  // flags
            && memcmp(held.baseAddress! + t + 14, p.baseAddress! + t + 14, 2) == 0  // window
            && memcmp(held.baseAddress! + t + 18, p.baseAddress! + t + 18, tcpHeaderLength - 18) == 0  // urgent, options
    }

    /// Writes the virtio header and fixes up the IP lengths (and the IPv4 header checksum) for the
    /// packet held, and returns the bytes to write (header included). One segment goes as it came
    /// (its checksums intact, no GSO); several as a GSO packet whose TCP checksum field holds the
    /// pseudo-header sum for the kernel to finish per segment (NEEDS_CSUM). Empties the coalescer.
    public mutating func finish() -> UnsafeRawBufferPointer {
        precondition(segments > 0, "nothing to finish")
        var header = VirtioNetHeader()
        if segments > 1 {
            let l4Length = length - ipHeaderLength
            if isIPv6 {
                packet.storeBytes(of: UInt16(l4Length).bigEndian, toByteOffset: 4, as: UInt16.self)
            } else {
                packet.storeBytes(of: UInt16(length).bigEndian, toByteOffset: 2, as: UInt16.self)
                packet.storeBytes(of: 0, toByteOffset: 10, as: UInt16.self)
                let c = ~InternetChecksum.sum(packet, count: ipHeaderLength)
                packet.storeBytes(of: c.bigEndian, toByteOffset: 10, as: UInt16.self)
            }
            let pseudo = InternetChecksum.pseudoHeaderSum(
                addresses: packet + (isIPv6 ? 8 : 12), addressBytes: isIPv6 ? 32 : 8,
                protocolNumber: 6, length: l4Length)
            packet.storeBytes(of: pseudo.bigEndian, toByteOffset: ipHeaderLength + 16, as: UInt16.self)
            header = VirtioNetHeader(
                flags: VirtioNetHeader.needsChecksum,
                gsoType: isIPv6 ? VirtioNetHeader.gsoTCPv6 : VirtioNetHeader.gsoTCPv4,
                headerLength: UInt16(ipHeaderLength + tcpHeaderLength), gsoSize: UInt16(segmentSize),
                checksumStart: UInt16(ipHeaderLength), checksumOffset: 16)
        }
        header.store(to: buffer)
        let total = VirtioNetHeader.size + length
        segments = 0
        length = 0
        return UnsafeRawBufferPointer(start: buffer, count: total)
    }
}
