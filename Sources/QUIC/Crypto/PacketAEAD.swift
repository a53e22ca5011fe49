// Packet payload protection (RFC 9001 §5.3): an AEAD context created once per key and used
// in place, so sealing or opening a packet allocates nothing.
import CNIOBoringSSL

public final class PacketAEAD {
    public let suite: CipherSuite
    private let ctx: UnsafeMutablePointer<EVP_AEAD_CTX>
    /// The 12-byte IV as two integers: the nonce is the IV XOR the left-padded packet number.
    private let ivHigh: UInt32
    private let ivLow: UInt64

    public init(suite: CipherSuite, key: [UInt8], iv: [UInt8]) {
        precondition(key.count == suite.keyLength && iv.count == 12)
        self.suite = suite
        let context = UnsafeMutablePointer<EVP_AEAD_CTX>.allocate(capacity: 1)
        EVP_AEAD_CTX_zero(context)
        let ok = key.withUnsafeBufferPointer { k in
            EVP_AEAD_CTX_init(context, suite.aead, k.baseAddress, k.count, suite.tagLength, nil)
        }
        ctx = context
        precondition(ok == 1, "EVP_AEAD_CTX_init failed")
        var h: UInt32 = 0
        var l: UInt64 = 0
        for i in 0..<4 { h = h << 8 | UInt32(iv[i]) }
        for i in 4..<12 { l = l << 8 | UInt64(iv[i]) }
        ivHigh = h
        ivLow = l
    }

    deinit {
        EVP_AEAD_CTX_cleanup(ctx)
        ctx.deallocate()
    }

    /// RFC 9001 §5.3: nonce = iv XOR packet number (left-padded to 12 bytes).
    /// draft-ietf-quic-multipath §2.4: the path ID goes in the 32 bits above the packet number.
    @inline(__always)
    func makeNonce(packetNumber: UInt64, pathID: UInt32) -> (UInt64, UInt64) {
        var n: (UInt64, UInt64) = (0, 0)
        let high = ivHigh ^ pathID
        let low = ivLow ^ packetNumber
        withUnsafeMutableBytes(of: &n) { p in
            for i in 0..<4 { p[i] = UInt8(truncatingIfNeeded: high >> UInt32(24 - 8 * i)) }
            for i in 0..<8 { p[4 + i] = UInt8(truncatingIfNeeded: low >> UInt64(56 - 8 * i)) }
        }
        return n
    }

    /// Nonce bytes for tests and diagnostics.
    public func nonce(packetNumber: UInt64, pathID: UInt32 = 0) -> [UInt8] {
        var n = makeNonce(packetNumber: packetNumber, pathID: pathID)
        return withUnsafeBytes(of: &n) { Array($0.prefix(12)) }
    }

    /// Seals `buffer[payloadStart..<payloadEnd]` in place, appending the tag at `payloadEnd`.
    /// - Precondition: `buffer.count >= payloadEnd + 16`.
    /// - Returns: the end of the sealed payload (payloadEnd + tag length).
    @discardableResult
    public func seal(
        _ buffer: UnsafeMutableRawBufferPointer, headerLength: Int, payloadEnd: Int,
        packetNumber: UInt64, pathID: UInt32 = 0
    ) -> Int {
        var nonce = makeNonce(packetNumber: packetNumber, pathID: pathID)
        let base = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
        var outLen = 0
        let ok = withUnsafeBytes(of: &nonce) { n in
            EVP_AEAD_CTX_seal(
                ctx, base + headerLength, &outLen, buffer.count - headerLength,
                n.baseAddress!.assumingMemoryBound(to: UInt8.self), 12,
                base + headerLength, payloadEnd - headerLength,
                base, headerLength)
        }
        precondition(ok == 1, "AEAD seal failed")
        return headerLength + outLen
    }

    /// Opens `buffer[headerLength..<end]` (ciphertext + tag) in place; the header is the AAD.
    /// - Returns: the plaintext length, or nil if authentication failed.
    public func open(
        _ buffer: UnsafeMutableRawBufferPointer, headerLength: Int, end: Int,
        packetNumber: UInt64, pathID: UInt32 = 0
    ) -> Int? {
        guard end - headerLength >= suite.tagLength else { return nil }
        var nonce = makeNonce(packetNumber: packetNumber, pathID: pathID)
        let base = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
        var outLen = 0
        let ok = withUnsafeBytes(of: &nonce) { n in
            EVP_AEAD_CTX_open(
                ctx, base + headerLength, &outLen, end - headerLength,
                n.baseAddress!.assumingMemoryBound(to: UInt8.self), 12,
                base + headerLength, end - headerLength,
                base, headerLength)
        }
        // A failed open leaves an error on BoringSSL's queue; a successful one does not.
        guard ok == 1 else {
            ERR_clear_error()
            return nil
        }
        return outLen
    }
}
