// A tunnel endpoint's identity, WireGuard-style: an Ed25519 key pair whose halves are written as
// 44 base64 characters (`tquicctl genkey` / `pubkey`), no certificate authority. The TLS layer
// wraps the key in a self-signed certificate made at start (TLS 1.3 carries certificates, RFC
// 8446 §4.4.2) and each side pins the other's public key: the router pins the VPS, the VPS
// looks the router's key up in its tenant table. What is pinned is the SubjectPublicKeyInfo's
// SHA-256, the same check `tquic-peer --pin` makes.
import CNIOBoringSSL

public struct TunnelKey: Sendable, Equatable {
    /// The 32-byte Ed25519 seed (RFC 8032 §5.1.5's private key).
    public let seed: [UInt8]
    public let publicKey: [UInt8]

    /// From the 32-byte seed.
    public init?(seed: [UInt8]) {
        guard seed.count == 32 else { return nil }
        var pub = [UInt8](repeating: 0, count: 32)
        var expanded = [UInt8](repeating: 0, count: 64)
        ED25519_keypair_from_seed(&pub, &expanded, seed)
        self.seed = seed
        publicKey = pub
    }

    /// A new key from BoringSSL's random generator.
    public static func generate() -> TunnelKey {
        var seed = [UInt8](repeating: 0, count: 32)
        RAND_bytes(&seed, 32)
        return TunnelKey(seed: seed)!
    }

    /// Parses the base64 text `genkey` prints (44 characters).
    public init?(base64 text: String) {
        guard let bytes = Base64.decode(text), bytes.count == 32 else { return nil }
        self.init(seed: bytes)
    }

    public var base64: String { Base64.encode(seed) }
    public var publicKeyBase64: String { Base64.encode(publicKey) }

    /// The pin of this key (see `TunnelKey.pin(publicKey:)`).
    public var pin: [UInt8] { TunnelKey.pin(publicKey: publicKey) }

    /// SHA-256 of the Ed25519 SubjectPublicKeyInfo (RFC 8410 §4) of a 32-byte public key: what
    /// the TLS layer compares with the peer certificate's key.
    public static func pin(publicKey: [UInt8]) -> [UInt8] {
        precondition(publicKey.count == 32)
        // SEQUENCE { SEQUENCE { OID 1.3.101.112 } BIT STRING (0 unused bits) key }
        let spki: [UInt8] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00] + publicKey
        var digest = [UInt8](repeating: 0, count: 32)
        SHA256(spki, spki.count, &digest)
        return digest
    }

    /// Parses a base64 public key (44 characters) into its 32 bytes.
    public static func publicKey(base64 text: String) -> [UInt8]? {
        guard let bytes = Base64.decode(text), bytes.count == 32 else { return nil }
        return bytes
    }

    /// A self-signed X.509 certificate for this key and the key itself, as BoringSSL objects
    /// owned by the caller (X509_free / EVP_PKEY_free).
    func makeCertificate() throws -> (certificate: OpaquePointer, key: OpaquePointer) {
        guard let pkey = seed.withUnsafeBufferPointer({ EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nil, $0.baseAddress, 32) }) else {
            throw TLSConfigurationError("cannot make an Ed25519 key")
        }
        guard let x509 = X509_new() else {
            EVP_PKEY_free(pkey)
            throw TLSConfigurationError("X509_new")
        }
        var ok = X509_set_version(x509, Int(X509_VERSION_3)) == 1
        ok = ok && ASN1_INTEGER_set(X509_get_serialNumber(x509), 1) == 1
        // Validity is not what the peer checks (it pins the key), but a certificate needs one:
        // from an hour ago (clock skew) for 100 years.
        ok = ok && X509_gmtime_adj(X509_getm_notBefore(x509), -3600) != nil
        ok = ok && X509_gmtime_adj(X509_getm_notAfter(x509), 100 * 365 * 86400) != nil
        let name = X509_get_subject_name(x509)
        ok = ok && X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, "tquic", -1, -1, 0) == 1
        ok = ok && X509_set_issuer_name(x509, name) == 1
        ok = ok && X509_set_pubkey(x509, pkey) == 1
        // Ed25519 signs the message itself: no digest (RFC 8410 §6).
        ok = ok && X509_sign(x509, pkey, nil) > 0
        guard ok else {
            X509_free(x509)
            EVP_PKEY_free(pkey)
            throw TLSConfigurationError("cannot make the self-signed certificate")
        }
        return (x509, pkey)
    }
}

extension TunnelKey {
    /// The pin of the key inside the self-signed certificate (what the peer will compute): tests
    /// check it equals `pin`.
    func certificateKeyPin() throws -> [UInt8] {
        let (certificate, key) = try makeCertificate()
        defer {
            X509_free(certificate)
            EVP_PKEY_free(key)
        }
        var der: UnsafeMutablePointer<UInt8>? = nil
        let n = i2d_PUBKEY(X509_get0_pubkey(certificate), &der)
        guard n > 0, let der else { throw TLSConfigurationError("i2d_PUBKEY") }
        defer { OPENSSL_free(der) }
        var digest = [UInt8](repeating: 0, count: 32)
        SHA256(der, Int(n), &digest)
        return digest
    }
}

/// Standard base64 (RFC 4648 §4) with padding, through BoringSSL's codec.
enum Base64 {
    static func encode(_ bytes: [UInt8]) -> String {
        var out = [UInt8](repeating: 0, count: (bytes.count + 2) / 3 * 4 + 1)
        let n = EVP_EncodeBlock(&out, bytes, bytes.count)
        return String(decoding: out[0..<n], as: UTF8.self)
    }

    static func decode(_ text: String) -> [UInt8]? {
        let input = Array(text.utf8)
        guard !input.isEmpty, input.count % 4 == 0 else { return nil }
        var maxLen = 0
        guard EVP_DecodedLength(&maxLen, input.count) == 1 else { return nil }
        var out = [UInt8](repeating: 0, count: maxLen)
        var len = 0
        guard EVP_DecodeBase64(&out, &len, maxLen, input, input.count) == 1 else { return nil }
        return Array(out[0..<len])
    }
}
