// The TLS 1.3 cipher suites QUIC v1 uses (RFC 9001 §5.3), and the BoringSSL primitives each needs:
// an AEAD for packet payloads, a block cipher or stream cipher for header protection, a hash for HKDF.
import CNIOBoringSSL

public enum CipherSuite: UInt16, Sendable, CaseIterable {
    case aes128GCMSHA256 = 0x1301
    case aes256GCMSHA384 = 0x1302
    case chacha20Poly1305SHA256 = 0x1303

    public var keyLength: Int {
        switch self {
        case .aes128GCMSHA256: return 16
        case .aes256GCMSHA384, .chacha20Poly1305SHA256: return 32
        }
    }

    /// RFC 9001 §5.3: the IV is 12 bytes for all three AEADs.
    public var ivLength: Int { 12 }
    public var tagLength: Int { 16 }
    public var hashLength: Int { self == .aes256GCMSHA384 ? 48 : 32 }

    var digest: OpaquePointer { self == .aes256GCMSHA384 ? EVP_sha384() : EVP_sha256() }

    var aead: OpaquePointer {
        switch self {
        case .aes128GCMSHA256: return EVP_aead_aes_128_gcm()
        case .aes256GCMSHA384: return EVP_aead_aes_256_gcm()
        case .chacha20Poly1305SHA256: return EVP_aead_chacha20_poly1305()
        }
    }

    /// RFC 9001 §6.6: confidentiality limit (packets sealed with one key).
    public var confidentialityLimit: UInt64 {
        self == .chacha20Poly1305SHA256 ? UInt64.max : 1 << 23
    }

    /// RFC 9001 §6.6: integrity limit (packets that failed authentication with one key).
    public var integrityLimit: UInt64 {
        self == .chacha20Poly1305SHA256 ? 1 << 36 : 1 << 52
    }

    public var name: String {
        switch self {
        case .aes128GCMSHA256: return "TLS_AES_128_GCM_SHA256"
        case .aes256GCMSHA384: return "TLS_AES_256_GCM_SHA384"
        case .chacha20Poly1305SHA256: return "TLS_CHACHA20_POLY1305_SHA256"
        }
    }
}
