// RFC 9001 §5: deriving packet protection keys from TLS secrets with HKDF-Expand-Label
// (RFC 8446 §7.1), the Initial secrets from the client's Destination Connection ID (§5.2),
// and the next generation of 1-RTT secrets for a key update (§6.1).
import CNIOBoringSSL

public enum KeySchedule {
    /// RFC 9001 §5.2: initial_salt for QUIC version 1.
    public static let initialSaltV1: [UInt8] = [
        0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17,
        0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a,
    ]

    public static func hkdfExtract(salt: [UInt8], ikm: [UInt8], suite: CipherSuite) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var outLen = 0
        let ok = out.withUnsafeMutableBufferPointer { o in
            ikm.withUnsafeBufferPointer { i in
                salt.withUnsafeBufferPointer { s in
                    HKDF_extract(o.baseAddress, &outLen, suite.digest, i.baseAddress, i.count, s.baseAddress, s.count)
                }
            }
        }
        precondition(ok == 1, "HKDF_extract failed")
        return Array(out[0..<outLen])
    }

    /// RFC 8446 §7.1 HKDF-Expand-Label with the "tls13 " prefix.
    public static func expandLabel(secret: [UInt8], label: String, context: [UInt8] = [], length: Int, suite: CipherSuite) -> [UInt8] {
        let fullLabel = Array("tls13 \(label)".utf8)
        var info: [UInt8] = [UInt8(length >> 8), UInt8(length & 0xff), UInt8(fullLabel.count)]
        info += fullLabel
        info.append(UInt8(context.count))
        info += context
        var out = [UInt8](repeating: 0, count: length)
        let ok = out.withUnsafeMutableBufferPointer { o in
            secret.withUnsafeBufferPointer { s in
                info.withUnsafeBufferPointer { i in
                    HKDF_expand(o.baseAddress, length, suite.digest, s.baseAddress, s.count, i.baseAddress, i.count)
                }
            }
        }
        precondition(ok == 1, "HKDF_expand failed")
        return out
    }

    /// RFC 9001 §5.2: client and server Initial secrets.
    public static func initialSecrets(destinationConnectionID dcid: ConnectionID) -> (client: [UInt8], server: [UInt8]) {
        let suite = CipherSuite.aes128GCMSHA256
        let initial = hkdfExtract(salt: initialSaltV1, ikm: dcid.bytes, suite: suite)
        let client = expandLabel(secret: initial, label: "client in", length: 32, suite: suite)
        let server = expandLabel(secret: initial, label: "server in", length: 32, suite: suite)
        return (client, server)
    }

    /// RFC 9001 §5.1: key, iv and hp key from a traffic secret.
    public static func packetKeyMaterial(secret: [UInt8], suite: CipherSuite) -> (key: [UInt8], iv: [UInt8], hp: [UInt8]) {
        let key = expandLabel(secret: secret, label: "quic key", length: suite.keyLength, suite: suite)
        let iv = expandLabel(secret: secret, label: "quic iv", length: suite.ivLength, suite: suite)
        let hp = expandLabel(secret: secret, label: "quic hp", length: suite.keyLength, suite: suite)
        return (key, iv, hp)
    }

    /// RFC 9001 §6.1: secret_<n+1> = HKDF-Expand-Label(secret_<n>, "quic ku", "", Hash.length).
    public static func nextGenerationSecret(_ secret: [UInt8], suite: CipherSuite) -> [UInt8] {
        expandLabel(secret: secret, label: "quic ku", length: suite.hashLength, suite: suite)
    }
}
