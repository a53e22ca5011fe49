// Server-side secrets that stay valid across connections: stateless reset tokens derived from a
// connection ID (RFC 9000 §10.3.2) and integrity-protected address validation tokens for Retry
// and NEW_TOKEN (RFC 9000 §8.1.1-§8.1.4).
import CNIOBoringSSL
import Congestion

public enum StatelessResetTokens {
    /// token = HMAC-SHA256(key, connection ID) truncated to 16 bytes: an endpoint that lost all
    /// state can still produce the token for a connection ID it receives (RFC 9000 §10.3.2).
    public static func token(for cid: ConnectionID, key: [UInt8]) -> StatelessResetToken {
        var out = [UInt8](repeating: 0, count: 32)
        var outLen: UInt32 = 0
        let data = cid.bytes
        _ = key.withUnsafeBufferPointer { k in
            data.withUnsafeBufferPointer { d in
                HMAC(EVP_sha256(), k.baseAddress, k.count, d.baseAddress, d.count, &out, &outLen)
            }
        }
        return StatelessResetToken(out[0..<16])
    }
}

/// What an address validation token proves (RFC 9000 §8.1.1).
public struct AddressToken: Equatable, Sendable {
    public enum Kind: UInt8, Sendable {
        case retry = 0
        case newToken = 1
    }
    public var kind: Kind
    public var issuedAt: Timestamp
    public var clientAddress: SocketAddress
    /// Retry tokens: the client's original Destination Connection ID and our Retry SCID.
    public var originalDestinationConnectionID: ConnectionID
    public var retrySourceConnectionID: ConnectionID
}

/// Seals tokens with AES-128-GCM under a server key; a token that does not open was not ours.
public final class AddressTokenProtector {
    private let key: [UInt8]

    public init(key: [UInt8]) {
        precondition(key.count == 16)
        self.key = key
    }

    public func seal(_ t: AddressToken, random: RandomSource) -> [UInt8] {
        var w = ByteWriter(capacity: 96)
        w.writeUInt8(t.kind.rawValue)
        w.writeUInt(t.issuedAt.nanoseconds, bytes: 8)
        w.writeUInt8(UInt8(t.clientAddress.ip.count))
        w.writeBytes(t.clientAddress.ip)
        w.writeUInt16(t.clientAddress.port)
        w.writeUInt8(UInt8(t.originalDestinationConnectionID.length))
        t.originalDestinationConnectionID.write(to: &w)
        w.writeUInt8(UInt8(t.retrySourceConnectionID.length))
        t.retrySourceConnectionID.write(to: &w)
        let nonce = random.bytes(12)
        let aead = PacketAEAD(suite: .aes128GCMSHA256, key: key, iv: nonce)
        var buf = nonce + w.bytes + [UInt8](repeating: 0, count: 16)
        let end = buf.withUnsafeMutableBytes { raw in
            // AAD = the nonce (12 bytes); plaintext follows.
            aead.seal(raw, headerLength: 12, payloadEnd: 12 + w.count, packetNumber: 0)
        }
        return Array(buf[0..<end])
    }

    public func open(_ token: [UInt8]) -> AddressToken? {
        guard token.count > 12 + 16 else { return nil }
        let nonce = Array(token[0..<12])
        let aead = PacketAEAD(suite: .aes128GCMSHA256, key: key, iv: nonce)
        var buf = token
        guard let n = buf.withUnsafeMutableBytes({ aead.open($0, headerLength: 12, end: token.count, packetNumber: 0) }) else { return nil }
        var r = ByteReader(buf, from: 12, to: 12 + n)
        do {
            guard let kind = AddressToken.Kind(rawValue: try r.readUInt8()) else { return nil }
            let issued = Timestamp(nanoseconds: try r.readUInt(bytes: 8))
            let ipLen = Int(try r.readUInt8())
            guard ipLen == 4 || ipLen == 16 else { return nil }
            let ip = Array(try r.readBytes(ipLen))
            let port = try r.readUInt16()
            let odcidLen = Int(try r.readUInt8())
            guard odcidLen <= 20 else { return nil }
            let odcid = ConnectionID(try r.readBytes(odcidLen))
            let rscidLen = Int(try r.readUInt8())
            guard rscidLen <= 20 else { return nil }
            let rscid = ConnectionID(try r.readBytes(rscidLen))
            return AddressToken(
                kind: kind, issuedAt: issued, clientAddress: SocketAddress(ip: ip, port: port),
                originalDestinationConnectionID: odcid, retrySourceConnectionID: rscid)
        } catch {
            return nil
        }
    }
}
