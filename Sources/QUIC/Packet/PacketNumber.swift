// RFC 9000 §17.1 and Appendix A.2/A.3: packet numbers are sent truncated to 1-4 bytes and
// reconstructed from the largest packet number received so far.

public enum PacketNumberCoding {
    /// RFC 9000 §17.1 / A.2: enough bytes to represent more than twice the unacknowledged range.
    public static func encodedLength(packetNumber: UInt64, largestAcked: UInt64?) -> Int {
        let numUnacked: UInt64
        if let largestAcked { numUnacked = packetNumber - largestAcked } else { numUnacked = packetNumber + 1 }
        // bits needed for 2 * numUnacked, rounded up to whole bytes
        let needed = 64 - (numUnacked * 2).leadingZeroBitCount
        let bytes = max(1, (needed + 7) / 8)
        return min(bytes, 4)
    }

    /// RFC 9000 Appendix A.3: decode a truncated packet number.
    public static func decode(largest: UInt64?, truncated: UInt64, bits: Int) -> UInt64 {
        let expected = (largest.map { $0 &+ 1 }) ?? 0
        let win: UInt64 = 1 << UInt64(bits)
        let hwin = win / 2
        let mask = win - 1
        let candidate = (expected & ~mask) | truncated
        if candidate + hwin <= expected && candidate < (1 << 62) - win {
            return candidate + win
        }
        if candidate > expected + hwin && candidate >= win {
            return candidate - win
        }
        return candidate
    }
}
