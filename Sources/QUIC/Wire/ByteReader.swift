// A bounds-checked cursor over received bytes. Every parser in the QUIC module reads through it,
// so a truncated or oversized field becomes a thrown `WireError`, never a crash.
// Slices it returns share the underlying array: payloads are not copied.

/// Thrown by `ByteReader` when input ends early or a length field points past the end.
public enum WireError: Error, Equatable, Sendable {
    case truncated
    case invalidValue(String)
}

public struct ByteReader {
    public let bytes: [UInt8]
    public private(set) var position: Int
    public let end: Int

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
        self.position = 0
        self.end = bytes.count
    }

    public init(_ bytes: [UInt8], from start: Int, to end: Int) {
        precondition(start >= 0 && start <= end && end <= bytes.count)
        self.bytes = bytes
        self.position = start
        self.end = end
    }

    /// Reads a copy of `slice` (used for short, already-extracted fields).
    public init(_ slice: ArraySlice<UInt8>) {
        self.init(Array(slice))
    }

    public var remaining: Int { end - position }
    public var isAtEnd: Bool { position >= end }

    public mutating func readUInt8() throws -> UInt8 {
        guard position < end else { throw WireError.truncated }
        defer { position += 1 }
        return bytes[position]
    }

    public func peekUInt8() throws -> UInt8 {
        guard position < end else { throw WireError.truncated }
        return bytes[position]
    }

    public mutating func readUInt16() throws -> UInt16 {
        guard remaining >= 2 else { throw WireError.truncated }
        let v = UInt16(bytes[position]) << 8 | UInt16(bytes[position + 1])
        position += 2
        return v
    }

    public mutating func readUInt32() throws -> UInt32 {
        guard remaining >= 4 else { throw WireError.truncated }
        var v: UInt32 = 0
        for i in 0..<4 { v = v << 8 | UInt32(bytes[position + i]) }
        position += 4
        return v
    }

    /// Reads an unsigned big-endian integer of `count` (1...8) bytes.
    public mutating func readUInt(bytes count: Int) throws -> UInt64 {
        guard count >= 1 && count <= 8 else { throw WireError.invalidValue("integer width \(count)") }
        guard remaining >= count else { throw WireError.truncated }
        var v: UInt64 = 0
        for i in 0..<count { v = v << 8 | UInt64(bytes[position + i]) }
        position += count
        return v
    }

    /// RFC 9000 §16: variable-length integer, 1/2/4/8 bytes chosen by the two high bits.
    public mutating func readVarInt() throws -> UInt64 {
        let first = try peekUInt8()
        let length = 1 << Int(first >> 6)
        guard remaining >= length else { throw WireError.truncated }
        var v = UInt64(first & 0x3f)
        for i in 1..<length { v = v << 8 | UInt64(bytes[position + i]) }
        position += length
        return v
    }

    /// A varint that must fit an `Int` length (used for length prefixes).
    public mutating func readLength() throws -> Int {
        let v = try readVarInt()
        guard v <= UInt64(remaining) else { throw WireError.truncated }
        return Int(v)
    }

    public mutating func readBytes(_ count: Int) throws -> ArraySlice<UInt8> {
        guard count >= 0, remaining >= count else { throw WireError.truncated }
        defer { position += count }
        return bytes[position..<(position + count)]
    }

    public mutating func readRemaining() -> ArraySlice<UInt8> {
        defer { position = end }
        return bytes[position..<end]
    }

    public mutating func skip(_ count: Int) throws {
        guard count >= 0, remaining >= count else { throw WireError.truncated }
        position += count
    }
}
