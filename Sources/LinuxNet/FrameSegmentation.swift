// The offload metadata of a packet socket with PACKET_VNET_HDR, and the segmentation of a GSO
// super-frame into the MTU-sized frames it stands for. tquic-netem reads frames with this header so
// that a veth with checksum offload or GSO/TSO left on still works through it: a frame whose
// checksum the sender left to "the hardware" (NEEDS_CSUM) goes out with the same request, and a
// 64 KB TCP or UDP GSO frame is cut here into wire-sized frames before the link model sees it, so
// the rate, queue and loss count real packets (the kernel's netem would treat it as one packet).
// Pure code over buffers (no syscalls); the layouts are Linux's (include/uapi/linux/virtio_net.h).

/// struct virtio_net_hdr (10 bytes, host byte order), in front of each frame of a PACKET_VNET_HDR
/// socket.
public struct VirtioNetHeader: Equatable, Sendable {
    public static let size = 10
    /// The L4 checksum is not computed: the field holds the pseudo-header sum and the checksum over
    /// [checksumStart, end) is to be stored at checksumStart + checksumOffset.
    public static let needsChecksum: UInt8 = 1
    public static let gsoNone: UInt8 = 0, gsoTCPv4: UInt8 = 1, gsoUDP: UInt8 = 3, gsoTCPv6: UInt8 = 4,
        gsoUDPL4: UInt8 = 5, gsoECN: UInt8 = 0x80

    public var flags: UInt8 = 0
    public var gsoType: UInt8 = 0
    public var headerLength: UInt16 = 0
    public var gsoSize: UInt16 = 0
    public var checksumStart: UInt16 = 0
    public var checksumOffset: UInt16 = 0

    public init(
        flags: UInt8 = 0, gsoType: UInt8 = 0, headerLength: UInt16 = 0, gsoSize: UInt16 = 0,
        checksumStart: UInt16 = 0, checksumOffset: UInt16 = 0
    ) {
        self.flags = flags
        self.gsoType = gsoType
        self.headerLength = headerLength
        self.gsoSize = gsoSize
        self.checksumStart = checksumStart
        self.checksumOffset = checksumOffset
    }

    public init(loading p: UnsafeRawPointer) {
        flags = p.load(as: UInt8.self)
        gsoType = p.load(fromByteOffset: 1, as: UInt8.self)
        headerLength = p.loadUnaligned(fromByteOffset: 2, as: UInt16.self)
        gsoSize = p.loadUnaligned(fromByteOffset: 4, as: UInt16.self)
        checksumStart = p.loadUnaligned(fromByteOffset: 6, as: UInt16.self)
        checksumOffset = p.loadUnaligned(fromByteOffset: 8, as: UInt16.self)
    }

    public func store(to p: UnsafeMutableRawPointer) {
        p.storeBytes(of: flags, as: UInt8.self)
        p.storeBytes(of: gsoType, toByteOffset: 1, as: UInt8.self)
        p.storeBytes(of: headerLength, toByteOffset: 2, as: UInt16.self)
        p.storeBytes(of: gsoSize, toByteOffset: 4, as: UInt16.self)
        p.storeBytes(of: checksumStart, toByteOffset: 6, as: UInt16.self)
        p.storeBytes(of: checksumOffset, toByteOffset: 8, as: UInt16.self)
    }

    /// NEEDS_CSUM done in software: the field at start + offset holds the pseudo-header sum, so
    /// the checksum is the complement of the sum over [start, count). False when the offsets lie
    /// outside the packet (nothing written).
    @discardableResult
    public static func completeChecksum(_ p: UnsafeMutableRawPointer, count: Int, start: Int, offset: Int) -> Bool {
        guard start >= 0, offset >= 0, start + offset + 2 <= count else { return false }
        let s = InternetChecksum.sum(p + start, count: count - start)
        var c = ~s
        // RFC 768: a UDP checksum of zero is sent as all ones (zero means "none").
        if c == 0 && offset == 6 { c = 0xFFFF }
        p.storeBytes(of: c.bigEndian, toByteOffset: start + offset, as: UInt16.self)
        return true
    }

    public var isGSO: Bool { gsoType & ~VirtioNetHeader.gsoECN != VirtioNetHeader.gsoNone }

    /// What to send a single wire frame with: only the checksum request (GSO, header length and
    /// the receive-side flags dropped).
    public var forSingleFrame: VirtioNetHeader {
        flags & VirtioNetHeader.needsChecksum != 0
            ? VirtioNetHeader(flags: VirtioNetHeader.needsChecksum, checksumStart: checksumStart, checksumOffset: checksumOffset)
            : VirtioNetHeader()
    }
}

/// A TCP (v4/v6) or UDP GSO (UDP_L4) super-frame with an Ethernet header, and the frames it
/// stands for: each one the headers, adjusted (IP length and ID, IPv4 header checksum, TCP sequence
/// number and flags, UDP length, the L4 pseudo-header sum), and up to `gsoSize` payload bytes.
/// The segments keep NEEDS_CSUM: the L4 checksum is left to the kernel, as in the super-frame.
public struct GSOFrame {
    public let frame: UnsafeRawBufferPointer
    public let header: VirtioNetHeader
    /// Where the IP header starts (after Ethernet, and an 802.1Q tag if present).
    let network: Int
    let isIPv6: Bool
    let isTCP: Bool
    /// Ethernet + IP + TCP/UDP header bytes, copied into every segment.
    public let headersLength: Int
    public let segmentCount: Int
    let payloadLength: Int

    /// nil when the frame is not a GSO frame this can cut: UFO (IP fragmentation), no NEEDS_CSUM,
    /// not IPv4/IPv6 over Ethernet, IPv6 extension headers, or inconsistent lengths.
    public init?(frame: UnsafeRawBufferPointer, header: VirtioNetHeader) {
        guard frame.count >= 14 else { return nil }
        var network = 14
        var etherType = UInt16(frame[12]) << 8 | UInt16(frame[13])
        if etherType == 0x8100 {
            guard frame.count >= 18 else { return nil }
            etherType = UInt16(frame[16]) << 8 | UInt16(frame[17])
            network = 18
        }
        self.init(frame: frame, network: network, etherType: etherType, header: header)
    }

    /// A GSO IP packet without a link header, as a TUN with IFF_VNET_HDR hands it over; nil as
    /// for `init(frame:header:)`.
    public init?(packet: UnsafeRawBufferPointer, header: VirtioNetHeader) {
        guard let first = packet.first else { return nil }
        self.init(frame: packet, network: 0, etherType: first >> 4 == 6 ? 0x86DD : 0x0800, header: header)
    }

    private init?(frame: UnsafeRawBufferPointer, network: Int, etherType: UInt16, header: VirtioNetHeader) {
        let type = header.gsoType & ~VirtioNetHeader.gsoECN
        guard header.flags & VirtioNetHeader.needsChecksum != 0, header.gsoSize > 0 else { return nil }
        let l4: Int
        switch (etherType, type) {
        case (0x0800, VirtioNetHeader.gsoTCPv4), (0x0800, VirtioNetHeader.gsoUDPL4):
            guard frame.count >= network + 20, frame[network] >> 4 == 4 else { return nil }
            l4 = network + Int(frame[network] & 0x0F) * 4
            isIPv6 = false
        case (0x86DD, VirtioNetHeader.gsoTCPv6), (0x86DD, VirtioNetHeader.gsoUDPL4):
            guard frame.count >= network + 40, frame[network] >> 4 == 6 else { return nil }
            l4 = network + 40
            isIPv6 = true
        default:
            return nil
        }
        let protocolNumber = isIPv6 ? frame[network + 6] : frame[network + 9]
        isTCP = type != VirtioNetHeader.gsoUDPL4
        guard protocolNumber == (isTCP ? 6 : 17), Int(header.checksumStart) == l4 else { return nil }
        let l4Header: Int
        if isTCP {
            guard frame.count >= l4 + 20 else { return nil }
            l4Header = Int(frame[l4 + 12] >> 4) * 4
            guard l4Header >= 20 else { return nil }
        } else {
            l4Header = 8
        }
        headersLength = l4 + l4Header
        guard frame.count > headersLength else { return nil }
        payloadLength = frame.count - headersLength
        let size = Int(header.gsoSize)
        segmentCount = (payloadLength + size - 1) / size
        self.frame = frame
        self.header = header
        self.network = network
    }

    public func segmentLength(_ i: Int) -> Int {
        headersLength + min(Int(header.gsoSize), payloadLength - i * Int(header.gsoSize))
    }

    /// The vnet header to send each segment with.
    public var segmentHeader: VirtioNetHeader { header.forSingleFrame }

    /// Writes segment `i` (whole frame, `segmentLength(i)` bytes) to `out`.
    public func writeSegment(_ i: Int, to out: UnsafeMutableRawPointer) {
        let size = Int(header.gsoSize)
        let chunk = min(size, payloadLength - i * size)
        let source = frame.baseAddress!
        out.copyMemory(from: source, byteCount: headersLength)
        (out + headersLength).copyMemory(from: source + headersLength + i * size, byteCount: chunk)
        let bytes = out.assumingMemoryBound(to: UInt8.self)
        let l4 = Int(header.checksumStart)
        let l4Length = headersLength - l4 + chunk
        if isIPv6 {
            Self.store16(bytes + network + 4, UInt16(l4Length))
        } else {
            let ipHeader = l4 - network
            Self.store16(bytes + network + 2, UInt16(ipHeader + l4Length))
            Self.store16(bytes + network + 4, Self.load16(bytes + network + 4) &+ UInt16(truncatingIfNeeded: i))
            Self.store16(bytes + network + 10, 0)
            Self.store16(bytes + network + 10, ~Self.fold(Self.sum(bytes + network, count: ipHeader)))
        }
        if isTCP {
            let sequence = UInt32(Self.load16(bytes + l4 + 4)) << 16 | UInt32(Self.load16(bytes + l4 + 6))
            let next = sequence &+ UInt32(i * size)
            Self.store16(bytes + l4 + 4, UInt16(next >> 16))
            Self.store16(bytes + l4 + 6, UInt16(next & 0xFFFF))
            if i != segmentCount - 1 { bytes[l4 + 13] &= ~UInt8(0x09) }  // FIN, PSH: the last only
            if i != 0 { bytes[l4 + 13] &= ~UInt8(0x80) }  // CWR: the first only
        } else {
            Self.store16(bytes + l4 + 4, UInt16(l4Length))
        }
        // NEEDS_CSUM: the checksum field holds the pseudo-header sum (not complemented).
        var pseudo: UInt32 = 0
        if isIPv6 {
            pseudo = Self.sum(bytes + network + 8, count: 32) + UInt32(l4Length >> 16) + UInt32(l4Length & 0xFFFF)
        } else {
            pseudo = Self.sum(bytes + network + 12, count: 8) + UInt32(l4Length)
        }
        pseudo += isTCP ? 6 : 17
        Self.store16(bytes + l4 + Int(header.checksumOffset), Self.fold(pseudo))
    }

    /// Writes segment `i` like `writeSegment` and completes its L4 checksum (what a TUN reader
    /// must do: the packet goes on through the tunnel, past any NIC that would have).
    public func writeCompleteSegment(_ i: Int, to out: UnsafeMutableRawPointer) {
        writeSegment(i, to: out)
        VirtioNetHeader.completeChecksum(out, count: segmentLength(i), start: Int(header.checksumStart), offset: Int(header.checksumOffset))
    }

    // MARK: Internet checksum

    static func load16(_ p: UnsafeMutablePointer<UInt8>) -> UInt16 { UInt16(p[0]) << 8 | UInt16(p[1]) }

    static func store16(_ p: UnsafeMutablePointer<UInt8>, _ v: UInt16) {
        p[0] = UInt8(v >> 8)
        p[1] = UInt8(v & 0xFF)
    }

    /// The 32-bit sum of big-endian 16-bit words (an odd last byte padded with zero).
    static func sum(_ p: UnsafePointer<UInt8>, count: Int) -> UInt32 {
        UInt32(InternetChecksum.sum(UnsafeRawPointer(p), count: count))
    }

    static func sum(_ p: UnsafeMutablePointer<UInt8>, count: Int) -> UInt32 { sum(UnsafePointer(p), count: count) }

    static func fold(_ s: UInt32) -> UInt16 {
        var s = s
        while s >> 16 != 0 { s = (s & 0xFFFF) + (s >> 16) }
        return UInt16(s)
    }
}
