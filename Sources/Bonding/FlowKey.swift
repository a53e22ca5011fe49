// The inner flow of a packet read from the TUN: its 5-tuple parsed from the IPv4/IPv6 header,
// hashed into one of the tunnel's 4095 ordering lanes. The sender calls it once per packet
// before stamping the tunnel header; lane 0 takes every packet that cannot be parsed. The parser
// reads only bytes it has checked are there: garbage gives nil, never a trap.

/// An inner packet's flow: addresses, protocol, and ports (or the ICMP echo identifier, or the
/// ESP SPI). IPv4 addresses sit in the low 32 bits of `sourceLow`/`destinationLow`.
///
/// Fragments carry no ports after the first, so every fragment — the first included — is keyed on
/// addresses and protocol only, which keeps one datagram's fragments in one lane.
public struct FlowKey: Hashable, Sendable, CustomStringConvertible {
    public enum Family: UInt8, Sendable {
        case ipv4 = 4
        case ipv6 = 6
    }

    public var family: Family
    public var sourceHigh: UInt64
    public var sourceLow: UInt64
    public var destinationHigh: UInt64
    public var destinationLow: UInt64
    /// IPv4 protocol or IPv6 final next header (after extension headers).
    public var transportProtocol: UInt8
    /// Source port, ICMP/ICMPv6 echo identifier, or the SPI's high half; 0 when none.
    public var sourcePort: UInt16
    /// Destination port, or the SPI's low half; 0 when none.
    public var destinationPort: UInt16

    public init(
        family: Family, sourceHigh: UInt64 = 0, sourceLow: UInt64, destinationHigh: UInt64 = 0, destinationLow: UInt64,
        transportProtocol: UInt8, sourcePort: UInt16 = 0, destinationPort: UInt16 = 0
    ) {
        self.family = family
        self.sourceHigh = sourceHigh
        self.sourceLow = sourceLow
        self.destinationHigh = destinationHigh
        self.destinationLow = destinationLow
        self.transportProtocol = transportProtocol
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
    }

    /// The lane used for packets whose flow cannot be parsed.
    public static let fallbackLane: UInt16 = 0

    /// Parses an inner IP packet.
    /// - Returns: nil when the bytes are not a plausible IPv4 or IPv6 header.
    public init?(packet: UnsafeRawBufferPointer) {
        guard packet.count >= 1 else { return nil }
        switch packet[0] >> 4 {
        case 4: self.init(ipv4: packet)
        case 6: self.init(ipv6: packet)
        default: return nil
        }
    }

    /// The ordering lane of a packet: its flow's lane, or `fallbackLane` when it has none.
    /// - Parameter seed: per-connection hash seed (injected randomness), the same for the
    ///   connection's lifetime, so unlucky lane collisions differ between connections.
    public static func lane(of packet: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt16 {
        FlowKey(packet: packet)?.lane(seed: seed) ?? fallbackLane
    }

    /// This flow's lane, in `1 ..< TunnelFrame.laneCount`.
    public func lane(seed: UInt64 = 0) -> UInt16 {
        UInt16(truncatingIfNeeded: 1 + hash(seed: seed) % UInt64(TunnelFrame.laneCount - 1))
    }

    /// A deterministic 64-bit hash (splitmix64 finalizer over the key's words); unlike
    /// `Hasher`, the same on both ends and across runs.
    public func hash(seed: UInt64 = 0) -> UInt64 {
        var h = Self.mix(seed ^ 0x243f_6a88_85a3_08d3)
        h = Self.mix(h ^ sourceHigh)
        h = Self.mix(h ^ sourceLow)
        h = Self.mix(h ^ destinationHigh)
        h = Self.mix(h ^ destinationLow)
        let tail =
            UInt64(family.rawValue) << 40 | UInt64(transportProtocol) << 32
            | UInt64(sourcePort) << 16 | UInt64(destinationPort)
        return Self.mix(h ^ tail)
    }

    @inline(__always)
    static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9e37_79b9_7f4a_7c15
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    public var description: String {
        "\(family) proto \(transportProtocol) \(sourceHigh):\(sourceLow):\(sourcePort) → \(destinationHigh):\(destinationLow):\(destinationPort)"
    }
}

// MARK: - Parsing

extension FlowKey {
    /// IP protocol numbers the parser looks into.
    enum IPProtocol {
        static let icmp: UInt8 = 1
        static let tcp: UInt8 = 6
        static let udp: UInt8 = 17
        static let dccp: UInt8 = 33
        static let esp: UInt8 = 50
        static let ah: UInt8 = 51
        static let icmpv6: UInt8 = 58
        static let noNextHeader: UInt8 = 59
        static let sctp: UInt8 = 132
        static let udpLite: UInt8 = 136
        // IPv6 extension headers.
        static let hopByHop: UInt8 = 0
        static let routing: UInt8 = 43
        static let fragment: UInt8 = 44
        static let destinationOptions: UInt8 = 60
        static let mobility: UInt8 = 135
        static let hip: UInt8 = 139
        static let shim6: UInt8 = 140
    }

    init?(ipv4 p: UnsafeRawBufferPointer) {
        guard p.count >= 20 else { return nil }
        let headerLength = Int(p[0] & 0x0f) * 4
        guard headerLength >= 20, headerLength <= p.count else { return nil }
        // Trust the total length only when it is consistent (GSO super-packets may carry 0).
        let totalLength = Int(UInt16(p[2]) << 8 | UInt16(p[3]))
        let end = (totalLength >= headerLength && totalLength <= p.count) ? totalLength : p.count
        let fragmentField = UInt16(p[6]) << 8 | UInt16(p[7])
        let isFragment = fragmentField & 0x3fff != 0  // MF flag or a non-zero offset
        let proto = p[9]
        let ports = isFragment ? (0, 0) : Self.ports(p, at: headerLength, end: end, proto: proto, isIPv6: false)
        self.init(
            family: .ipv4,
            sourceLow: UInt64(Self.load32(p, 12)), destinationLow: UInt64(Self.load32(p, 16)),
            transportProtocol: proto, sourcePort: ports.0, destinationPort: ports.1)
    }

    init?(ipv6 p: UnsafeRawBufferPointer) {
        guard p.count >= 40 else { return nil }
        let payloadLength = Int(UInt16(p[4]) << 8 | UInt16(p[5]))
        // Payload length 0 is a jumbogram or a GSO super-packet: use what we have.
        let end = (payloadLength > 0 && 40 + payloadLength <= p.count) ? 40 + payloadLength : p.count
        var next = p[6]
        var offset = 40
        var isFragment = false
        var truncated = false
        // Walk at most 8 extension headers; a longer chain is treated as opaque.
        walk: for _ in 0..<8 {
            switch next {
            case IPProtocol.hopByHop, IPProtocol.routing, IPProtocol.destinationOptions,
                IPProtocol.mobility, IPProtocol.hip, IPProtocol.shim6:
                guard end - offset >= 8 else {
                    truncated = true
                    break walk
                }
                let length = (Int(p[offset + 1]) + 1) * 8
                guard end - offset >= length else {
                    truncated = true
                    break walk
                }
                if next == IPProtocol.mobility { break walk }  // carries no ports; ends the chain
                next = p[offset]
                offset += length
            case IPProtocol.fragment:
                guard end - offset >= 8 else {
                    truncated = true
                    break walk
                }
                let field = UInt16(p[offset + 2]) << 8 | UInt16(p[offset + 3])
                if field & 0xfff9 != 0 { isFragment = true }  // offset (13 bits) or M flag
                next = p[offset]
                offset += 8
            case IPProtocol.ah:
                guard end - offset >= 8 else {
                    truncated = true
                    break walk
                }
                let length = (Int(p[offset + 1]) + 2) * 4
                guard end - offset >= length else {
                    truncated = true
                    break walk
                }
                next = p[offset]
                offset += length
            default:
                break walk
            }
        }
        let ports = (isFragment || truncated) ? (0, 0) : Self.ports(p, at: offset, end: end, proto: next, isIPv6: true)
        self.init(
            family: .ipv6,
            sourceHigh: Self.load64(p, 8), sourceLow: Self.load64(p, 16),
            destinationHigh: Self.load64(p, 24), destinationLow: Self.load64(p, 32),
            transportProtocol: next, sourcePort: ports.0, destinationPort: ports.1)
    }

    /// The two 16-bit flow discriminators of a transport header at `offset` (zeros when the
    /// protocol has none or the header is cut short).
    static func ports(_ p: UnsafeRawBufferPointer, at offset: Int, end: Int, proto: UInt8, isIPv6: Bool) -> (UInt16, UInt16) {
        let available = end - offset
        switch proto {
        case IPProtocol.tcp, IPProtocol.udp, IPProtocol.sctp, IPProtocol.udpLite, IPProtocol.dccp:
            guard available >= 4 else { return (0, 0) }
            return (load16(p, offset), load16(p, offset + 2))
        case IPProtocol.esp:
            guard available >= 4 else { return (0, 0) }
            return (load16(p, offset), load16(p, offset + 2))
        case IPProtocol.icmp where !isIPv6, IPProtocol.icmpv6 where isIPv6:
            guard available >= 8 else { return (0, 0) }
            let type = p[offset]
            // Echo request/reply: ICMP 8/0, ICMPv6 128/129. The identifier names the "flow".
            let isEcho = isIPv6 ? (type == 128 || type == 129) : (type == 8 || type == 0)
            return isEcho ? (load16(p, offset + 4), 0) : (0, 0)
        default:
            return (0, 0)
        }
    }

    @inline(__always)
    static func load16(_ p: UnsafeRawBufferPointer, _ i: Int) -> UInt16 { UInt16(p[i]) << 8 | UInt16(p[i + 1]) }

    @inline(__always)
    static func load32(_ p: UnsafeRawBufferPointer, _ i: Int) -> UInt32 {
        UInt32(bigEndian: p.loadUnaligned(fromByteOffset: i, as: UInt32.self))
    }

    @inline(__always)
    static func load64(_ p: UnsafeRawBufferPointer, _ i: Int) -> UInt64 {
        UInt64(bigEndian: p.loadUnaligned(fromByteOffset: i, as: UInt64.self))
    }
}
