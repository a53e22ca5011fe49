// Ancillary data for where a received datagram arrived: the local (destination) address and the
// interface index, from IP_PKTINFO / IPV6_PKTINFO (ip(7), ipv6(7)). A VPS socket bound to the
// wildcard address serves several addresses and interfaces; with this it can tell the router's
// paths apart by the address each one reached, and answer from the same one.
//
// Layouts (Linux): struct in_pktinfo { int ipi_ifindex; struct in_addr ipi_spec_dst; struct
// in_addr ipi_addr; }, struct in6_pktinfo { struct in6_addr ipi6_addr; unsigned ipi6_ifindex; }.
import Glibc
import QUIC

/// Where a datagram arrived.
public struct PacketInfo: Sendable, Equatable {
    /// The datagram's destination address (the socket's port).
    public var localAddress: SocketAddress
    /// The interface it came in on (if_nametoindex's numbering).
    public var interfaceIndex: Int32
}

enum PacketInfoControlMessage {
    static let inPacketInfoSize = 12
    static let in6PacketInfoSize = 20
    /// Room for both (a dual-stack socket can get either).
    static let receiveSpace = ECNControlMessage.space(inPacketInfoSize) + ECNControlMessage.space(in6PacketInfoSize)

    /// Asks the kernel for the messages on a socket (best effort, like the ECN ones).
    static func enable(_ fd: Int32, ipv6: Bool) {
        var one: Int32 = 1
        if ipv6 { setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_RECVPKTINFO, &one, socklen_t(MemoryLayout<Int32>.size)) }
        // IPv4, also for v4-mapped traffic on a dual-stack IPv6 socket.
        setsockopt(fd, Int32(IPPROTO_IP), IP_PKTINFO, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// The packet info one control message carries, or nil for any other message.
    @inline(__always)
    static func packetInfo(level: Int32, type: Int32, data: UnsafeRawPointer, length: Int, port: UInt16) -> PacketInfo? {
        if level == Int32(IPPROTO_IP) && type == IP_PKTINFO && length >= inPacketInfoSize {
            let index = data.loadUnaligned(as: Int32.self)
            let address = SocketAddress(ipBytes: UnsafeRawBufferPointer(start: data + 8, count: 4), port: port)
            return PacketInfo(localAddress: address, interfaceIndex: index)
        }
        if level == Int32(IPPROTO_IPV6) && type == IPV6_PKTINFO && length >= in6PacketInfoSize {
            let index = Int32(bitPattern: data.loadUnaligned(fromByteOffset: 16, as: UInt32.self))
            let address = SocketAddress(ipBytes: UnsafeRawBufferPointer(start: data, count: 16), port: port)
            return PacketInfo(localAddress: address, interfaceIndex: index)
        }
        return nil
    }
}
