// Header protection (RFC 9001 §5.4): a 5-byte mask from a 16-byte ciphertext sample, with
// AES-ECB (§5.4.3) or ChaCha20 (§5.4.4). The key schedule is expanded once per key.
import CNIOBoringSSL

public final class HeaderProtection {
    public let suite: CipherSuite
    private let aesKey: UnsafeMutablePointer<AES_KEY>?
    private let chachaKey: [UInt8]

    public init(suite: CipherSuite, key: [UInt8]) {
        self.suite = suite
        if suite == .chacha20Poly1305SHA256 {
            aesKey = nil
            chachaKey = key
        } else {
            let k = UnsafeMutablePointer<AES_KEY>.allocate(capacity: 1)
            let rc = key.withUnsafeBufferPointer { AES_set_encrypt_key($0.baseAddress, UInt32(key.count * 8), k) }
            precondition(rc == 0, "AES_set_encrypt_key failed")
            aesKey = k
            chachaKey = []
        }
    }

    deinit { aesKey?.deallocate() }

    /// Computes the mask for a 16-byte sample at `sample`; writes 5 bytes to `mask`.
    @inline(__always)
    public func mask(sample: UnsafePointer<UInt8>, into mask: UnsafeMutablePointer<UInt8>) {
        if let aesKey {
            // RFC 9001 §5.4.3: mask = AES-ECB(hp_key, sample)
            var block: (UInt64, UInt64) = (0, 0)
            withUnsafeMutableBytes(of: &block) { b in
                let out = b.baseAddress!.assumingMemoryBound(to: UInt8.self)
                AES_encrypt(sample, out, aesKey)
                for i in 0..<5 { mask[i] = out[i] }
            }
        } else {
            // RFC 9001 §5.4.4: counter = sample[0..3] little-endian, nonce = sample[4..15];
            // mask = ChaCha20(hp_key, counter, nonce, {0,0,0,0,0}).
            let counter = UInt32(sample[0]) | UInt32(sample[1]) << 8 | UInt32(sample[2]) << 16 | UInt32(sample[3]) << 24
            var zeros: (UInt64) = 0
            withUnsafeMutableBytes(of: &zeros) { z in
                let zp = z.baseAddress!.assumingMemoryBound(to: UInt8.self)
                chachaKey.withUnsafeBufferPointer { k in
                    CRYPTO_chacha_20(mask, zp, 5, k.baseAddress, sample + 4, counter)
                }
            }
        }
    }

    public func mask(sample: [UInt8]) -> [UInt8] {
        precondition(sample.count >= 16)
        var out = [UInt8](repeating: 0, count: 5)
        sample.withUnsafeBufferPointer { s in
            out.withUnsafeMutableBufferPointer { o in mask(sample: s.baseAddress!, into: o.baseAddress!) }
        }
        return out
    }
}
