// RFC 9001 §5.8: the Retry Integrity Tag, an AES-128-GCM tag over the Retry pseudo-packet
// (original DCID length + original DCID + the Retry packet without its tag), with a fixed key/nonce.

public enum RetryIntegrity {
    static let key: [UInt8] = [0xbe, 0x0c, 0x69, 0x0b, 0x9f, 0x66, 0x57, 0x5a, 0x1d, 0x76, 0x6b, 0x54, 0xe3, 0x68, 0xc8, 0x4e]
    static let nonce: [UInt8] = [0x46, 0x15, 0x99, 0xd3, 0x5d, 0x63, 0x2b, 0xf2, 0x23, 0x98, 0x25, 0xbb]

    private static let aead = PacketAEAD(suite: .aes128GCMSHA256, key: key, iv: nonce)

    /// - Parameter retryWithoutTag: the Retry packet's bytes up to (not including) the tag.
    public static func tag(originalDestinationConnectionID odcid: ConnectionID, retryWithoutTag: ArraySlice<UInt8>) -> [UInt8] {
        var pseudo: [UInt8] = [UInt8(odcid.length)]
        pseudo += odcid.bytes
        pseudo += retryWithoutTag
        let aadLength = pseudo.count
        pseudo += [UInt8](repeating: 0, count: 16)
        pseudo.withUnsafeMutableBytes { raw in
            // Empty plaintext: the whole pseudo-packet is associated data; nonce = IV (PN 0).
            _ = aead.seal(raw, headerLength: aadLength, payloadEnd: aadLength, packetNumber: 0)
        }
        return Array(pseudo[aadLength...])
    }

    public static func isValid(originalDestinationConnectionID odcid: ConnectionID, retryPacket: [UInt8]) -> Bool {
        guard retryPacket.count > 16 else { return false }
        let expected = tag(originalDestinationConnectionID: odcid, retryWithoutTag: retryPacket[0..<(retryPacket.count - 16)])
        // Constant-time comparison is not needed for a public tag, but keep it simple and exact.
        return Array(retryPacket[(retryPacket.count - 16)...]) == expected
    }
}
