// Frame serialization (RFC 9000 §19, RFC 9221 §4, draft-ietf-quic-multipath §4), exact sizes for
// packet budgeting, and the RFC 9002 §2 classification (ack-eliciting, in flight).
//
// `encodedLength` always equals the number of bytes `encode(to:)` appends.
// STREAM frames encoded through `encode(to:)` always carry a Length field (a packet builder that
// wants the last frame to run to the end of the packet uses `encodeStreamHeader(... hasLength: false)`)
// and carry the Offset field only when the offset is non-zero.
//
// Pure Swift standard library: this file is also compiled standalone by scripts/fuzz.sh.

extension Frame {
    // MARK: - Classification

    /// The frame type this frame is encoded with (for STREAM: with the LEN bit set, OFF bit when
    /// offset > 0, FIN bit as given — exactly what `encode(to:)` writes).
    public var frameType: UInt64 {
        switch self {
        case .padding: return FrameType.padding
        case .ping: return FrameType.ping
        case .ack(let a): return a.ecn == nil ? FrameType.ack : FrameType.ackECN
        case .resetStream: return FrameType.resetStream
        case .stopSending: return FrameType.stopSending
        case .crypto: return FrameType.crypto
        case .newToken: return FrameType.newToken
        case .stream(let s): return Frame.streamFrameType(offset: s.offset, fin: s.fin, hasLength: true)
        case .maxData: return FrameType.maxData
        case .maxStreamData: return FrameType.maxStreamData
        case .maxStreams(let bidi, _): return bidi ? FrameType.maxStreamsBidi : FrameType.maxStreamsUni
        case .dataBlocked: return FrameType.dataBlocked
        case .streamDataBlocked: return FrameType.streamDataBlocked
        case .streamsBlocked(let bidi, _): return bidi ? FrameType.streamsBlockedBidi : FrameType.streamsBlockedUni
        case .newConnectionID: return FrameType.newConnectionID
        case .retireConnectionID: return FrameType.retireConnectionID
        case .pathChallenge: return FrameType.pathChallenge
        case .pathResponse: return FrameType.pathResponse
        case .connectionClose(let c):
            return c.isApplication ? FrameType.connectionCloseApplication : FrameType.connectionCloseTransport
        case .handshakeDone: return FrameType.handshakeDone
        case .datagram(_, let hasLength): return hasLength ? FrameType.datagramWithLength : FrameType.datagram
        case .pathAck(_, let a): return a.ecn == nil ? FrameType.pathAck : FrameType.pathAckECN
        case .pathAbandon: return FrameType.pathAbandon
        case .pathStatusBackup: return FrameType.pathStatusBackup
        case .pathStatusAvailable: return FrameType.pathStatusAvailable
        case .pathNewConnectionID: return FrameType.pathNewConnectionID
        case .pathRetireConnectionID: return FrameType.pathRetireConnectionID
        case .maxPathID: return FrameType.maxPathID
        case .pathsBlocked: return FrameType.pathsBlocked
        case .pathCIDsBlocked: return FrameType.pathCIDsBlocked
        }
    }

    /// RFC 9002 §2: "Ack-eliciting frames: All frames other than ACK, PADDING, and
    /// CONNECTION_CLOSE are considered ack-eliciting." PATH_ACK is an ACK (draft-ietf-quic-multipath
    /// §4.1) and likewise not ack-eliciting.
    public var isAckEliciting: Bool {
        switch self {
        case .ack, .padding, .connectionClose, .pathAck: return false
        default: return true
        }
    }

    /// RFC 9002 §2: "Packets are considered in flight when they are ack-eliciting or contain a
    /// PADDING frame."
    public var countsInFlight: Bool {
        if case .padding = self { return true }
        return isAckEliciting
    }

    // MARK: - Encoding

    /// Appends this frame's wire encoding. Preconditions (programming errors, never peer input):
    /// every integer field < 2^62; ACK ranges non-empty, descending and non-adjacent.
    public func encode(to w: inout ByteWriter) {
        switch self {
        case .padding(let count):
            // RFC 9000 §19.1: each PADDING frame is a single 0x00 byte.
            for _ in 0..<max(count, 0) { w.writeUInt8(0) }
        case .ping:
            w.writeUInt8(UInt8(FrameType.ping))
        case .ack(let a):
            w.writeVarInt(frameType)
            Frame.encodeAckBody(a, to: &w)
        case .resetStream(let id, let code, let finalSize):
            w.writeVarInt(FrameType.resetStream)
            w.writeVarInt(id)
            w.writeVarInt(code)
            w.writeVarInt(finalSize)
        case .stopSending(let id, let code):
            w.writeVarInt(FrameType.stopSending)
            w.writeVarInt(id)
            w.writeVarInt(code)
        case .crypto(let offset, let data):
            Frame.encodeCryptoHeader(offset: offset, length: data.count, to: &w)
            w.writeBytes(data)
        case .newToken(let token):
            w.writeVarInt(FrameType.newToken)
            w.writeVarInt(UInt64(token.count))
            w.writeBytes(token)
        case .stream(let s):
            Frame.encodeStreamHeader(
                streamID: s.streamID, offset: s.offset, length: s.data.count,
                fin: s.fin, hasLength: true, to: &w)
            w.writeBytes(s.data)
        case .maxData(let v):
            w.writeVarInt(FrameType.maxData)
            w.writeVarInt(v)
        case .maxStreamData(let id, let v):
            w.writeVarInt(FrameType.maxStreamData)
            w.writeVarInt(id)
            w.writeVarInt(v)
        case .maxStreams(_, let v):
            w.writeVarInt(frameType)
            w.writeVarInt(v)
        case .dataBlocked(let v):
            w.writeVarInt(FrameType.dataBlocked)
            w.writeVarInt(v)
        case .streamDataBlocked(let id, let v):
            w.writeVarInt(FrameType.streamDataBlocked)
            w.writeVarInt(id)
            w.writeVarInt(v)
        case .streamsBlocked(_, let v):
            w.writeVarInt(frameType)
            w.writeVarInt(v)
        case .newConnectionID(let n):
            w.writeVarInt(FrameType.newConnectionID)
            Frame.encodeNewConnectionIDBody(n, to: &w)
        case .retireConnectionID(let seq):
            w.writeVarInt(FrameType.retireConnectionID)
            w.writeVarInt(seq)
        case .pathChallenge(let data):
            w.writeVarInt(FrameType.pathChallenge)
            w.writeUInt(data, bytes: 8)
        case .pathResponse(let data):
            w.writeVarInt(FrameType.pathResponse)
            w.writeUInt(data, bytes: 8)
        case .connectionClose(let c):
            w.writeVarInt(frameType)
            w.writeVarInt(c.errorCode)
            if !c.isApplication { w.writeVarInt(c.frameType) }
            w.writeVarInt(UInt64(c.reason.count))
            w.writeBytes(c.reason)
        case .handshakeDone:
            w.writeVarInt(FrameType.handshakeDone)
        case .datagram(let data, let hasLength):
            Frame.encodeDatagramHeader(length: data.count, hasLength: hasLength, to: &w)
            w.writeBytes(data)
        case .pathAck(let pathID, let a):
            w.writeVarInt(frameType)
            w.writeVarInt(pathID)
            Frame.encodeAckBody(a, to: &w)
        case .pathAbandon(let pathID, let code):
            w.writeVarInt(FrameType.pathAbandon)
            w.writeVarInt(pathID)
            w.writeVarInt(code)
        case .pathStatusBackup(let pathID, let seq):
            w.writeVarInt(FrameType.pathStatusBackup)
            w.writeVarInt(pathID)
            w.writeVarInt(seq)
        case .pathStatusAvailable(let pathID, let seq):
            w.writeVarInt(FrameType.pathStatusAvailable)
            w.writeVarInt(pathID)
            w.writeVarInt(seq)
        case .pathNewConnectionID(let pathID, let n):
            w.writeVarInt(FrameType.pathNewConnectionID)
            w.writeVarInt(pathID)
            Frame.encodeNewConnectionIDBody(n, to: &w)
        case .pathRetireConnectionID(let pathID, let seq):
            w.writeVarInt(FrameType.pathRetireConnectionID)
            w.writeVarInt(pathID)
            w.writeVarInt(seq)
        case .maxPathID(let v):
            w.writeVarInt(FrameType.maxPathID)
            w.writeVarInt(v)
        case .pathsBlocked(let v):
            w.writeVarInt(FrameType.pathsBlocked)
            w.writeVarInt(v)
        case .pathCIDsBlocked(let pathID, let next):
            w.writeVarInt(FrameType.pathCIDsBlocked)
            w.writeVarInt(pathID)
            w.writeVarInt(next)
        }
    }

    /// Exactly the number of bytes `encode(to:)` appends.
    public var encodedLength: Int {
        let v = VarInt.encodedLength
        switch self {
        case .padding(let count): return max(count, 0)
        case .ping, .handshakeDone: return 1
        case .ack(let a): return 1 + Frame.ackBodyLength(a)
        case .resetStream(let id, let code, let finalSize): return 1 + v(id) + v(code) + v(finalSize)
        case .stopSending(let id, let code): return 1 + v(id) + v(code)
        case .crypto(let offset, let data): return Frame.cryptoHeaderLength(offset: offset, length: data.count) + data.count
        case .newToken(let token): return 1 + v(UInt64(token.count)) + token.count
        case .stream(let s):
            return Frame.streamHeaderLength(
                streamID: s.streamID, offset: s.offset, length: s.data.count,
                hasLength: true) + s.data.count
        case .maxData(let x), .dataBlocked(let x), .retireConnectionID(let x): return 1 + v(x)
        case .maxStreams(_, let x), .streamsBlocked(_, let x): return 1 + v(x)
        case .maxStreamData(let id, let x), .streamDataBlocked(let id, let x): return 1 + v(id) + v(x)
        case .newConnectionID(let n): return 1 + Frame.newConnectionIDBodyLength(n)
        case .pathChallenge, .pathResponse: return 1 + 8
        case .connectionClose(let c):
            return 1 + v(c.errorCode) + (c.isApplication ? 0 : v(c.frameType)) + v(UInt64(c.reason.count)) + c.reason.count
        case .datagram(let data, let hasLength):
            return Frame.datagramHeaderLength(length: data.count, hasLength: hasLength) + data.count
        case .pathAck(let pathID, let a): return 1 + v(pathID) + Frame.ackBodyLength(a)
        case .pathAbandon(let a, let b), .pathStatusBackup(let a, let b), .pathStatusAvailable(let a, let b),
            .pathRetireConnectionID(let a, let b), .pathCIDsBlocked(let a, let b):
            return 2 + v(a) + v(b)
        case .pathNewConnectionID(let pathID, let n): return 2 + v(pathID) + Frame.newConnectionIDBodyLength(n)
        case .maxPathID(let x), .pathsBlocked(let x): return 2 + v(x)
        }
    }

    /// Convenience: the frame's encoding as a fresh array.
    public var encoded: [UInt8] {
        var w = ByteWriter(capacity: encodedLength)
        encode(to: &w)
        return w.bytes
    }

    // MARK: - STREAM header (packet builder)

    /// RFC 9000 §19.8: 0x08 | OFF (0x04, when offset > 0) | LEN (0x02) | FIN (0x01).
    public static func streamFrameType(offset: UInt64, fin: Bool, hasLength: Bool) -> UInt64 {
        FrameType.streamBase | (offset > 0 ? 0x04 : 0) | (hasLength ? 0x02 : 0) | (fin ? 0x01 : 0)
    }

    /// Writes a STREAM frame header for `length` data bytes that the caller appends next.
    /// With `hasLength: false` the frame runs to the end of the packet, so it must be the last one.
    public static func encodeStreamHeader(
        streamID: UInt64, offset: UInt64, length: Int, fin: Bool,
        hasLength: Bool, to w: inout ByteWriter
    ) {
        w.writeVarInt(streamFrameType(offset: offset, fin: fin, hasLength: hasLength))
        w.writeVarInt(streamID)
        if offset > 0 { w.writeVarInt(offset) }
        if hasLength { w.writeVarInt(UInt64(length)) }
    }

    /// Size of the header `encodeStreamHeader` writes (data bytes not included).
    public static func streamHeaderLength(streamID: UInt64, offset: UInt64, length: Int, hasLength: Bool) -> Int {
        1 + VarInt.encodedLength(streamID) + (offset > 0 ? VarInt.encodedLength(offset) : 0)
            + (hasLength ? VarInt.encodedLength(UInt64(length)) : 0)
    }

    /// The largest number of STREAM data bytes whose frame (header + data) fits in `budget` bytes,
    /// or 0 when no data byte fits (check `streamHeaderLength` for an empty FIN-only frame). `maxLength`
    /// caps the answer (data available to send).
    public static func maxStreamDataLength(
        streamID: UInt64, offset: UInt64, budget: Int, hasLength: Bool,
        maxLength: Int = Int.max
    ) -> Int {
        let fixed = 1 + VarInt.encodedLength(streamID) + (offset > 0 ? VarInt.encodedLength(offset) : 0)
        return maxPayload(fixedHeader: fixed, budget: budget, hasLength: hasLength, maxLength: maxLength)
    }

    // MARK: - CRYPTO header

    /// Writes a CRYPTO frame header (RFC 9000 §19.6) for `length` data bytes appended next.
    public static func encodeCryptoHeader(offset: UInt64, length: Int, to w: inout ByteWriter) {
        w.writeVarInt(FrameType.crypto)
        w.writeVarInt(offset)
        w.writeVarInt(UInt64(length))
    }

    /// Size of the header `encodeCryptoHeader` writes.
    public static func cryptoHeaderLength(offset: UInt64, length: Int) -> Int {
        1 + VarInt.encodedLength(offset) + VarInt.encodedLength(UInt64(length))
    }

    /// The largest number of CRYPTO data bytes whose frame fits in `budget` bytes (0 if none).
    public static func maxCryptoDataLength(offset: UInt64, budget: Int, maxLength: Int = Int.max) -> Int {
        maxPayload(fixedHeader: 1 + VarInt.encodedLength(offset), budget: budget, hasLength: true, maxLength: maxLength)
    }

    // MARK: - DATAGRAM header

    /// Writes a DATAGRAM frame header (RFC 9221 §4): type 0x31 + Length, or type 0x30 alone (the
    /// frame then runs to the end of the packet and must be last).
    public static func encodeDatagramHeader(length: Int, hasLength: Bool, to w: inout ByteWriter) {
        if hasLength {
            w.writeVarInt(FrameType.datagramWithLength)
            w.writeVarInt(UInt64(length))
        } else {
            w.writeVarInt(FrameType.datagram)
        }
    }

    /// Size of the header `encodeDatagramHeader` writes.
    public static func datagramHeaderLength(length: Int, hasLength: Bool) -> Int {
        hasLength ? 1 + VarInt.encodedLength(UInt64(length)) : 1
    }

    /// Largest data length `n` ≤ maxLength with fixedHeader + [varint(n)] + n ≤ budget; 0 if none.
    private static func maxPayload(fixedHeader: Int, budget: Int, hasLength: Bool, maxLength: Int) -> Int {
        let room = budget - fixedHeader
        guard room > 0, maxLength > 0 else { return 0 }
        if !hasLength { return min(room, maxLength) }
        // For each Length width, the largest length that width can encode and that still fits;
        // any value up to a width's limit encodes in at most that width, so each candidate fits.
        var best = 0
        for (width, limit) in [(1, 63), (2, 16383), (4, 1_073_741_823), (8, Int(clamping: VarInt.max))] {
            best = max(best, min(room - width, limit, maxLength))
        }
        return best
    }

    // MARK: - Shared bodies

    /// RFC 9000 §19.3.1: Largest Acknowledged, ACK Delay, ACK Range Count, First ACK Range, then
    /// (Gap, ACK Range Length) pairs where Gap = previous smallest - current largest - 2 and
    /// Length = current largest - current smallest; then the §19.3.2 ECN counts if present.
    static func encodeAckBody(_ a: AckFrame, to w: inout ByteWriter) {
        precondition(!a.ranges.isEmpty, "ACK frame needs at least one range")
        let first = a.ranges[0]
        w.writeVarInt(first.upperBound)
        w.writeVarInt(a.ackDelay)
        w.writeVarInt(UInt64(a.ranges.count - 1))
        w.writeVarInt(first.upperBound - first.lowerBound)
        var previousSmallest = first.lowerBound
        for r in a.ranges.dropFirst() {
            precondition(r.upperBound + 2 <= previousSmallest, "ACK ranges must be descending and non-adjacent")
            w.writeVarInt(previousSmallest - r.upperBound - 2)
            w.writeVarInt(r.upperBound - r.lowerBound)
            previousSmallest = r.lowerBound
        }
        if let e = a.ecn {
            w.writeVarInt(e.ect0)
            w.writeVarInt(e.ect1)
            w.writeVarInt(e.ce)
        }
    }

    static func ackBodyLength(_ a: AckFrame) -> Int {
        precondition(!a.ranges.isEmpty, "ACK frame needs at least one range")
        let v = VarInt.encodedLength
        let first = a.ranges[0]
        var n = v(first.upperBound) + v(a.ackDelay) + v(UInt64(a.ranges.count - 1)) + v(first.upperBound - first.lowerBound)
        var previousSmallest = first.lowerBound
        for r in a.ranges.dropFirst() {
            precondition(r.upperBound + 2 <= previousSmallest, "ACK ranges must be descending and non-adjacent")
            n += v(previousSmallest - r.upperBound - 2) + v(r.upperBound - r.lowerBound)
            previousSmallest = r.lowerBound
        }
        if let e = a.ecn { n += v(e.ect0) + v(e.ect1) + v(e.ce) }
        return n
    }

    /// RFC 9000 §19.15: Sequence Number, Retire Prior To, Length (8 bits), Connection ID, Token (16).
    static func encodeNewConnectionIDBody(_ n: NewConnectionIDFrame, to w: inout ByteWriter) {
        w.writeVarInt(n.sequenceNumber)
        w.writeVarInt(n.retirePriorTo)
        w.writeUInt8(UInt8(n.connectionID.length))
        n.connectionID.write(to: &w)
        w.writeUInt(n.statelessResetToken.high, bytes: 8)
        w.writeUInt(n.statelessResetToken.low, bytes: 8)
    }

    static func newConnectionIDBodyLength(_ n: NewConnectionIDFrame) -> Int {
        VarInt.encodedLength(n.sequenceNumber) + VarInt.encodedLength(n.retirePriorTo) + 1 + n.connectionID.length + 16
    }
}
