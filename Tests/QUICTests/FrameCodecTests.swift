import XCTest

@testable import QUIC

/// RFC 9000 §12.4 and §19, RFC 9221 §4, draft-ietf-quic-multipath §4: frame encoding and decoding.
final class FrameCodecTests: XCTestCase {
    // MARK: - Fixtures

    private static let token = StatelessResetToken([UInt8](0..<16))
    private static let cid8 = ConnectionID([1, 2, 3, 4, 5, 6, 7, 8])
    private static let cid20 = ConnectionID([UInt8](100..<120))
    private static let payload: [UInt8] = [UInt8](repeating: 0xab, count: 300)

    /// At least one instance of every `Frame` case, with field values at varint width boundaries.
    static var samples: [Frame] {
        let data = payload[10..<110]
        return [
            .padding(count: 1),
            .padding(count: 37),
            .ping,
            .ack(AckFrame(ranges: [0...0], ackDelay: 0)),
            .ack(AckFrame(ranges: [100...120, 50...97, 0...10], ackDelay: 16383)),
            .ack(AckFrame(ranges: [(1 << 40)...(1 << 40) + 5], ackDelay: 1, ecn: ECNCounts(ect0: 1, ect1: 64, ce: 16384))),
            .resetStream(streamID: 4, errorCode: 0x1234, finalSize: 1 << 30),
            .stopSending(streamID: 3, errorCode: VarInt.max),
            .crypto(offset: 0, data: data),
            .crypto(offset: 16384, data: []),
            .newToken(token: payload[0..<64]),
            .stream(StreamFrame(streamID: 0, offset: 0, data: data, fin: false)),
            .stream(StreamFrame(streamID: 63, offset: 64, data: [], fin: true)),
            .stream(StreamFrame(streamID: VarInt.max, offset: 1 << 30, data: payload[0..<1], fin: true)),
            .maxData((1 << 62) - 1),
            .maxStreamData(streamID: 1, maximum: 65536),
            .maxStreams(bidirectional: true, maximum: 100),
            .maxStreams(bidirectional: false, maximum: 1 << 60),
            .dataBlocked(limit: 77),
            .streamDataBlocked(streamID: 2, limit: 1 << 20),
            .streamsBlocked(bidirectional: true, limit: 0),
            .streamsBlocked(bidirectional: false, limit: 1 << 60),
            .newConnectionID(NewConnectionIDFrame(sequenceNumber: 5, retirePriorTo: 2, connectionID: cid8, statelessResetToken: token)),
            .newConnectionID(
                NewConnectionIDFrame(sequenceNumber: 1 << 20, retirePriorTo: 1 << 20, connectionID: cid20, statelessResetToken: token)),
            .retireConnectionID(sequenceNumber: 9),
            .pathChallenge(data: 0x0102_0304_0506_0708),
            .pathResponse(data: 0xffff_ffff_ffff_ffff),
            .connectionClose(ConnectionCloseFrame(isApplication: false, errorCode: 0x0a, frameType: 0x08, reason: payload[0..<5])),
            .connectionClose(ConnectionCloseFrame(isApplication: true, errorCode: 0x100, reason: [])),
            .handshakeDone,
            .datagram(data: data, hasLength: true),
            .datagram(data: [], hasLength: true),
            .datagram(data: data, hasLength: false),
            .pathAck(pathID: 3, AckFrame(ranges: [10...12, 5...7, 0...2], ackDelay: 5)),
            .pathAck(pathID: 0xffff_ffff, AckFrame(ranges: [7...7], ackDelay: 0, ecn: ECNCounts(ect0: 0, ect1: 0, ce: 0))),
            .pathAbandon(pathID: 1, errorCode: 0x3e75),
            .pathStatusBackup(pathID: 2, sequenceNumber: 1),
            .pathStatusAvailable(pathID: 2, sequenceNumber: 2),
            .pathNewConnectionID(
                pathID: 4, NewConnectionIDFrame(sequenceNumber: 0, retirePriorTo: 0, connectionID: cid8, statelessResetToken: token)),
            .pathRetireConnectionID(pathID: 4, sequenceNumber: 3),
            .maxPathID(0xffff_ffff),
            .pathsBlocked(maximumPathID: 8),
            .pathCIDsBlocked(pathID: 5, nextSequenceNumber: 6),
        ]
    }

    /// Exhaustive switch: adding a `Frame` case breaks the build until a sample is added here.
    private static func caseName(_ f: Frame) -> String {
        switch f {
        case .padding: return "padding"
        case .ping: return "ping"
        case .ack: return "ack"
        case .resetStream: return "resetStream"
        case .stopSending: return "stopSending"
        case .crypto: return "crypto"
        case .newToken: return "newToken"
        case .stream: return "stream"
        case .maxData: return "maxData"
        case .maxStreamData: return "maxStreamData"
        case .maxStreams: return "maxStreams"
        case .dataBlocked: return "dataBlocked"
        case .streamDataBlocked: return "streamDataBlocked"
        case .streamsBlocked: return "streamsBlocked"
        case .newConnectionID: return "newConnectionID"
        case .retireConnectionID: return "retireConnectionID"
        case .pathChallenge: return "pathChallenge"
        case .pathResponse: return "pathResponse"
        case .connectionClose: return "connectionClose"
        case .handshakeDone: return "handshakeDone"
        case .datagram: return "datagram"
        case .pathAck: return "pathAck"
        case .pathAbandon: return "pathAbandon"
        case .pathStatusBackup: return "pathStatusBackup"
        case .pathStatusAvailable: return "pathStatusAvailable"
        case .pathNewConnectionID: return "pathNewConnectionID"
        case .pathRetireConnectionID: return "pathRetireConnectionID"
        case .maxPathID: return "maxPathID"
        case .pathsBlocked: return "pathsBlocked"
        case .pathCIDsBlocked: return "pathCIDsBlocked"
        }
    }

    private static let allPacketTypes: [PacketType] = [.initial, .zeroRTT, .handshake, .retry, .versionNegotiation, .oneRTT]

    private func assertTransportError<T>(
        _ expression: @autoclosure () throws -> T, _ code: TransportErrorCode,
        frameType: UInt64? = nil, _ message: String,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertThrowsError(try expression(), message, file: file, line: line) { error in
            guard let e = error as? TransportError else {
                return XCTFail("\(message): threw \(error), not a TransportError", file: file, line: line)
            }
            XCTAssertEqual(e.code, code, "\(message): got \(e)", file: file, line: line)
            if let frameType {
                XCTAssertEqual(
                    e.frameType, frameType, "\(message): error must carry frame type 0x\(String(frameType, radix: 16))",
                    file: file, line: line)
            }
        }
    }

    private func decodeOne(_ bytes: [UInt8], _ packetType: PacketType = .oneRTT) throws -> Frame {
        var r = ByteReader(bytes)
        let f = try Frame.decode(from: &r, packetType: packetType)
        XCTAssertTrue(r.isAtEnd, "decoder must consume the whole frame")
        return f
    }

    // MARK: - Round trips

    func testSamplesCoverEveryFrameCase() {
        XCTAssertEqual(Set(Self.samples.map(Self.caseName)).count, 30, "every Frame case needs a round-trip sample")
    }

    func testEveryFrameRoundTripsAndEncodedLengthEqualsBytesWritten() throws {
        for frame in Self.samples {
            var w = ByteWriter()
            frame.encode(to: &w)
            XCTAssertEqual(w.count, frame.encodedLength, "encodedLength must equal the bytes encode writes for \(frame)")
            XCTAssertEqual(frame.encoded, w.bytes)
            var r = ByteReader(w.bytes)
            let decoded = try Frame.decode(from: &r, packetType: .oneRTT)
            XCTAssertEqual(decoded, frame, "decode(encode(f)) == f")
            XCTAssertTrue(r.isAtEnd, "decoding \(frame) must consume exactly its encoding")
            var tr = ByteReader(w.bytes)
            if case .padding = frame {
            } else {
                XCTAssertEqual(try tr.readVarInt(), frame.frameType, "frameType must be the type encode writes for \(frame)")
            }
        }
    }

    func testEncodingIntoAnExistingWriterAppends() throws {
        var w = ByteWriter()
        w.writeBytes([0xaa, 0xbb])
        let frames = Self.samples.filter {
            if case .datagram(_, false) = $0 { return false }
            return true
        }
        for f in frames { f.encode(to: &w) }
        XCTAssertEqual(w.count, 2 + frames.reduce(0) { $0 + $1.encodedLength })
        var r = ByteReader(w.bytes, from: 2, to: w.count)
        var decoded: [Frame] = []
        while !r.isAtEnd { decoded.append(try Frame.decode(from: &r, packetType: .oneRTT)) }
        // Adjacent PADDING samples merge into one run on the wire.
        XCTAssertEqual(decoded.count, frames.count - 1)
        XCTAssertEqual(decoded.first, .padding(count: 38), "RFC 9000 §19.1: consecutive PADDING bytes decode as one run")
        XCTAssertEqual(Array(decoded.dropFirst()), Array(frames.dropFirst(2)))
    }

    func testAckRangesEncodeGapAsPreviousSmallestMinusLargestMinusTwo() {
        // RFC 9000 §19.3.1: ranges 10-12, 5-7, 0-2 → Largest 12, First Range 2, then (Gap 1, Length 2) twice.
        let f = Frame.ack(AckFrame(ranges: [10...12, 5...7, 0...2], ackDelay: 3))
        XCTAssertEqual(f.encoded, [0x02, 12, 3, 2, 2, 1, 2, 1, 2])
        let ecn = Frame.ack(AckFrame(ranges: [4...4], ackDelay: 0, ecn: ECNCounts(ect0: 1, ect1: 2, ce: 3)))
        XCTAssertEqual(ecn.encoded, [0x03, 4, 0, 0, 0, 1, 2, 3], "RFC 9000 §19.3.2: type 0x03 appends ECT0, ECT1, ECN-CE")
        let pathAck = Frame.pathAck(pathID: 1, AckFrame(ranges: [4...4], ackDelay: 0, ecn: ECNCounts(ect0: 1, ect1: 2, ce: 3)))
        XCTAssertEqual(pathAck.encoded, [0x3f, 1, 4, 0, 0, 0, 1, 2, 3], "PATH_ACK_ECN is 0x3f with the Path Identifier first")
    }

    // MARK: - Payload handling

    func testDecodedPayloadSlicesShareTheReceivedArray() throws {
        let packet: [UInt8] = [0x01] + Frame.stream(StreamFrame(streamID: 4, offset: 9, data: [1, 2, 3], fin: false)).encoded
        let frames = try Frame.decodeAll(packet, packetType: .oneRTT)
        guard case .stream(let s) = frames[1] else { return XCTFail("expected a STREAM frame") }
        XCTAssertEqual(s.data.startIndex, packet.count - 3, "STREAM data must be a slice of the packet, not a copy")
        packet.withUnsafeBufferPointer { p in
            s.data.withUnsafeBufferPointer { d in
                XCTAssertEqual(d.baseAddress, p.baseAddress! + (packet.count - 3), "slice must share the packet's storage")
            }
        }
    }

    func testConsecutivePaddingBytesCollapseIntoOneFrame() throws {
        let frames = try Frame.decodeAll([0, 0, 0, 0x01, 0, 0], packetType: .initial)
        XCTAssertEqual(frames, [.padding(count: 3), .ping, .padding(count: 2)], "RFC 9000 §19.1: a PADDING run is one frame")
    }

    func testStreamFrameWithoutLengthRunsToTheEndOfThePacket() throws {
        // Type 0x0d = STREAM | OFF | FIN, no LEN.
        let packet: [UInt8] = [0x0d, 0x04, 0x40, 0x64, 9, 8, 7, 6]
        let frames = try Frame.decodeAll(packet, packetType: .oneRTT)
        XCTAssertEqual(
            frames, [.stream(StreamFrame(streamID: 4, offset: 100, data: [9, 8, 7, 6], fin: true))],
            "RFC 9000 §19.8: without LEN the data consumes the rest of the packet")
    }

    func testStreamFrameWithoutOffsetBitHasOffsetZero() throws {
        XCTAssertEqual(
            try decodeOne([0x0a, 0x01, 0x02, 0xaa, 0xbb]),
            .stream(StreamFrame(streamID: 1, offset: 0, data: [0xaa, 0xbb], fin: false)),
            "RFC 9000 §19.8: when OFF is clear the offset is 0")
        XCTAssertEqual(try decodeOne([0x08, 0x01]), .stream(StreamFrame(streamID: 1, offset: 0, data: [], fin: false)))
    }

    func testStreamEncodingOmitsOffsetZeroAndAlwaysWritesLength() {
        XCTAssertEqual(Frame.stream(StreamFrame(streamID: 1, offset: 0, data: [7], fin: false)).encoded, [0x0a, 1, 1, 7])
        XCTAssertEqual(Frame.stream(StreamFrame(streamID: 1, offset: 5, data: [7], fin: true)).encoded, [0x0f, 1, 5, 1, 7])
    }

    func testDatagram0x30RunsToEndAnd0x31CarriesALength() throws {
        XCTAssertEqual(
            try Frame.decodeAll([0x30, 1, 2, 3], packetType: .oneRTT), [.datagram(data: [1, 2, 3], hasLength: false)],
            "RFC 9221 §4: type 0x30 has no Length field and extends to the end of the packet")
        XCTAssertEqual(
            try Frame.decodeAll([0x31, 2, 1, 2, 0x01], packetType: .oneRTT),
            [.datagram(data: [1, 2], hasLength: true), .ping], "RFC 9221 §4: type 0x31 is length-prefixed")
    }

    func testConnectionCloseTransportCarriesFrameTypeAndApplicationDoesNot() throws {
        XCTAssertEqual(
            try decodeOne([0x1c, 0x07, 0x06, 0x02, 0x68, 0x69], .initial),
            .connectionClose(ConnectionCloseFrame(isApplication: false, errorCode: 7, frameType: 6, reason: [0x68, 0x69])))
        XCTAssertEqual(
            try decodeOne([0x1d, 0x05, 0x00]),
            .connectionClose(ConnectionCloseFrame(isApplication: true, errorCode: 5, reason: [])))
    }

    // MARK: - Malformed input

    func testTruncationAtEveryBytePositionIsFrameEncodingError() {
        for frame in Self.samples {
            switch frame {
            case .padding, .datagram(_, hasLength: false):
                continue  // these run to the end of the packet, so every prefix is itself a valid frame
            default: break
            }
            let bytes = frame.encoded
            let typeLength = VarInt.encodedLength(frame.frameType)
            for cut in 0..<bytes.count {
                assertTransportError(
                    try decodeOne(Array(bytes[0..<cut])), .frameEncodingError,
                    frameType: cut >= typeLength ? frame.frameType : nil,
                    "RFC 9000 §12.4: \(frame) cut to \(cut) of \(bytes.count) bytes is a FRAME_ENCODING_ERROR")
            }
        }
    }

    func testEmptyPacketPayloadIsProtocolViolation() {
        assertTransportError(
            try Frame.decodeAll([], packetType: .oneRTT), .protocolViolation,
            "RFC 9000 §12.4: a packet containing no frames is a PROTOCOL_VIOLATION")
    }

    func testUnknownFrameTypeIsFrameEncodingError() {
        for type: [UInt8] in [[0x1f], [0x20], [0x2f], [0x32], [0x3d], [0x7e, 0x74], [0x7e, 0x7d], [0x80, 0x01, 0x00, 0x00]] {
            var r = ByteReader(type)
            let value = try! r.readVarInt()
            assertTransportError(
                try Frame.decodeAll(type + [0, 0, 0, 0], packetType: .oneRTT), .frameEncodingError,
                frameType: value,
                "RFC 9000 §12.4: unknown frame type 0x\(String(value, radix: 16)) is a FRAME_ENCODING_ERROR")
        }
    }

    func testNonMinimalFrameTypeEncodingIsProtocolViolation() {
        assertTransportError(
            try decodeOne([0x40, 0x01]), .protocolViolation, frameType: 0x01,
            "RFC 9000 §12.4: a frame type MUST use the shortest encoding (PING as 0x4001)")
        assertTransportError(
            try decodeOne([0x80, 0x00, 0x3e, 0x75, 0, 0]), .protocolViolation, frameType: 0x3e75,
            "RFC 9000 §12.4: PATH_ABANDON in four bytes is not minimal")
    }

    func testLengthFieldsLongerThanThePacketAreFrameEncodingErrors() {
        let cases: [([UInt8], UInt64, String)] = [
            ([0x06, 0x00, 0x44, 0x00, 1, 2, 3], 0x06, "CRYPTO Length beyond the packet"),
            ([0x07, 0x05, 1, 2, 3, 4], 0x07, "NEW_TOKEN Token Length beyond the packet"),
            ([0x0a, 0x00, 0x10, 1, 2], 0x0a, "STREAM Length beyond the packet"),
            ([0x1c, 0x00, 0x00, 0x09, 0x41], 0x1c, "CONNECTION_CLOSE Reason Phrase Length beyond the packet"),
            ([0x1d, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 0x1d, "Reason Phrase Length of 2^62-1"),
            ([0x31, 0x80, 0x01, 0x00, 0x00, 1], 0x31, "DATAGRAM Length beyond the packet"),
            ([0x18, 0x01, 0x00, 0x08, 1, 2, 3], 0x18, "NEW_CONNECTION_ID without room for its connection ID"),
        ]
        for (bytes, type, rule) in cases {
            assertTransportError(try decodeOne(bytes), .frameEncodingError, frameType: type, "\(rule) is a FRAME_ENCODING_ERROR")
        }
    }

    func testStreamOffsetPlusLengthBeyond2To62MinusOneIsFrameEncodingError() throws {
        let maxOffset: [UInt8] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        assertTransportError(
            try decodeOne([0x0e, 0x00] + maxOffset + [0x01, 0xaa]), .frameEncodingError, frameType: 0x0e,
            "RFC 9000 §19.8: offset + length above 2^62-1 is a FRAME_ENCODING_ERROR (our choice over FLOW_CONTROL_ERROR)")
        assertTransportError(
            try decodeOne([0x0c, 0x00] + maxOffset + [0xaa]), .frameEncodingError, frameType: 0x0c,
            "RFC 9000 §19.8: the limit also applies to a STREAM frame without LEN")
        XCTAssertEqual(
            try decodeOne([0x0f, 0x00] + maxOffset + [0x00]),
            .stream(StreamFrame(streamID: 0, offset: VarInt.max, data: [], fin: true)),
            "RFC 9000 §19.8: a final size of exactly 2^62-1 is allowed")
    }

    func testCryptoOffsetPlusLengthBeyond2To62MinusOneIsFrameEncodingError() throws {
        let maxOffset: [UInt8] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        assertTransportError(
            try decodeOne([0x06] + maxOffset + [0x01, 0xaa]), .frameEncodingError, frameType: 0x06,
            "RFC 9000 §19.6: CRYPTO offset + length above 2^62-1 is a FRAME_ENCODING_ERROR (our choice over CRYPTO_BUFFER_EXCEEDED)")
        XCTAssertEqual(try decodeOne([0x06] + maxOffset + [0x00]), .crypto(offset: VarInt.max, data: []))
    }

    func testNewConnectionIDLengthOutside1To20IsFrameEncodingError() {
        let token = [UInt8](repeating: 0x11, count: 16)
        assertTransportError(
            try decodeOne([0x18, 0x01, 0x00, 0x00] + token), .frameEncodingError, frameType: 0x18,
            "RFC 9000 §19.15: a connection ID Length of 0 is a FRAME_ENCODING_ERROR")
        assertTransportError(
            try decodeOne([0x18, 0x01, 0x00, 21] + [UInt8](repeating: 1, count: 21) + token),
            .frameEncodingError, frameType: 0x18,
            "RFC 9000 §19.15: a connection ID Length of 21 is a FRAME_ENCODING_ERROR")
        assertTransportError(
            try decodeOne([0x7e, 0x78, 0x01, 0x01, 0x00, 0x00] + token), .frameEncodingError, frameType: 0x3e78,
            "PATH_NEW_CONNECTION_ID inherits the RFC 9000 §19.15 length rule")
    }

    func testRetirePriorToGreaterThanSequenceNumberIsFrameEncodingError() {
        let token = [UInt8](repeating: 0x11, count: 16)
        assertTransportError(
            try decodeOne([0x18, 0x03, 0x04, 0x01, 0x09] + token), .frameEncodingError, frameType: 0x18,
            "RFC 9000 §19.15: Retire Prior To greater than Sequence Number is a FRAME_ENCODING_ERROR")
        assertTransportError(
            try decodeOne([0x7e, 0x78, 0x00, 0x03, 0x04, 0x01, 0x09] + token), .frameEncodingError,
            frameType: 0x3e78, "PATH_NEW_CONNECTION_ID inherits the Retire Prior To rule")
    }

    func testMaxStreamsAndStreamsBlockedAbove2To60AreFrameEncodingErrors() throws {
        let over: [UInt8] = VarInt.encode((1 << 60) + 1)
        for type: UInt8 in [0x12, 0x13] {
            assertTransportError(
                try decodeOne([type] + over), .frameEncodingError, frameType: UInt64(type),
                "RFC 9000 §19.11: MAX_STREAMS above 2^60 is a FRAME_ENCODING_ERROR")
        }
        for type: UInt8 in [0x16, 0x17] {
            assertTransportError(
                try decodeOne([type] + over), .frameEncodingError, frameType: UInt64(type),
                "RFC 9000 §19.14: STREAMS_BLOCKED above 2^60 is a FRAME_ENCODING_ERROR")
        }
        XCTAssertEqual(
            try decodeOne([0x12] + VarInt.encode(1 << 60)), .maxStreams(bidirectional: true, maximum: 1 << 60),
            "RFC 9000 §19.11: exactly 2^60 is allowed")
    }

    func testEmptyNewTokenIsFrameEncodingError() {
        assertTransportError(
            try decodeOne([0x07, 0x00]), .frameEncodingError, frameType: 0x07,
            "RFC 9000 §19.7: a NEW_TOKEN with an empty Token is a FRAME_ENCODING_ERROR")
    }

    func testMaxPathIDAbove2To32MinusOneIsProtocolViolation() {
        assertTransportError(
            try decodeOne([0x7e, 0x7a] + VarInt.encode(1 << 32)), .protocolViolation, frameType: 0x3e7a,
            "draft-ietf-quic-multipath §4.7: a Maximum Path Identifier above 2^32-1 is a PROTOCOL_VIOLATION")
    }

    func testAckRangeArithmeticUnderflowIsFrameEncodingError() throws {
        assertTransportError(
            try decodeOne([0x02, 5, 0, 0, 6]), .frameEncodingError, frameType: 0x02,
            "RFC 9000 §19.3.1: First ACK Range larger than Largest Acknowledged is a FRAME_ENCODING_ERROR")
        // Largest 10, first range 2 → smallest 8; gap 7 → next largest 8 - 7 - 2 = -1.
        assertTransportError(
            try decodeOne([0x02, 10, 0, 1, 2, 7, 0]), .frameEncodingError, frameType: 0x02,
            "RFC 9000 §19.3.1: a Gap that takes the next Largest below 0 is a FRAME_ENCODING_ERROR")
        // Largest 10, first range 2 → smallest 8; gap 1 → next largest 5; length 6 → smallest -1.
        assertTransportError(
            try decodeOne([0x02, 10, 0, 1, 2, 1, 6]), .frameEncodingError, frameType: 0x02,
            "RFC 9000 §19.3.1: an ACK Range Length that takes Smallest below 0 is a FRAME_ENCODING_ERROR")
        assertTransportError(
            try decodeOne([0x3e, 1, 10, 0, 1, 2, 1, 6]), .frameEncodingError, frameType: 0x3e,
            "PATH_ACK inherits the RFC 9000 §19.3.1 underflow rule")
        // The same frame with length 5 reaches packet 0 exactly and is valid.
        XCTAssertEqual(try decodeOne([0x02, 10, 0, 1, 2, 1, 5]), .ack(AckFrame(ranges: [8...10, 0...5], ackDelay: 0)))
    }

    func testHugeAckRangeCountWithoutRangesIsFrameEncodingError() {
        assertTransportError(
            try decodeOne([0x02, 10, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0]),
            .frameEncodingError, frameType: 0x02,
            "RFC 9000 §19.3: an ACK Range Count larger than the ranges present is a FRAME_ENCODING_ERROR")
    }

    // MARK: - Frames per packet type

    /// RFC 9000 §12.4 Table 3 "Pkts" column (I = Initial, H = Handshake, 0 = 0-RTT, 1 = 1-RTT), with
    /// RETIRE_CONNECTION_ID also refused in 0-RTT (§17.2.3), DATAGRAM per RFC 9221 §4, and the
    /// multipath frames 1-RTT only (draft-ietf-quic-multipath §4).
    private static func expectedPermitted(_ type: UInt64, _ packetType: PacketType) -> Bool {
        let pkts: String
        switch type {
        case 0x00, 0x01, 0x1c: pkts = "IH01"
        case 0x02, 0x03, 0x06: pkts = "IH1"
        case 0x04, 0x05, 0x08...0x18, 0x1a, 0x1d, 0x30, 0x31: pkts = "01"
        case 0x07, 0x19, 0x1b, 0x1e: pkts = "1"
        case 0x3e, 0x3f, 0x3e75...0x3e7c: pkts = "1"
        default: pkts = ""
        }
        switch packetType {
        case .initial: return pkts.contains("I")
        case .handshake: return pkts.contains("H")
        case .zeroRTT: return pkts.contains("0")
        case .oneRTT: return pkts.contains("1")
        case .retry, .versionNegotiation: return false
        }
    }

    func testFramesNotPermittedInAPacketTypeAreProtocolViolations() throws {
        for packetType in Self.allPacketTypes {
            for frame in Self.samples {
                let bytes = frame.encoded
                let type = frame.frameType
                if Self.expectedPermitted(type, packetType) {
                    XCTAssertEqual(try decodeOne(bytes, packetType), frame, "\(frame) is permitted in \(packetType) packets")
                } else {
                    assertTransportError(
                        try decodeOne(bytes, packetType), .protocolViolation, frameType: type,
                        "RFC 9000 §12.4: \(frame) in a \(packetType) packet is a PROTOCOL_VIOLATION")
                }
                XCTAssertEqual(Frame.isPermitted(frameType: type, in: packetType), Self.expectedPermitted(type, packetType))
            }
        }
    }

    func testApplicationConnectionCloseIsNotPermittedInInitialOrHandshake() {
        for packetType: PacketType in [.initial, .handshake] {
            assertTransportError(
                try decodeOne([0x1d, 0x00, 0x00], packetType), .protocolViolation, frameType: 0x1d,
                "RFC 9000 §12.4: CONNECTION_CLOSE 0x1d in \(packetType) is a PROTOCOL_VIOLATION")
        }
    }

    func testStreamFramesWithEveryFlagCombinationAreRefusedInInitial() {
        for type: UInt8 in 0x08...0x0f {
            assertTransportError(
                try decodeOne([type, 0, 0, 0, 0], .initial), .protocolViolation, frameType: UInt64(type),
                "RFC 9000 §12.4: STREAM 0x\(String(type, radix: 16)) in Initial is a PROTOCOL_VIOLATION")
        }
    }

    // MARK: - Classification

    func testAckElicitingAndInFlightFollowRFC9002Section2() {
        for frame in Self.samples {
            let expectedEliciting: Bool
            switch frame {
            case .ack, .padding, .connectionClose, .pathAck: expectedEliciting = false
            default: expectedEliciting = true
            }
            XCTAssertEqual(
                frame.isAckEliciting, expectedEliciting,
                "RFC 9002 §2: all frames except ACK, PADDING and CONNECTION_CLOSE are ack-eliciting (\(frame))")
            var isPadding = false
            if case .padding = frame { isPadding = true }
            XCTAssertEqual(
                frame.countsInFlight, expectedEliciting || isPadding,
                "RFC 9002 §2: in flight = ack-eliciting or PADDING (\(frame))")
        }
    }

    // MARK: - Packet builder helpers

    func testStreamHeaderHelpersMatchTheBytesWritten() throws {
        for streamID: UInt64 in [0, 63, 64, 16384, VarInt.max] {
            for offset: UInt64 in [0, 1, 64, 1 << 30] {
                for length in [0, 63, 64, 16384] {
                    for hasLength in [false, true] {
                        var w = ByteWriter()
                        Frame.encodeStreamHeader(
                            streamID: streamID, offset: offset, length: length, fin: true,
                            hasLength: hasLength, to: &w)
                        XCTAssertEqual(
                            w.count,
                            Frame.streamHeaderLength(
                                streamID: streamID, offset: offset,
                                length: length, hasLength: hasLength))
                        if offset + UInt64(length) <= VarInt.max {
                            let data = [UInt8](repeating: 7, count: length)
                            w.writeBytes(data)
                            XCTAssertEqual(
                                try decodeOne(w.bytes),
                                .stream(StreamFrame(streamID: streamID, offset: offset, data: data[...], fin: true)))
                        }
                    }
                }
            }
        }
    }

    func testCryptoAndDatagramHeaderHelpersMatchTheBytesWritten() throws {
        for offset: UInt64 in [0, 64, 1 << 30] {
            for length in [0, 63, 64, 16384] {
                var w = ByteWriter()
                Frame.encodeCryptoHeader(offset: offset, length: length, to: &w)
                XCTAssertEqual(w.count, Frame.cryptoHeaderLength(offset: offset, length: length))
            }
        }
        for length in [0, 63, 64, 16384] {
            for hasLength in [false, true] {
                var w = ByteWriter()
                Frame.encodeDatagramHeader(length: length, hasLength: hasLength, to: &w)
                XCTAssertEqual(w.count, Frame.datagramHeaderLength(length: length, hasLength: hasLength))
                let data = [UInt8](repeating: 1, count: length)
                w.writeBytes(data)
                XCTAssertEqual(try decodeOne(w.bytes), .datagram(data: data[...], hasLength: hasLength))
            }
        }
    }

    func testMaxStreamDataLengthIsTheLargestThatFits() {
        for offset: UInt64 in [0, 100] {
            for hasLength in [true, false] {
                for budget in Array(0...80) + Array(16370...16400) {
                    let n = Frame.maxStreamDataLength(streamID: 4, offset: offset, budget: budget, hasLength: hasLength)
                    let size = { (n: Int) in Frame.streamHeaderLength(streamID: 4, offset: offset, length: n, hasLength: hasLength) + n }
                    if n > 0 { XCTAssertLessThanOrEqual(size(n), budget, "\(n) bytes must fit in \(budget)") }
                    XCTAssertGreaterThan(size(n + 1), budget, "\(n + 1) bytes must not fit in \(budget) (hasLength \(hasLength))")
                }
            }
        }
        XCTAssertEqual(Frame.maxStreamDataLength(streamID: 0, offset: 0, budget: 1000, hasLength: true, maxLength: 10), 10)
        for budget in 0...80 {
            let n = Frame.maxCryptoDataLength(offset: 70, budget: budget)
            if n > 0 { XCTAssertLessThanOrEqual(Frame.cryptoHeaderLength(offset: 70, length: n) + n, budget) }
            XCTAssertGreaterThan(Frame.cryptoHeaderLength(offset: 70, length: n + 1) + n + 1, budget)
        }
    }
}
