// Sealing and opening whole packets in place (RFC 9001 §5.3-5.4): AEAD over the payload with the
// header as associated data, then header protection over the first byte and packet number.

/// The keys of one direction at one encryption level (Initial, 0-RTT, Handshake, or one 1-RTT phase).
public final class PacketKeys {
    public let suite: CipherSuite
    public let secret: [UInt8]
    public let aead: PacketAEAD
    public let headerProtection: HeaderProtection
    /// RFC 9001 §6.6: packets protected (send) or failing authentication (receive) with this key.
    public var usageCount: UInt64 = 0

    public init(secret: [UInt8], suite: CipherSuite) {
        let m = KeySchedule.packetKeyMaterial(secret: secret, suite: suite)
        self.suite = suite
        self.secret = secret
        self.aead = PacketAEAD(suite: suite, key: m.key, iv: m.iv)
        self.headerProtection = HeaderProtection(suite: suite, key: m.hp)
    }

    private init(secret: [UInt8], suite: CipherSuite, headerProtection: HeaderProtection) {
        let m = KeySchedule.packetKeyMaterial(secret: secret, suite: suite)
        self.suite = suite
        self.secret = secret
        self.aead = PacketAEAD(suite: suite, key: m.key, iv: m.iv)
        self.headerProtection = headerProtection
    }

    /// RFC 9001 §6.1: the next key phase; the header protection key is not updated.
    public func nextGeneration() -> PacketKeys {
        PacketKeys(
            secret: KeySchedule.nextGenerationSecret(secret, suite: suite), suite: suite,
            headerProtection: headerProtection)
    }

    public static func initial(destinationConnectionID: ConnectionID, isServer: Bool) -> (read: PacketKeys, write: PacketKeys) {
        let s = KeySchedule.initialSecrets(destinationConnectionID: destinationConnectionID)
        let client = PacketKeys(secret: s.client, suite: .aes128GCMSHA256)
        let server = PacketKeys(secret: s.server, suite: .aes128GCMSHA256)
        return isServer ? (client, server) : (server, client)
    }
}

public enum PacketProtection {
    /// Seals a packet written at `buffer[start..<payloadEnd]` whose packet number field
    /// (`pnLength` bytes) starts at `pnOffset`. Appends the AEAD tag, then applies header protection.
    /// - Returns: the packet's end offset.
    @discardableResult
    public static func seal(
        _ buffer: inout [UInt8], start: Int, pnOffset: Int, pnLength: Int, payloadEnd: Int,
        packetNumber: UInt64, keys: PacketKeys, pathID: UInt32 = 0
    ) -> Int {
        let tag = keys.suite.tagLength
        if buffer.count < payloadEnd + tag {
            buffer.append(contentsOf: repeatElement(0, count: payloadEnd + tag - buffer.count))
        }
        let headerLength = pnOffset + pnLength - start
        let end = buffer.withUnsafeMutableBytes { raw -> Int in
            let packet = UnsafeMutableRawBufferPointer(rebasing: raw[start..<(payloadEnd + tag)])
            let sealedEnd = keys.aead.seal(
                packet, headerLength: headerLength, payloadEnd: payloadEnd - start,
                packetNumber: packetNumber, pathID: pathID)
            applyHeaderProtection(packet, pnOffset: pnOffset - start, pnLength: pnLength, hp: keys.headerProtection)
            return start + sealedEnd
        }
        keys.usageCount += 1
        return end
    }

    /// RFC 9001 §5.4.1/§5.4.2: mask the low bits of the first byte and the packet number bytes,
    /// with a sample taken 4 bytes after the start of the packet number field.
    static func applyHeaderProtection(_ packet: UnsafeMutableRawBufferPointer, pnOffset: Int, pnLength: Int, hp: HeaderProtection) {
        let base = packet.baseAddress!.assumingMemoryBound(to: UInt8.self)
        var mask: UInt64 = 0
        withUnsafeMutableBytes(of: &mask) { m in
            let mp = m.baseAddress!.assumingMemoryBound(to: UInt8.self)
            hp.mask(sample: base + pnOffset + 4, into: mp)
            let isLong = base[0] & 0x80 != 0
            base[0] ^= mp[0] & (isLong ? 0x0f : 0x1f)
            for i in 0..<pnLength { base[pnOffset + i] ^= mp[1 + i] }
        }
    }

    /// The result of opening a packet: where its plaintext payload sits in the buffer.
    public struct Opened {
        public var packetNumber: UInt64
        public var firstByte: UInt8
        public var payloadStart: Int
        public var payloadEnd: Int
        /// 1-RTT only: the key phase bit (RFC 9001 §6).
        public var keyPhase: Bool { firstByte & 0x04 != 0 }
    }

    /// Removes header protection in place and returns (first byte, packet number length, truncated PN).
    /// Returns nil if the packet is too short to sample.
    public static func removeHeaderProtection(_ buffer: inout [UInt8], header: PacketHeader, hp: HeaderProtection)
        -> (firstByte: UInt8, pnLength: Int, truncatedPN: UInt64)?
    {
        let start = header.packetStart
        let pnOffset = header.packetNumberOffset
        let end = header.packetEnd
        guard end <= buffer.count, pnOffset + 4 + 16 <= end else { return nil }
        return buffer.withUnsafeMutableBytes { raw in
            let base = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
            var mask: UInt64 = 0
            return withUnsafeMutableBytes(of: &mask) { m in
                let mp = m.baseAddress!.assumingMemoryBound(to: UInt8.self)
                hp.mask(sample: base + pnOffset + 4, into: mp)
                let isLong = base[start] & 0x80 != 0
                base[start] ^= mp[0] & (isLong ? 0x0f : 0x1f)
                let first = base[start]
                let pnLength = Int(first & 0x03) + 1
                var pn: UInt64 = 0
                for i in 0..<pnLength {
                    base[pnOffset + i] ^= mp[1 + i]
                    pn = pn << 8 | UInt64(base[pnOffset + i])
                }
                return (first, pnLength, pn)
            }
        }
    }

    /// Opens the AEAD payload of a packet whose header protection was already removed.
    public static func openPayload(
        _ buffer: inout [UInt8], header: PacketHeader, pnLength: Int, packetNumber: UInt64,
        keys: PacketKeys, pathID: UInt32 = 0
    ) -> Int? {
        let start = header.packetStart
        let headerLength = header.packetNumberOffset + pnLength - start
        let length = header.packetEnd - start
        let plain = buffer.withUnsafeMutableBytes { raw -> Int? in
            let packet = UnsafeMutableRawBufferPointer(rebasing: raw[start..<header.packetEnd])
            return keys.aead.open(packet, headerLength: headerLength, end: length, packetNumber: packetNumber, pathID: pathID)
        }
        return plain.map { header.packetNumberOffset + pnLength + $0 }
    }
}
