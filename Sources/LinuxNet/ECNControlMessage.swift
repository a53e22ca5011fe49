// Ancillary data (cmsg) for the ECN bits of UDP datagrams: the IP_TOS / IPV6_TCLASS control
// message that marks an outgoing datagram, and the one the kernel attaches to a received datagram
// once IP_RECVTOS / IPV6_RECVTCLASS is on (RFC 9000 §13.4: ECN needs the codepoint of every
// datagram, which plain sendto/recvfrom cannot carry).
//
// Glibc's CMSG_* macros do not import into Swift, so the layout is computed here by hand for
// Linux: `struct cmsghdr { size_t cmsg_len; int cmsg_level; int cmsg_type; }`, the data starts at
// the header size rounded up to the alignment of size_t, and the next header at the previous one
// plus its cmsg_len rounded up the same way (CMSG_SPACE(n) = align(header) + align(n)).
import Glibc
import QUIC

enum ECNControlMessage {
    /// cmsg data and headers are aligned to size_t.
    static func align(_ n: Int) -> Int {
        let a = MemoryLayout<Int>.size
        return (n + a - 1) & ~(a - 1)
    }

    /// Offsets of the cmsghdr fields, and where the data starts (CMSG_DATA).
    static let levelOffset = MemoryLayout<Int>.size
    static let typeOffset = levelOffset + MemoryLayout<Int32>.size
    static let headerSize = align(typeOffset + MemoryLayout<Int32>.size)

    /// CMSG_LEN(n): the cmsg_len of a message with n data bytes.
    static func length(_ dataLength: Int) -> Int { headerSize + dataLength }
    /// CMSG_SPACE(n): the bytes a message with n data bytes takes in the buffer.
    static func space(_ dataLength: Int) -> Int { headerSize + align(dataLength) }

    /// Room for what a receive can bring: IP_TOS (1 byte) and IPV6_TCLASS (int), with slack for
    /// any other message the kernel adds; a truncated buffer only loses the codepoint.
    static let receiveCapacity = 2 * space(MemoryLayout<Int32>.size) + 64
    /// One IP_TOS or IPV6_TCLASS message with an int.
    static let sendCapacity = space(MemoryLayout<Int32>.size)

    /// Writes the message that marks an outgoing datagram with `ecn` and returns its length
    /// (msg_controllen). IPv4 destinations (also v4-mapped ones on an IPv6 socket, which Linux
    /// sends through the IPv4 stack) take IP_TOS, IPv6 ones IPV6_TCLASS; both an int on Linux.
    /// DSCP stays 0: only the two ECN bits are set.
    static func writeMarking(_ ecn: ECNCodepoint, ipv4: Bool, into buffer: UnsafeMutableRawPointer) -> Int {
        let total = sendCapacity
        // Zero the whole space so the padding bytes are defined.
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: total)
        buffer.storeBytes(of: length(MemoryLayout<Int32>.size), toByteOffset: 0, as: Int.self)
        buffer.storeBytes(of: ipv4 ? Int32(IPPROTO_IP) : Int32(IPPROTO_IPV6), toByteOffset: levelOffset, as: Int32.self)
        buffer.storeBytes(of: ipv4 ? IP_TOS : IPV6_TCLASS, toByteOffset: typeOffset, as: Int32.self)
        buffer.storeBytes(of: Int32(ecn.rawValue), toByteOffset: headerSize, as: Int32.self)
        return total
    }

    /// The codepoint in a received datagram's control messages; notECT when there is none (the
    /// option is off, or the buffer was truncated).
    static func parseECN(_ buffer: UnsafeRawPointer, length controlLength: Int) -> ECNCodepoint {
        var found: ECNCodepoint?
        forEach(buffer, length: controlLength) { level, type, data, dataLength in
            if found == nil { found = codepoint(level: level, type: type, data: data, length: dataLength) }
        }
        return found ?? .notECT
    }

    /// The codepoint an IP_TOS / IPV6_TCLASS message carries; nil for any other message.
    @inline(__always)
    static func codepoint(level: Int32, type: Int32, data: UnsafeRawPointer, length dataLength: Int) -> ECNCodepoint? {
        var trafficClass: UInt8?
        if level == Int32(IPPROTO_IP) && type == IP_TOS && dataLength >= 1 {
            // IPv4 (Linux): the TOS byte on its own.
            trafficClass = data.load(as: UInt8.self)
        } else if level == Int32(IPPROTO_IPV6) && type == IPV6_TCLASS && dataLength >= MemoryLayout<Int32>.size {
            // IPv6: the traffic class as an int.
            trafficClass = UInt8(truncatingIfNeeded: data.loadUnaligned(as: Int32.self))
        }
        // RFC 3168 §5: the ECN field is the two low bits.
        return trafficClass.map { ECNCodepoint(rawValue: $0 & 0b11)! }
    }

    /// Calls `body(level, type, data, dataLength)` for every complete message in the buffer, in
    /// order; walks the messages like CMSG_FIRSTHDR / CMSG_NXTHDR.
    @inline(__always)
    static func forEach(
        _ buffer: UnsafeRawPointer, length controlLength: Int,
        _ body: (Int32, Int32, UnsafeRawPointer, Int) -> Void
    ) {
        var offset = 0
        while offset + headerSize <= controlLength {
            let cmsgLen = buffer.load(fromByteOffset: offset, as: Int.self)
            guard cmsgLen >= headerSize, offset + cmsgLen <= controlLength else { break }
            let level = buffer.load(fromByteOffset: offset + levelOffset, as: Int32.self)
            let type = buffer.load(fromByteOffset: offset + typeOffset, as: Int32.self)
            body(level, type, buffer + offset + headerSize, cmsgLen - headerSize)
            offset += align(cmsgLen)
        }
    }
}
