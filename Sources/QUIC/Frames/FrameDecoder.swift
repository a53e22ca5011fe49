// Frame parsing (RFC 9000 §12.4, §19; RFC 9221 §4; draft-ietf-quic-multipath §4).
// Every error is a `TransportError` carrying the offending frame type, ready for CONNECTION_CLOSE.
// Payload slices (STREAM/CRYPTO/DATAGRAM data, tokens, reason phrases) share the reader's array.
//
// Pure Swift standard library: this file is also compiled standalone by scripts/fuzz.sh.
//
// Choices where the RFC leaves latitude (documented here once, cited again at each use):
// - Non-minimal frame type encodings are rejected with PROTOCOL_VIOLATION (RFC 9000 §12.4 MAY).
// - STREAM offset+length > 2^62-1 is FRAME_ENCODING_ERROR (RFC 9000 §19.8 allows it or
//   FLOW_CONTROL_ERROR); CRYPTO likewise (§19.6 allows it or CRYPTO_BUFFER_EXCEEDED).
// - STREAMS_BLOCKED > 2^60 is FRAME_ENCODING_ERROR (§19.14 allows it or STREAM_LIMIT_ERROR).
// - RETIRE_CONNECTION_ID in 0-RTT is PROTOCOL_VIOLATION (§17.2.3 MAY, although Table 3 lists it).
// - Multipath frames are permitted only in 1-RTT packets (draft-ietf-quic-multipath §4 MUST).
// Role-dependent rules (a server receiving NEW_TOKEN or HANDSHAKE_DONE, §19.7/§19.20) and
// state-dependent rules (stream limits, path ID limits) are the connection's job.

extension Frame {
    /// Largest value a STREAM/CRYPTO byte offset may reach (RFC 9000 §19.6, §19.8).
    static let maxStreamOffset: UInt64 = (1 << 62) - 1
    /// Largest Maximum Streams / Streams Blocked value (RFC 9000 §19.11, §19.14).
    static let maxStreamCount: UInt64 = 1 << 60
    /// Largest path ID (draft-ietf-quic-multipath §2.1: the nonce carries 32 bits of path ID).
    static let maxPathIDValue: UInt64 = (1 << 32) - 1

    /// Decodes one frame at the reader's position. A PADDING byte consumes the whole run of
    /// consecutive PADDING bytes and yields one `.padding(count:)`.
    /// - Throws: `TransportError` (FRAME_ENCODING_ERROR or PROTOCOL_VIOLATION).
    public static func decode(from reader: inout ByteReader, packetType: PacketType) throws -> Frame {
        let type = try readFrameType(&reader)

        guard isKnownFrameType(type) else {
            // RFC 9000 §12.4: "An endpoint MUST treat the receipt of a frame of unknown type as a
            // connection error of type FRAME_ENCODING_ERROR."
            throw TransportError(.frameEncodingError, frameType: type, "unknown frame type")
        }
        // RFC 9000 §12.4: "An endpoint MUST treat receipt of a frame in a packet type that is not
        // permitted as a connection error of type PROTOCOL_VIOLATION."
        guard isPermitted(frameType: type, in: packetType) else {
            throw TransportError(.protocolViolation, frameType: type, "frame type not permitted in \(packetType) packet")
        }

        do {
            return try decodeBody(type: type, from: &reader)
        } catch let error as TransportError {
            throw error
        } catch {
            // A field ran past the end of the packet (WireError.truncated).
            throw TransportError(.frameEncodingError, frameType: type, "frame truncated")
        }
    }

    /// Decodes every frame of a decrypted packet payload.
    /// - Throws: `TransportError`; PROTOCOL_VIOLATION for a payload with no frames (RFC 9000 §12.4).
    public static func decodeAll(_ payload: [UInt8], packetType: PacketType) throws -> [Frame] {
        var reader = ByteReader(payload)
        return try decodeAll(from: &reader, packetType: packetType)
    }

    /// Decodes every frame from the reader's position to its end (use
    /// `ByteReader(bytes, from:to:)` to parse a payload inside a larger datagram buffer).
    public static func decodeAll(from reader: inout ByteReader, packetType: PacketType) throws -> [Frame] {
        // RFC 9000 §12.4: "An endpoint MUST treat receipt of a packet containing no frames as a
        // connection error of type PROTOCOL_VIOLATION."
        guard !reader.isAtEnd else {
            throw TransportError(.protocolViolation, frameType: 0, "packet contains no frames")
        }
        var frames: [Frame] = []
        while !reader.isAtEnd {
            frames.append(try decode(from: &reader, packetType: packetType))
        }
        return frames
    }

    // MARK: - Frame type

    static func readFrameType(_ reader: inout ByteReader) throws -> UInt64 {
        let first: UInt8
        do { first = try reader.peekUInt8() } catch {
            throw TransportError(.frameEncodingError, frameType: 0, "missing frame type")
        }
        if first < 0x40 {
            try? reader.skip(1)
            return UInt64(first)
        }
        let start = reader.position
        let type: UInt64
        do { type = try reader.readVarInt() } catch {
            throw TransportError(.frameEncodingError, frameType: 0, "frame type truncated")
        }
        // RFC 9000 §12.4: "a frame type MUST use the shortest possible encoding ... An endpoint MAY
        // treat the receipt of a frame type that uses a longer encoding than necessary as a
        // connection error of type PROTOCOL_VIOLATION." We do.
        guard reader.position - start == VarInt.encodedLength(type) else {
            throw TransportError(.protocolViolation, frameType: type, "frame type not minimally encoded")
        }
        return type
    }

    /// Whether `type` is a frame type this implementation understands.
    public static func isKnownFrameType(_ type: UInt64) -> Bool {
        switch type {
        case 0x00...0x1e, FrameType.datagram, FrameType.datagramWithLength,
            FrameType.pathAck, FrameType.pathAckECN, FrameType.pathAbandon...FrameType.pathCIDsBlocked:
            return true
        default:
            return false
        }
    }

    /// RFC 9000 §12.4 Table 3 ("Pkts" column), RFC 9221 §4 and draft-ietf-quic-multipath §4:
    /// whether a frame of `type` may appear in a packet of `packetType`. Unknown types return false.
    public static func isPermitted(frameType type: UInt64, in packetType: PacketType) -> Bool {
        switch packetType {
        case .retry, .versionNegotiation:
            // RFC 9000 §17.2.5 / §17.2.1: Retry and Version Negotiation packets carry no frames.
            return false
        case .initial, .handshake:
            // RFC 9000 §12.4 Table 3 ("I"/"H"): only PADDING, PING, ACK, CRYPTO and the transport
            // CONNECTION_CLOSE (0x1c). RFC 9000 §17.2.2: "The payload of an Initial packet includes a
            // CRYPTO frame ... and ... PING, PADDING, ACK, CONNECTION_CLOSE (type 0x1c)"; the
            // application variant 0x1d is never sent in Initial or Handshake (§10.2.3).
            switch type {
            case FrameType.padding, FrameType.ping, FrameType.ack, FrameType.ackECN,
                FrameType.crypto, FrameType.connectionCloseTransport:
                return true
            default:
                return false
            }
        case .zeroRTT:
            switch type {
            // RFC 9000 §12.4 Table 3 / §17.2.3: "it is not possible to send the following frames in
            // 0-RTT packets ...: ACK, CRYPTO, HANDSHAKE_DONE, NEW_TOKEN, PATH_RESPONSE, and
            // RETIRE_CONNECTION_ID. A server MAY treat receipt of these frames in 0-RTT packets as a
            // connection error of type PROTOCOL_VIOLATION." We do, for all six.
            case FrameType.ack, FrameType.ackECN, FrameType.crypto, FrameType.handshakeDone,
                FrameType.newToken, FrameType.pathResponse, FrameType.retireConnectionID:
                return false
            // draft-ietf-quic-multipath §4: "All frames defined in this document MUST only be sent in
            // 1-RTT packets. If an endpoint receives a multipath-specific frame in a different packet
            // type, it MUST close the connection with an error of type PROTOCOL_VIOLATION."
            case FrameType.pathAck, FrameType.pathAckECN, FrameType.pathAbandon...FrameType.pathCIDsBlocked:
                return false
            default:
                // RFC 9221 §4: DATAGRAM (0x30/0x31) is permitted in 0-RTT and 1-RTT ("__01").
                return isKnownFrameType(type)
            }
        case .oneRTT:
            return isKnownFrameType(type)
        }
    }

    // MARK: - Bodies

    private static func decodeBody(type: UInt64, from r: inout ByteReader) throws -> Frame {
        switch type {
        case FrameType.padding:
            // RFC 9000 §19.1: PADDING has no content; a run of them is collapsed into one frame.
            var count = 1
            let bytes = r.bytes
            var i = r.position
            while i < r.end && bytes[i] == 0 {
                i += 1
                count += 1
            }
            try r.skip(i - r.position)
            return .padding(count: count)

        case FrameType.ping:
            return .ping

        case FrameType.ack, FrameType.ackECN:
            return .ack(try decodeAck(type: type, ecn: type == FrameType.ackECN, from: &r))

        case FrameType.resetStream:
            let id = try r.readVarInt()
            let code = try r.readVarInt()
            let finalSize = try r.readVarInt()
            return .resetStream(streamID: id, errorCode: code, finalSize: finalSize)

        case FrameType.stopSending:
            let id = try r.readVarInt()
            let code = try r.readVarInt()
            return .stopSending(streamID: id, errorCode: code)

        case FrameType.crypto:
            let offset = try r.readVarInt()
            let length = try r.readLength()
            // RFC 9000 §19.6: "The largest offset delivered on a stream -- the sum of the offset and
            // data length -- cannot exceed 2^62-1. Receipt of a frame that exceeds this limit MUST be
            // treated as a connection error of type FRAME_ENCODING_ERROR or CRYPTO_BUFFER_EXCEEDED."
            // We choose FRAME_ENCODING_ERROR.
            guard UInt64(length) <= maxStreamOffset - offset else {
                throw TransportError(.frameEncodingError, frameType: type, "CRYPTO offset+length exceeds 2^62-1")
            }
            let data = try r.readBytes(length)
            return .crypto(offset: offset, data: data)

        case FrameType.newToken:
            let length = try r.readLength()
            // RFC 9000 §19.7: "An endpoint MUST treat receipt of a NEW_TOKEN frame with an empty Token
            // field as a connection error of type FRAME_ENCODING_ERROR."
            guard length > 0 else {
                throw TransportError(.frameEncodingError, frameType: type, "NEW_TOKEN with empty token")
            }
            return .newToken(token: try r.readBytes(length))

        case 0x08...0x0f:
            return .stream(try decodeStream(type: type, from: &r))

        case FrameType.maxData:
            return .maxData(try r.readVarInt())

        case FrameType.maxStreamData:
            let id = try r.readVarInt()
            let max = try r.readVarInt()
            return .maxStreamData(streamID: id, maximum: max)

        case FrameType.maxStreamsBidi, FrameType.maxStreamsUni:
            let max = try r.readVarInt()
            // RFC 9000 §19.11: "This value cannot exceed 2^60 ... Receipt of a frame that permits
            // opening of a stream larger than this limit MUST be treated as a connection error of
            // type FRAME_ENCODING_ERROR."
            guard max <= maxStreamCount else {
                throw TransportError(.frameEncodingError, frameType: type, "MAX_STREAMS exceeds 2^60")
            }
            return .maxStreams(bidirectional: type == FrameType.maxStreamsBidi, maximum: max)

        case FrameType.dataBlocked:
            return .dataBlocked(limit: try r.readVarInt())

        case FrameType.streamDataBlocked:
            let id = try r.readVarInt()
            let limit = try r.readVarInt()
            return .streamDataBlocked(streamID: id, limit: limit)

        case FrameType.streamsBlockedBidi, FrameType.streamsBlockedUni:
            let limit = try r.readVarInt()
            // RFC 9000 §19.14: "This value cannot exceed 2^60 ... Receipt of a frame that encodes a
            // larger stream ID MUST be treated as a connection error of type STREAM_LIMIT_ERROR or
            // FRAME_ENCODING_ERROR." We choose FRAME_ENCODING_ERROR.
            guard limit <= maxStreamCount else {
                throw TransportError(.frameEncodingError, frameType: type, "STREAMS_BLOCKED exceeds 2^60")
            }
            return .streamsBlocked(bidirectional: type == FrameType.streamsBlockedBidi, limit: limit)

        case FrameType.newConnectionID:
            return .newConnectionID(try decodeNewConnectionID(type: type, from: &r))

        case FrameType.retireConnectionID:
            return .retireConnectionID(sequenceNumber: try r.readVarInt())

        case FrameType.pathChallenge:
            // RFC 9000 §19.17: 8 bytes of arbitrary data.
            return .pathChallenge(data: try r.readUInt(bytes: 8))

        case FrameType.pathResponse:
            return .pathResponse(data: try r.readUInt(bytes: 8))

        case FrameType.connectionCloseTransport, FrameType.connectionCloseApplication:
            let isApplication = type == FrameType.connectionCloseApplication
            let code = try r.readVarInt()
            // RFC 9000 §19.19: only type 0x1c carries the Frame Type field.
            let frameType = try isApplication ? 0 : r.readVarInt()
            let length = try r.readLength()
            let reason = try r.readBytes(length)
            return .connectionClose(
                ConnectionCloseFrame(
                    isApplication: isApplication, errorCode: code,
                    frameType: frameType, reason: reason))

        case FrameType.handshakeDone:
            return .handshakeDone

        case FrameType.datagram:
            // RFC 9221 §4: type 0x30 has no Length field; the data extends to the end of the packet.
            return .datagram(data: r.readRemaining(), hasLength: false)

        case FrameType.datagramWithLength:
            let length = try r.readLength()
            return .datagram(data: try r.readBytes(length), hasLength: true)

        case FrameType.pathAck, FrameType.pathAckECN:
            let pathID = try r.readVarInt()
            return .pathAck(pathID: pathID, try decodeAck(type: type, ecn: type == FrameType.pathAckECN, from: &r))

        case FrameType.pathAbandon:
            let pathID = try r.readVarInt()
            let code = try r.readVarInt()
            return .pathAbandon(pathID: pathID, errorCode: code)

        case FrameType.pathStatusBackup:
            let pathID = try r.readVarInt()
            let seq = try r.readVarInt()
            return .pathStatusBackup(pathID: pathID, sequenceNumber: seq)

        case FrameType.pathStatusAvailable:
            let pathID = try r.readVarInt()
            let seq = try r.readVarInt()
            return .pathStatusAvailable(pathID: pathID, sequenceNumber: seq)

        case FrameType.pathNewConnectionID:
            let pathID = try r.readVarInt()
            return .pathNewConnectionID(pathID: pathID, try decodeNewConnectionID(type: type, from: &r))

        case FrameType.pathRetireConnectionID:
            let pathID = try r.readVarInt()
            let seq = try r.readVarInt()
            return .pathRetireConnectionID(pathID: pathID, sequenceNumber: seq)

        case FrameType.maxPathID:
            let max = try r.readVarInt()
            // draft-ietf-quic-multipath §4.7: "This value MUST NOT exceed 2^32-1 ... Receipt of an
            // invalid Maximum Path Identifier value MUST be treated as a connection error of type
            // PROTOCOL_VIOLATION." (The "not lower than initial_max_path_id" half needs connection state.)
            guard max <= maxPathIDValue else {
                throw TransportError(.protocolViolation, frameType: type, "MAX_PATH_ID exceeds 2^32-1")
            }
            return .maxPathID(max)

        case FrameType.pathsBlocked:
            return .pathsBlocked(maximumPathID: try r.readVarInt())

        case FrameType.pathCIDsBlocked:
            let pathID = try r.readVarInt()
            let next = try r.readVarInt()
            return .pathCIDsBlocked(pathID: pathID, nextSequenceNumber: next)

        default:
            // Unreachable: `isKnownFrameType` screened the type.
            throw TransportError(.frameEncodingError, frameType: type, "unknown frame type")
        }
    }

    /// RFC 9000 §19.3 (ACK) and draft-ietf-quic-multipath §4.1 (PATH_ACK, after its Path Identifier).
    private static func decodeAck(type: UInt64, ecn: Bool, from r: inout ByteReader) throws -> AckFrame {
        let largest = try r.readVarInt()
        let delay = try r.readVarInt()
        let rangeCount = try r.readVarInt()
        let firstRange = try r.readVarInt()
        // RFC 9000 §19.3.1: "Smallest = Largest - ACK Range ... If any computed packet number is
        // negative, an endpoint MUST generate a connection error of type FRAME_ENCODING_ERROR."
        guard firstRange <= largest else {
            throw TransportError(.frameEncodingError, frameType: type, "First ACK Range exceeds Largest Acknowledged")
        }
        var smallest = largest - firstRange
        var ranges = AckRanges()
        ranges.append(smallest...largest)
        var i: UInt64 = 0
        while i < rangeCount {
            let gap = try r.readVarInt()
            let length = try r.readVarInt()
            // RFC 9000 §19.3.1: "Largest = Smallest(previous) - Gap - 2"; "Smallest = Largest - ACK
            // Range Length". A negative result MUST be a FRAME_ENCODING_ERROR. (gap < 2^62, so +2
            // cannot overflow.)
            guard smallest >= gap + 2 else {
                throw TransportError(.frameEncodingError, frameType: type, "ACK Gap underflows packet number 0")
            }
            let upper = smallest - gap - 2
            guard length <= upper else {
                throw TransportError(.frameEncodingError, frameType: type, "ACK Range Length underflows packet number 0")
            }
            smallest = upper - length
            ranges.append(smallest...upper)
            i += 1
        }
        var counts: ECNCounts? = nil
        if ecn {
            // RFC 9000 §19.3.2: ECT0, ECT1, ECN-CE counts, each a varint.
            let ect0 = try r.readVarInt()
            let ect1 = try r.readVarInt()
            let ce = try r.readVarInt()
            counts = ECNCounts(ect0: ect0, ect1: ect1, ce: ce)
        }
        return AckFrame(ranges: ranges, ackDelay: delay, ecn: counts)
    }

    /// RFC 9000 §19.8: type bits 0x04 = OFF, 0x02 = LEN, 0x01 = FIN.
    private static func decodeStream(type: UInt64, from r: inout ByteReader) throws -> StreamFrame {
        let id = try r.readVarInt()
        let offset = try (type & 0x04) != 0 ? r.readVarInt() : 0
        let data: ArraySlice<UInt8>
        if (type & 0x02) != 0 {
            data = try r.readBytes(try r.readLength())
        } else {
            // RFC 9000 §19.8: "When the LEN bit is not set, the Stream Data field consumes all the
            // remaining bytes in the packet."
            data = r.readRemaining()
        }
        // RFC 9000 §19.8: "The largest offset delivered on a stream -- the sum of the offset and data
        // length -- cannot exceed 2^62-1 ... Receipt of a frame that exceeds this limit MUST be
        // treated as a connection error of type FRAME_ENCODING_ERROR or FLOW_CONTROL_ERROR."
        // We choose FRAME_ENCODING_ERROR.
        guard UInt64(data.count) <= maxStreamOffset - offset else {
            throw TransportError(.frameEncodingError, frameType: type, "STREAM offset+length exceeds 2^62-1")
        }
        return StreamFrame(streamID: id, offset: offset, data: data, fin: (type & 0x01) != 0)
    }

    /// RFC 9000 §19.15 (NEW_CONNECTION_ID); PATH_NEW_CONNECTION_ID shares the layout after its Path ID.
    private static func decodeNewConnectionID(type: UInt64, from r: inout ByteReader) throws -> NewConnectionIDFrame {
        let seq = try r.readVarInt()
        let retirePriorTo = try r.readVarInt()
        // RFC 9000 §19.15: "The value in the Retire Prior To field MUST be less than or equal to the
        // value in the Sequence Number field. Receiving a value in the Retire Prior To field that is
        // greater than that in the Sequence Number field MUST be treated as a connection error of
        // type FRAME_ENCODING_ERROR."
        guard retirePriorTo <= seq else {
            throw TransportError(.frameEncodingError, frameType: type, "Retire Prior To exceeds Sequence Number")
        }
        let length = Int(try r.readUInt8())
        // RFC 9000 §19.15: "Values less than 1 and greater than 20 are invalid and MUST be treated as
        // a connection error of type FRAME_ENCODING_ERROR."
        guard length >= 1 && length <= ConnectionID.maxLength else {
            throw TransportError(.frameEncodingError, frameType: type, "connection ID length \(length) outside 1...20")
        }
        let cid = ConnectionID(try r.readBytes(length))
        let token = StatelessResetToken(try r.readBytes(16))
        return NewConnectionIDFrame(
            sequenceNumber: seq, retirePriorTo: retirePriorTo,
            connectionID: cid, statelessResetToken: token)
    }
}
