// RFC 9000 §17: parsing the unprotected parts of long and short headers. This runs before any
// decryption, on bytes straight from the network, so it only reads through `ByteReader` and
// reports malformed input as `nil` or `WireError` (the packet is then dropped and counted).

public enum QUICVersion {
    public static let v1: UInt32 = 0x0000_0001
    public static let negotiation: UInt32 = 0
    public static func isSupported(_ v: UInt32) -> Bool { v == v1 }
}

/// The parts of a packet header readable without keys.
public struct PacketHeader: Sendable {
    public var isLongHeader: Bool
    public var type: PacketType
    public var version: UInt32
    public var destinationConnectionID: ConnectionID
    public var sourceConnectionID: ConnectionID
    /// Offset of the (protected) packet number field within the datagram.
    public var packetNumberOffset: Int
    /// Offset one past this packet's last byte (long headers carry a Length; short ones run to the end).
    public var packetEnd: Int
    /// Offset of this packet's first byte in the datagram (coalesced packets).
    public var packetStart: Int
    /// Initial: the token (may be empty). Retry: the retry token.
    public var token: ArraySlice<UInt8> { variableFields?.token ?? [] }
    /// Version Negotiation: the versions offered.
    public var supportedVersions: [UInt32] { variableFields?.supportedVersions ?? [] }
    /// Retry: the 16-byte integrity tag.
    public var retryIntegrityTag: ArraySlice<UInt8> { variableFields?.retryIntegrityTag ?? [] }

    /// The variable-length fields, nil when all are empty (every 1-RTT packet): a header without
    /// them holds no reference, so making, copying and dropping one per packet retains nothing
    /// (three array references would be retained and released each time). Boxed, so the header
    /// stays small to copy; only handshake packets with a token, Retry and Version Negotiation
    /// allocate one.
    private final class VariableFields: Sendable {
        let token: ArraySlice<UInt8>
        let supportedVersions: [UInt32]
        let retryIntegrityTag: ArraySlice<UInt8>
        init(token: ArraySlice<UInt8>, supportedVersions: [UInt32], retryIntegrityTag: ArraySlice<UInt8>) {
            self.token = token
            self.supportedVersions = supportedVersions
            self.retryIntegrityTag = retryIntegrityTag
        }
    }
    private let variableFields: VariableFields?

    /// A short (1-RTT) header.
    private init(shortHeaderWith dcid: ConnectionID, packetNumberOffset: Int, packetEnd: Int, packetStart: Int) {
        isLongHeader = false
        type = .oneRTT
        version = QUICVersion.v1
        destinationConnectionID = dcid
        sourceConnectionID = .empty
        self.packetNumberOffset = packetNumberOffset
        self.packetEnd = packetEnd
        self.packetStart = packetStart
        variableFields = nil
    }

    private init(
        isLongHeader: Bool, type: PacketType, version: UInt32, destinationConnectionID: ConnectionID,
        sourceConnectionID: ConnectionID, token: ArraySlice<UInt8>, packetNumberOffset: Int, packetEnd: Int,
        packetStart: Int, supportedVersions: [UInt32], retryIntegrityTag: ArraySlice<UInt8>
    ) {
        self.isLongHeader = isLongHeader
        self.type = type
        self.version = version
        self.destinationConnectionID = destinationConnectionID
        self.sourceConnectionID = sourceConnectionID
        self.packetNumberOffset = packetNumberOffset
        self.packetEnd = packetEnd
        self.packetStart = packetStart
        variableFields =
            token.isEmpty && supportedVersions.isEmpty && retryIntegrityTag.isEmpty
            ? nil
            : VariableFields(token: token, supportedVersions: supportedVersions, retryIntegrityTag: retryIntegrityTag)
    }

    /// Parses the packet that starts at `offset` in `datagram`.
    /// - Parameter shortHeaderCIDLength: the length of connection IDs this endpoint issues.
    public static func parse(_ datagram: [UInt8], at offset: Int = 0, shortHeaderCIDLength: Int) throws -> PacketHeader {
        var r = ByteReader(datagram, from: offset, to: datagram.count)
        let first = try r.readUInt8()
        if first & 0x80 == 0 {
            // RFC 9000 §17.3.1: 1-RTT short header. Fixed bit must be 1 (§17.3.1); a packet with
            // it cleared is discarded (we do not negotiate grease_quic_bit).
            guard first & 0x40 != 0 else { throw WireError.invalidValue("fixed bit clear") }
            let dcid = try r.readBytes(shortHeaderCIDLength)
            return PacketHeader(
                shortHeaderWith: ConnectionID(dcid), packetNumberOffset: r.position,
                packetEnd: datagram.count, packetStart: offset)
        }
        let version = try r.readUInt32()
        // RFC 9000 §17.2: DCID/SCID lengths are at most 20 in v1; other versions may differ
        // (§17.2.1 says endpoints must accept longer ones only for version negotiation).
        let dcidLen = Int(try r.readUInt8())
        if version == QUICVersion.v1 && dcidLen > ConnectionID.maxLength { throw WireError.invalidValue("DCID length \(dcidLen)") }
        let dcidBytes = try r.readBytes(dcidLen)
        let scidLen = Int(try r.readUInt8())
        if version == QUICVersion.v1 && scidLen > ConnectionID.maxLength { throw WireError.invalidValue("SCID length \(scidLen)") }
        let scidBytes = try r.readBytes(scidLen)
        guard dcidLen <= ConnectionID.maxLength, scidLen <= ConnectionID.maxLength else {
            // Unknown version with long CIDs: we can't represent them; caller sends nothing.
            throw WireError.invalidValue("connection ID too long for version \(version)")
        }
        let dcid = ConnectionID(dcidBytes)
        let scid = ConnectionID(scidBytes)
        if version == QUICVersion.negotiation {
            // RFC 9000 §17.2.1: Version Negotiation lists 32-bit versions.
            var versions: [UInt32] = []
            while r.remaining >= 4 { versions.append(try r.readUInt32()) }
            return PacketHeader(
                isLongHeader: true, type: .versionNegotiation, version: 0,
                destinationConnectionID: dcid, sourceConnectionID: scid, token: [],
                packetNumberOffset: r.position, packetEnd: datagram.count, packetStart: offset,
                supportedVersions: versions, retryIntegrityTag: [])
        }
        guard version == QUICVersion.v1 else {
            // Unknown version: only the invariant fields are meaningful (RFC 8999).
            return PacketHeader(
                isLongHeader: true, type: .initial, version: version,
                destinationConnectionID: dcid, sourceConnectionID: scid, token: [],
                packetNumberOffset: r.position, packetEnd: datagram.count, packetStart: offset,
                supportedVersions: [], retryIntegrityTag: [])
        }
        guard first & 0x40 != 0 else { throw WireError.invalidValue("fixed bit clear") }
        let typeBits = (first >> 4) & 0x03
        let type: PacketType
        switch typeBits {
        case 0: type = .initial
        case 1: type = .zeroRTT
        case 2: type = .handshake
        default: type = .retry
        }
        var token: ArraySlice<UInt8> = []
        if type == .retry {
            // RFC 9000 §17.2.5: Retry Token runs up to the 16-byte integrity tag.
            guard r.remaining >= 16 else { throw WireError.truncated }
            token = try r.readBytes(r.remaining - 16)
            let tag = try r.readBytes(16)
            return PacketHeader(
                isLongHeader: true, type: .retry, version: version,
                destinationConnectionID: dcid, sourceConnectionID: scid, token: token,
                packetNumberOffset: r.position, packetEnd: datagram.count, packetStart: offset,
                supportedVersions: [], retryIntegrityTag: tag)
        }
        if type == .initial {
            let tokenLength = try r.readLength()
            token = try r.readBytes(tokenLength)
        }
        let length = try r.readLength()
        let pnOffset = r.position
        // RFC 9001 §5.4.2: the header-protection sample needs 4 bytes of packet number space + 16.
        guard length >= 20 else { throw WireError.invalidValue("packet too short for a header protection sample") }
        return PacketHeader(
            isLongHeader: true, type: type, version: version,
            destinationConnectionID: dcid, sourceConnectionID: scid, token: token,
            packetNumberOffset: pnOffset, packetEnd: pnOffset + length, packetStart: offset,
            supportedVersions: [], retryIntegrityTag: [])
    }
}
