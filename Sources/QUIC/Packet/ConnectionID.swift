// RFC 9000 §5.1: a connection ID is 0-20 opaque bytes. Stored inline (no heap) because the
// receive path looks one up for every packet.

public struct ConnectionID: Hashable, Sendable, CustomStringConvertible {
    public static let maxLength = 20
    // 20 bytes inline: 8 + 8 + 4.
    private var a: UInt64 = 0
    private var b: UInt64 = 0
    private var c: UInt32 = 0
    public private(set) var length: Int = 0

    public static let empty = ConnectionID()

    public init() {}

    /// - Precondition: `bytes.count` <= 20.
    public init<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        precondition(bytes.count <= ConnectionID.maxLength, "connection ID longer than 20 bytes")
        length = bytes.count
        #if _endian(little)
            // Byte i lives at bit 8*i of a, b, c: in memory, the 20 bytes in order (one copy, not a
            // loop of shifts; the receive path builds one per packet header).
            let copied: Void? = bytes.withContiguousStorageIfAvailable { src in
                withUnsafeMutableBytes(of: &self) { dst in
                    dst.baseAddress!.copyMemory(from: src.baseAddress!, byteCount: src.count)
                }
            }
            if copied != nil { return }
        #endif
        var i = 0
        for byte in bytes {
            setByte(i, byte)
            i += 1
        }
    }

    private mutating func setByte(_ i: Int, _ v: UInt8) {
        switch i {
        case 0..<8: a |= UInt64(v) << UInt64(8 * i)
        case 8..<16: b |= UInt64(v) << UInt64(8 * (i - 8))
        default: c |= UInt32(v) << UInt32(8 * (i - 16))
        }
    }

    public subscript(i: Int) -> UInt8 {
        precondition(i >= 0 && i < length)
        switch i {
        case 0..<8: return UInt8(truncatingIfNeeded: a >> UInt64(8 * i))
        case 8..<16: return UInt8(truncatingIfNeeded: b >> UInt64(8 * (i - 8)))
        default: return UInt8(truncatingIfNeeded: c >> UInt32(8 * (i - 16)))
        }
    }

    public var bytes: [UInt8] { (0..<length).map { self[$0] } }

    public func write(to writer: inout ByteWriter) {
        #if _endian(little)
            var copy = self
            withUnsafeBytes(of: &copy) { writer.bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: $0[0..<length])) }
        #else
            for i in 0..<length { writer.writeUInt8(self[i]) }
        #endif
    }

    public var isEmpty: Bool { length == 0 }

    public var description: String {
        bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }
}

/// RFC 9000 §10.3: a 16-byte stateless reset token bound to a connection ID.
public struct StatelessResetToken: Hashable, Sendable {
    public var high: UInt64
    public var low: UInt64

    public init<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        precondition(bytes.count == 16, "stateless reset token must be 16 bytes")
        var h: UInt64 = 0
        var l: UInt64 = 0
        for (i, byte) in bytes.enumerated() {
            if i < 8 { h = h << 8 | UInt64(byte) } else { l = l << 8 | UInt64(byte) }
        }
        high = h
        low = l
    }

    /// The last 16 bytes of `datagram` (RFC 9000 §10.3: where a stateless reset carries its token).
    /// - Precondition: `datagram.count >= 16`.
    init(lastBytesOf datagram: [UInt8]) {
        precondition(datagram.count >= 16)
        (high, low) = datagram.withUnsafeBytes { raw in
            let end = raw.count
            return (
                UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: end - 16, as: UInt64.self)),
                UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: end - 8, as: UInt64.self))
            )
        }
    }

    public var bytes: [UInt8] {
        var w = ByteWriter(capacity: 16)
        w.writeUInt(high, bytes: 8)
        w.writeUInt(low, bytes: 8)
        return w.bytes
    }
}
