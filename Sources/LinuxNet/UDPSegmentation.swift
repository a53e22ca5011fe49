// UDP segmentation offload on Linux (udp(7), UDP_SEGMENT and UDP_GRO): GSO sends several
// equal-size datagrams to one destination as one sendmsg whose UDP_SEGMENT control message gives
// the segment size (the last segment may be shorter), and GRO hands several received datagrams of
// one flow over as one buffer whose UDP_GRO control message gives the size they are split at.
// The control-message layout is ECNControlMessage.swift's; the batch types use both.
import Glibc

enum UDPSegmentation {
    /// SOL_UDP (= IPPROTO_UDP), which Swift's Glibc module does not import.
    static let level = Int32(IPPROTO_UDP)
    /// <netinet/udp.h>: UDP_SEGMENT (a __u16 segment size, as sockopt or cmsg) and UDP_GRO (an int:
    /// on as sockopt, the segment size as cmsg).
    static let segmentOption: Int32 = 103
    static let groOption: Int32 = 104

    /// The kernel's UDP_MAX_SEGMENTS (64 since Linux 4.18; later kernels allow 128): more segments
    /// in one send fail with EINVAL.
    static let maxSegments = 64
    /// The bytes one GSO send may carry: the IPv4 total length (65535) less the IPv4 and UDP
    /// headers; the same bound is kept for IPv6, whose payload length counts the UDP header only.
    static let maxSendBytes = 65535 - 20 - 8

    /// A UDP_SEGMENT message with a __u16 (udp_cmsg_send checks cmsg_len == CMSG_LEN(2)).
    static let segmentMessageSpace = ECNControlMessage.space(MemoryLayout<UInt16>.size)
    /// A UDP_GRO message with an int, as the kernel attaches it to a coalesced receive.
    static let groMessageSpace = ECNControlMessage.space(MemoryLayout<Int32>.size)

    /// Writes a UDP_SEGMENT message at `buffer` (aligned to size_t, segmentMessageSpace bytes) and
    /// returns the bytes it takes.
    static func writeSegmentSize(_ size: Int, into buffer: UnsafeMutableRawPointer) -> Int {
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: segmentMessageSpace)
        buffer.storeBytes(of: ECNControlMessage.length(MemoryLayout<UInt16>.size), toByteOffset: 0, as: Int.self)
        buffer.storeBytes(of: level, toByteOffset: ECNControlMessage.levelOffset, as: Int32.self)
        buffer.storeBytes(of: segmentOption, toByteOffset: ECNControlMessage.typeOffset, as: Int32.self)
        buffer.storeBytes(of: UInt16(size), toByteOffset: ECNControlMessage.headerSize, as: UInt16.self)
        return segmentMessageSpace
    }

    /// The segment size of a UDP_GRO message (`level`, `type` and data as the walk of
    /// ECNControlMessage.forEach yields them); nil for any other message.
    static func groSegmentSize(level: Int32, type: Int32, data: UnsafeRawPointer, length: Int) -> Int? {
        guard level == UDPSegmentation.level, type == groOption, length >= MemoryLayout<Int32>.size else { return nil }
        return Int(data.loadUnaligned(as: Int32.self))
    }

    /// Whether a failed GSO send means the kernel or the route cannot segment (udp(7), and
    /// udp_send_skb: EIO when the device lacks checksum offload, EINVAL for a socket without UDP
    /// checksums or a segment size it refuses, ENOPROTOOPT on a kernel without UDP_SEGMENT), so
    /// the socket sends one datagram per message from then on.
    static func isRefusal(_ error: Int32) -> Bool {
        error == EIO || error == EINVAL || error == ENOPROTOOPT || error == EOPNOTSUPP
    }

    /// Asks for GSO on `fd`: a UDP_SEGMENT sockopt of 0 (no default segmentation) succeeds only where
    /// the kernel knows the option (Linux 4.18).
    static func probeSegmentation(_ fd: Int32) -> Bool {
        var zero: Int32 = 0
        return setsockopt(fd, level, segmentOption, &zero, socklen_t(MemoryLayout<Int32>.size)) == 0
    }

    /// Turns GRO on for `fd` (Linux 5.0); false where the kernel refuses (ENOPROTOOPT).
    static func enableGRO(_ fd: Int32) -> Bool {
        var one: Int32 = 1
        return setsockopt(fd, level, groOption, &one, socklen_t(MemoryLayout<Int32>.size)) == 0
    }
}
