// The Internet checksum (RFC 1071) at the speed of the TUN offload path: every TCP segment the
// router cuts from a 64 KB TSO packet needs its checksum over ~1400 bytes, so the sum adds 32-bit
// words into a 64-bit accumulator (no carry handling until the fold) instead of 16-bit words one
// by one. RFC 1071 §2(B): the one's complement sum does not depend on byte order, so the words are
// summed as the machine loads them and the folded result is swapped to network order once.

public enum InternetChecksum {
    /// The one's complement sum of `count` bytes at `p` as big-endian 16-bit words (an odd last
    /// byte padded with zero), folded to 16 bits; add further sums with `add` and finish with `~`.
    @inline(__always)
    public static func sum(_ p: UnsafeRawPointer, count: Int) -> UInt16 {
        var accumulator: UInt64 = 0
        var i = 0
        // 2^32 words of 32 bits before the 64-bit accumulator could overflow: far above 64 KB.
        while i + 16 <= count {
            accumulator &+= UInt64(p.loadUnaligned(fromByteOffset: i, as: UInt32.self))
            accumulator &+= UInt64(p.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self))
            accumulator &+= UInt64(p.loadUnaligned(fromByteOffset: i + 8, as: UInt32.self))
            accumulator &+= UInt64(p.loadUnaligned(fromByteOffset: i + 12, as: UInt32.self))
            i += 16
        }
        while i + 4 <= count {
            accumulator &+= UInt64(p.loadUnaligned(fromByteOffset: i, as: UInt32.self))
            i += 4
        }
        if i + 2 <= count {
            accumulator &+= UInt64(p.loadUnaligned(fromByteOffset: i, as: UInt16.self))
            i += 2
        }
        if i < count {
            // The zero pad goes after the byte in memory, whatever the machine's byte order.
            var last: UInt16 = 0
            withUnsafeMutableBytes(of: &last) { $0[0] = p.load(fromByteOffset: i, as: UInt8.self) }
            accumulator &+= UInt64(last)
        }
        while accumulator >> 16 != 0 { accumulator = (accumulator & 0xFFFF) &+ (accumulator >> 16) }
        return UInt16(bigEndian: UInt16(truncatingIfNeeded: accumulator))
    }

    /// One's complement addition of two folded sums.
    @inline(__always)
    public static func add(_ a: UInt16, _ b: UInt16) -> UInt16 {
        let s = UInt32(a) &+ UInt32(b)
        return UInt16(truncatingIfNeeded: (s & 0xFFFF) &+ (s >> 16))
    }

    /// The folded sum of the TCP/UDP pseudo-header (RFC 9293 §3.1, RFC 8200 §8.1): source and
    /// destination address (at `addresses`, 8 or 32 bytes as they sit in the IP header), the
    /// protocol number and the L4 length.
    @inline(__always)
    public static func pseudoHeaderSum(addresses: UnsafeRawPointer, addressBytes: Int, protocolNumber: UInt8, length: Int) -> UInt16 {
        var s = UInt32(sum(addresses, count: addressBytes))
        s &+= UInt32(protocolNumber)
        s &+= UInt32(length >> 16) &+ UInt32(length & 0xFFFF)
        while s >> 16 != 0 { s = (s & 0xFFFF) &+ (s >> 16) }
        return UInt16(s)
    }
}
