// Appends wire-format fields to a growable byte array. Frame and packet builders write through it;
// callers keep one writer per connection and reset it with `removeAll(keepingCapacity:)` so the
// steady state does not allocate.

public struct ByteWriter {
    public var bytes: [UInt8]

    public init(capacity: Int = 0) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public init(bytes: [UInt8]) { self.bytes = bytes }

    public var count: Int { bytes.count }

    public mutating func removeAll(keepingCapacity: Bool = true) {
        bytes.removeAll(keepingCapacity: keepingCapacity)
    }

    public mutating func writeUInt8(_ v: UInt8) { bytes.append(v) }

    public mutating func writeUInt16(_ v: UInt16) {
        bytes.append(UInt8(truncatingIfNeeded: v >> 8))
        bytes.append(UInt8(truncatingIfNeeded: v))
    }

    public mutating func writeUInt32(_ v: UInt32) {
        for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt32(shift))) }
    }

    /// Big-endian unsigned integer in exactly `count` bytes (packet numbers, fixed fields).
    public mutating func writeUInt(_ v: UInt64, bytes count: Int) {
        for i in stride(from: count - 1, through: 0, by: -1) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(8 * i))) }
    }

    /// RFC 9000 §16: shortest encoding of a variable-length integer.
    /// - Precondition: `v` < 2^62.
    public mutating func writeVarInt(_ v: UInt64) {
        let len = VarInt.encodedLength(v)
        writeVarInt(v, length: len)
    }

    /// A varint in a fixed width (used to reserve a length field before its value is known).
    public mutating func writeVarInt(_ v: UInt64, length: Int) {
        precondition(v <= VarInt.max, "varint out of range")
        switch length {
        case 1: bytes.append(UInt8(v))
        case 2: writeUInt16(UInt16(v) | 0x4000)
        case 4: writeUInt32(UInt32(v) | 0x8000_0000)
        case 8: writeUInt(v | 0xC000_0000_0000_0000, bytes: 8)
        default: preconditionFailure("varint length \(length)")
        }
    }

    public mutating func writeBytes<S: Sequence>(_ s: S) where S.Element == UInt8 { bytes.append(contentsOf: s) }

    /// Overwrites a previously reserved fixed-width varint at `offset`.
    public mutating func patchVarInt(_ v: UInt64, at offset: Int, length: Int) {
        var tmp = ByteWriter(capacity: 8)
        tmp.writeVarInt(v, length: length)
        for i in 0..<length { bytes[offset + i] = tmp.bytes[i] }
    }
}

/// RFC 9000 §16 variable-length integer helpers.
public enum VarInt {
    public static let max: UInt64 = (1 << 62) - 1

    public static func encodedLength(_ v: UInt64) -> Int {
        switch v {
        case 0..<64: return 1
        case 64..<16384: return 2
        case 16384..<1_073_741_824: return 4
        default: return 8
        }
    }

    public static func encode(_ v: UInt64) -> [UInt8] {
        var w = ByteWriter(capacity: 8)
        w.writeVarInt(v)
        return w.bytes
    }
}
