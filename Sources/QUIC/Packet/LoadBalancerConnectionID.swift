// Connection IDs that a stateless layer-4 load balancer can route (draft-ietf-quic-load-balancers-19,
// "QUIC-LB", plaintext algorithm): every connection ID a VPS issues, on every path, carries its
// server ID, so IPVS or Katran in front of several VPSes keep all paths of a router's connection
// on the VPS that holds it, whatever addresses the router's WANs get.
//
//   first octet: config rotation (3 bits) | CID length - 1, or random (5 bits)   (§3)
//   then:        server ID (1-15 bytes) | nonce (random, >= 4 bytes)             (§5.2)

/// Generates QUIC-LB plaintext connection IDs for one server.
public final class QUICLBConnectionIDGenerator: ConnectionIDGenerator {
    /// Config rotation codepoint 0-6 (0b111 marks an unroutable CID, §3.1).
    public let configRotation: UInt8
    public let serverID: [UInt8]
    public let nonceLength: Int
    /// §3.3: the low five bits of the first octet give the CID's length minus one.
    public let encodesLength: Bool
    public var length: Int { 1 + serverID.count + nonceLength }

    /// - Precondition: `configRotation` < 7; 1...15 server ID bytes; a nonce of at least 4 bytes
    ///   (§5.2); at most 20 bytes in all (RFC 9000 §17.2).
    public init(configRotation: UInt8, serverID: [UInt8], nonceLength: Int = 6, encodesLength: Bool = true) {
        precondition(configRotation < 7, "config rotation 0b111 is reserved for unroutable connection IDs")
        precondition((1...15).contains(serverID.count), "QUIC-LB server IDs are 1 to 15 bytes")
        precondition(
            nonceLength >= 4 && 1 + serverID.count + nonceLength <= ConnectionID.maxLength,
            "QUIC-LB nonce of at least 4 bytes within a 20-byte connection ID")
        self.configRotation = configRotation
        self.serverID = serverID
        self.nonceLength = nonceLength
        self.encodesLength = encodesLength
    }

    public func generate(random: RandomSource) -> ConnectionID {
        let nonce = random.bytes(nonceLength + 1)
        let low5 = encodesLength ? UInt8(length - 1) : nonce[nonceLength] & 0x1f
        var bytes = [configRotation << 5 | low5]
        bytes += serverID
        bytes += nonce[0..<nonceLength]
        return ConnectionID(bytes)
    }

    /// The load balancer's side (§5.2.1): the server ID a connection ID routes to under the
    /// configuration `configRotation` with `serverIDLength`-byte server IDs, or nil when the CID
    /// belongs to another configuration (or is unroutable) or is too short.
    public static func serverID(in cid: ConnectionID, configRotation: UInt8, serverIDLength: Int) -> [UInt8]? {
        guard cid.length >= 1 + serverIDLength + 4, cid[0] >> 5 == configRotation else { return nil }
        return (1...serverIDLength).map { cid[$0] }
    }
}
