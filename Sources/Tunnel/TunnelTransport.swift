// The QUIC settings both ends of a tunnel use, in one place so tquicd's router, its VPS and the
// tests agree: the ALPN, multipath with room for years of path IDs, DATAGRAM support, and the
// TLS side (raw Ed25519 keys, each end pinning the other: TunnelKey.swift).
import Bonding
import Congestion
import QUIC

public enum TunnelTransport {
    /// RFC 9001 §8.1: ALPN is mandatory; this names the tunnel's framing (TunnelFrame, v1).
    public static let alpn = "tquic-tunnel/1"
    public static let defaultPort: UInt16 = 4433
    /// The most a path probes for (RFC 8899 MAX_PLPMTU): a 1500-byte link less the IPv4 or IPv6
    /// and UDP headers. Each path starts at QUIC's 1200 (RFC 9000 §14) and finds its own.
    public static func maxUDPPayloadSize(ipv6: Bool) -> Int { ipv6 ? 1452 : 1472 }
    /// Every path carries at least this (RFC 9000 §14.1 requires 1200-byte datagrams).
    public static let baseUDPPayloadSize = 1200
    /// The TUN MTU never goes below IPv6's minimum (RFC 8200 §5), or the kernel turns IPv6 off on
    /// it; while a path still sends 1200-byte datagrams, inner packets between what they carry
    /// and this get an ICMP "too big" instead.
    public static let minimumTunnelMTU = 1280

    /// The largest inner packet a DATAGRAM of `maxUDPPayloadSize` carries: the short header (1 +
    /// 8-byte CID + up to 4 bytes of packet number), the AEAD tag (16), the DATAGRAM frame header
    /// (up to 3) and the tunnel header (TunnelFrame.headerLength), as
    /// `Connection.maxDatagramPayloadSize` counts them.
    public static func innerPacketCapacity(maxUDPPayloadSize: Int) -> Int {
        maxUDPPayloadSize - (1 + 8 + 4 + 16 + 3) - TunnelFrame.headerLength
    }

    /// The connection settings of either end.
    /// - Parameters:
    ///   - ipv6: the outer transport's family (the largest datagram a 1500-byte link takes).
    ///   - keepAlive: PING on every path idle this long (NAT bindings), nil: none.
    public static func connectionConfiguration(
        tls: TLSContext, congestion: CongestionAlgorithm = .bbr, ipv6: Bool = false,
        keepAlive: Duration? = nil
    ) -> ConnectionConfiguration {
        var c = ConnectionConfiguration(tls: tls)
        // Each path's MTU is its own (fibre 1500, PPPoE 1492, LTE less): DPLPMTUD per path.
        c.pmtuDiscovery = true
        c.keepAliveInterval = keepAlive
        // Path IDs are never reused (draft-ietf-quic-multipath §2), and a flapping WAN takes a new
        // one per revival: 65536 lasts a flap a minute for six weeks, and MAX_PATH_ID raises it.
        c.maxPathID = 1 << 16
        c.maxUDPPayloadSize = maxUDPPayloadSize(ipv6: ipv6)
        c.congestion = congestion
        // The tunnel's own queues hold packets; the connection's is only a short hand-over.
        c.datagramSendQueueLimit = 64
        return c
    }

    /// TLS for the router: its key, and the VPS's key as the only one it accepts.
    public static func routerTLS(key: TunnelKey, serverPublicKey: [UInt8]) -> TLSConfiguration {
        var t = TLSConfiguration(alpnProtocols: [alpn])
        t.identity = key
        t.verification = .pinnedPublicKeySHA256([TunnelKey.pin(publicKey: serverPublicKey)])
        return t
    }

    /// TLS for the VPS: its key; a client is accepted when `isTenant` knows its key's pin.
    public static func vpsTLS(key: TunnelKey, isTenant: @escaping @Sendable ([UInt8]) -> Bool) -> TLSConfiguration {
        var t = TLSConfiguration(alpnProtocols: [alpn])
        t.identity = key
        t.verification = .pinnedBy(isTenant)
        return t
    }
}
