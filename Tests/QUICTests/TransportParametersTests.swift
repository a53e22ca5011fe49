import XCTest

@testable import QUIC

/// RFC 9000 §7.3, §7.4, §18; RFC 9221 §3; draft-ietf-quic-multipath §2.1.
final class TransportParametersTests: XCTestCase {
    private typealias TP = TransportParameters

    private static let token = StatelessResetToken([UInt8](200..<216))

    /// One raw `Transport Parameter { ID (i), Length (i), Value (..) }`.
    private func param(_ id: UInt64, _ value: [UInt8]) -> [UInt8] {
        VarInt.encode(id) + VarInt.encode(UInt64(value.count)) + value
    }

    private func varintParam(_ id: UInt64, _ value: UInt64) -> [UInt8] { param(id, VarInt.encode(value)) }

    private func preferredAddressValue(cid: [UInt8], token: [UInt8] = [UInt8](repeating: 9, count: 16)) -> [UInt8] {
        [192, 0, 2, 1, 0x11, 0x51] + [UInt8](repeating: 0x20, count: 16) + [0x11, 0x52] + [UInt8(cid.count)] + cid + token
    }

    private func assertParameterError(
        _ bytes: [UInt8], isServer: Bool, _ message: String,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertThrowsError(try TP.decode(bytes, isServer: isServer), message, file: file, line: line) { error in
            XCTAssertEqual(
                (error as? TransportError)?.code, .transportParameterError, "\(message): got \(error)",
                file: file, line: line)
        }
    }

    private static var fullServerParameters: TP {
        TP(
            originalDestinationConnectionID: ConnectionID([1, 2, 3, 4, 5, 6, 7, 8]),
            maxIdleTimeout: 30_000,
            statelessResetToken: token,
            maxUDPPayloadSize: 1452,
            initialMaxData: 1 << 24,
            initialMaxStreamDataBidiLocal: 1 << 20,
            initialMaxStreamDataBidiRemote: 1 << 21,
            initialMaxStreamDataUni: 1 << 22,
            initialMaxStreamsBidi: 100,
            initialMaxStreamsUni: 1 << 60,
            ackDelayExponent: 20,
            maxAckDelay: 16383,
            disableActiveMigration: true,
            preferredAddress: PreferredAddress(
                ipv4Address: [10, 0, 0, 1], ipv4Port: 4433,
                ipv6Address: [UInt8](1...16), ipv6Port: 4434,
                connectionID: ConnectionID([UInt8](0..<20)), statelessResetToken: token),
            activeConnectionIDLimit: 8,
            initialSourceConnectionID: ConnectionID([9, 9, 9, 9]),
            retrySourceConnectionID: ConnectionID([7, 7]),
            maxDatagramFrameSize: 65535,
            initialMaxPathID: 0xffff_ffff)
    }

    // MARK: - Round trips and defaults

    func testServerParametersRoundTripWithEveryFieldSet() throws {
        let p = Self.fullServerParameters
        XCTAssertEqual(try TP.decode(p.encode(), isServer: true), p, "decode(encode(p)) == p for every RFC 9000 §18.2 parameter")
    }

    func testClientParametersRoundTrip() throws {
        let p = TP(
            maxIdleTimeout: 10_000, initialMaxData: 1000, initialMaxStreamsBidi: 3,
            initialSourceConnectionID: .empty, maxDatagramFrameSize: 0, initialMaxPathID: 0)
        XCTAssertEqual(try TP.decode(p.encode(), isServer: false), p)
        XCTAssertEqual(
            try TP.decode(p.encode(), isServer: false).initialSourceConnectionID, .empty,
            "a zero-length initial_source_connection_id is present, not absent")
    }

    func testAbsentParametersTakeTheRFC9000Defaults() throws {
        let p = try TP.decode([], isServer: true)
        XCTAssertEqual(p, TP.defaults)
        XCTAssertEqual(p.maxUDPPayloadSize, 65527, "RFC 9000 §18.2: max_udp_payload_size defaults to 65527")
        XCTAssertEqual(p.ackDelayExponent, 3, "RFC 9000 §18.2: ack_delay_exponent defaults to 3")
        XCTAssertEqual(p.maxAckDelay, 25, "RFC 9000 §18.2: max_ack_delay defaults to 25 ms")
        XCTAssertEqual(p.activeConnectionIDLimit, 2, "RFC 9000 §18.2: active_connection_id_limit defaults to 2")
        XCTAssertEqual(p.maxIdleTimeout, 0)
        XCTAssertEqual(p.initialMaxData, 0, "RFC 9000 §18.2: flow control limits default to 0")
        XCTAssertFalse(p.disableActiveMigration)
        XCTAssertNil(p.maxDatagramFrameSize, "RFC 9221 §3: absent max_datagram_frame_size means no DATAGRAM support")
        XCTAssertNil(p.initialMaxPathID, "absent initial_max_path_id means no multipath")
    }

    func testDefaultValuesAreNotEncoded() {
        XCTAssertEqual(TP.defaults.encode(), [])
    }

    func testExplicitlyEncodedDefaultsDecodeToTheSameValues() throws {
        let bytes =
            varintParam(TP.ID.maxUDPPayloadSize, 65527) + varintParam(TP.ID.ackDelayExponent, 3)
            + varintParam(TP.ID.maxAckDelay, 25) + varintParam(TP.ID.activeConnectionIDLimit, 2)
        XCTAssertEqual(try TP.decode(bytes, isServer: false), TP.defaults)
    }

    func testVarIntValuesMayUseANonMinimalEncodingThatFillsTheLength() throws {
        let p = try TP.decode(param(TP.ID.initialMaxData, [0x80, 0x00, 0x00, 0x05]), isServer: false)
        XCTAssertEqual(p.initialMaxData, 5, "RFC 9000 §16: the value's varint need not be minimal, only fill Length")
    }

    func testBoundaryValuesAreAccepted() throws {
        let bytes =
            varintParam(TP.ID.maxUDPPayloadSize, 1200) + varintParam(TP.ID.ackDelayExponent, 20)
            + varintParam(TP.ID.maxAckDelay, 16383) + varintParam(TP.ID.initialMaxStreamsBidi, 1 << 60)
            + varintParam(TP.ID.initialMaxPathID, 0xffff_ffff)
        let p = try TP.decode(bytes, isServer: false)
        XCTAssertEqual(p.maxUDPPayloadSize, 1200)
        XCTAssertEqual(p.ackDelayExponent, 20)
        XCTAssertEqual(p.maxAckDelay, 16383)
        XCTAssertEqual(p.initialMaxStreamsBidi, 1 << 60)
        XCTAssertEqual(p.initialMaxPathID, 0xffff_ffff)
    }

    // MARK: - GREASE and unknown parameters

    func testGreaseParameterIsWrittenAndIgnored() throws {
        let p = Self.fullServerParameters
        let greased = p.encode(grease: true)
        XCTAssertGreaterThan(greased.count, p.encode().count, "encode(grease: true) adds a reserved parameter")
        XCTAssertEqual(
            try TP.decode(greased, isServer: true), p,
            "RFC 9000 §18.1: reserved ids 31 * N + 27 MUST be ignored")
    }

    func testReservedAndUnknownParametersAreIgnored() throws {
        var bytes = varintParam(TP.ID.initialMaxData, 42)
        for n: UInt64 in [0, 1, 2, 1000, 1 << 40] {
            XCTAssertTrue(TP.ID.isReserved(31 * n + 27))
            bytes += param(31 * n + 27, [UInt8](repeating: UInt8(truncatingIfNeeded: n), count: Int(n % 7)))
        }
        bytes += param(0x1234, [1, 2, 3]) + param(0x21, [])
        let p = try TP.decode(bytes, isServer: false)
        XCTAssertEqual(p, TP(initialMaxData: 42), "RFC 9000 §7.4.2: an endpoint MUST ignore transport parameters it does not support")
    }

    // MARK: - Malformed and invalid

    func testDuplicateParameterIsTransportParameterError() {
        assertParameterError(
            varintParam(TP.ID.initialMaxData, 1) + varintParam(TP.ID.initialMaxData, 1), isServer: false,
            "RFC 9000 §7.4: a parameter sent more than once is a TRANSPORT_PARAMETER_ERROR")
        assertParameterError(
            param(27, []) + param(27, [1]), isServer: false,
            "RFC 9000 §7.4: duplicates of an unknown (GREASE) id are detected too")
    }

    func testTruncatedParametersAreTransportParameterErrors() {
        let valid = Self.fullServerParameters.encode()
        for cut in 1..<valid.count {
            // A prefix ending exactly on a parameter boundary is valid; every other cut must fail.
            var r = ByteReader(Array(valid[0..<cut]))
            var onBoundary = true
            while !r.isAtEnd {
                guard (try? r.readVarInt()) != nil, let n = try? r.readLength(), (try? r.skip(n)) != nil else {
                    onBoundary = false
                    break
                }
            }
            if onBoundary {
                XCTAssertNoThrow(try TP.decode(Array(valid[0..<cut]), isServer: true))
            } else {
                assertParameterError(
                    Array(valid[0..<cut]), isServer: true,
                    "RFC 9000 §18: parameters cut to \(cut) bytes are a TRANSPORT_PARAMETER_ERROR")
            }
        }
        assertParameterError([0x04, 0x05, 0x01], isServer: false, "a Length beyond the extension is a TRANSPORT_PARAMETER_ERROR")
    }

    func testLengthThatDoesNotMatchTheValueIsTransportParameterError() {
        assertParameterError(
            param(TP.ID.initialMaxData, [0x05, 0x00]), isServer: false,
            "RFC 9000 §18: a varint parameter whose Length exceeds its varint is invalid")
        assertParameterError(
            param(TP.ID.initialMaxData, [0x40]), isServer: false,
            "RFC 9000 §18: a varint parameter whose Length is shorter than its varint is invalid")
        assertParameterError(
            param(TP.ID.maxIdleTimeout, []), isServer: false,
            "RFC 9000 §18: an empty value for a varint parameter is invalid")
        assertParameterError(
            param(TP.ID.statelessResetToken, [UInt8](repeating: 1, count: 15)), isServer: true,
            "RFC 9000 §18.2: stateless_reset_token must be exactly 16 bytes")
        assertParameterError(
            param(TP.ID.statelessResetToken, [UInt8](repeating: 1, count: 17)), isServer: true,
            "RFC 9000 §18.2: stateless_reset_token must be exactly 16 bytes")
        assertParameterError(
            param(TP.ID.disableActiveMigration, [0]), isServer: false,
            "RFC 9000 §18.2: disable_active_migration is a zero-length value")
        assertParameterError(
            param(TP.ID.initialSourceConnectionID, [UInt8](repeating: 1, count: 21)), isServer: false,
            "RFC 9000 §17.2: a connection ID longer than 20 bytes is invalid")
        assertParameterError(
            param(TP.ID.preferredAddress, preferredAddressValue(cid: [1, 2, 3, 4]) + [0]), isServer: true,
            "RFC 9000 §18.2: preferred_address with trailing bytes does not match its Length")
        assertParameterError(
            param(TP.ID.preferredAddress, Array(preferredAddressValue(cid: [1, 2, 3, 4]).dropLast())),
            isServer: true, "RFC 9000 §18.2: a truncated preferred_address is invalid")
    }

    func testOutOfRangeValuesAreTransportParameterErrors() {
        assertParameterError(
            varintParam(TP.ID.maxUDPPayloadSize, 1199), isServer: false,
            "RFC 9000 §18.2: max_udp_payload_size below 1200 is invalid")
        assertParameterError(
            varintParam(TP.ID.ackDelayExponent, 21), isServer: false,
            "RFC 9000 §18.2: ack_delay_exponent above 20 is invalid")
        assertParameterError(
            varintParam(TP.ID.maxAckDelay, 1 << 14), isServer: false,
            "RFC 9000 §18.2: max_ack_delay of 2^14 or greater is invalid")
        assertParameterError(
            varintParam(TP.ID.activeConnectionIDLimit, 1), isServer: false,
            "RFC 9000 §18.2: active_connection_id_limit below 2 is a TRANSPORT_PARAMETER_ERROR")
        assertParameterError(
            varintParam(TP.ID.activeConnectionIDLimit, 0), isServer: false,
            "RFC 9000 §18.2: active_connection_id_limit of 0 is a TRANSPORT_PARAMETER_ERROR")
        assertParameterError(
            varintParam(TP.ID.initialMaxStreamsBidi, (1 << 60) + 1), isServer: false,
            "RFC 9000 §4.6: initial_max_streams_bidi above 2^60 is a TRANSPORT_PARAMETER_ERROR")
        assertParameterError(
            varintParam(TP.ID.initialMaxStreamsUni, (1 << 60) + 1), isServer: false,
            "RFC 9000 §4.6: initial_max_streams_uni above 2^60 is a TRANSPORT_PARAMETER_ERROR")
        assertParameterError(
            varintParam(TP.ID.initialMaxPathID, 1 << 32), isServer: false,
            "draft-ietf-quic-multipath §2.1: initial_max_path_id above 2^32-1 is a TRANSPORT_PARAMETER_ERROR")
        assertParameterError(
            param(TP.ID.preferredAddress, preferredAddressValue(cid: [])), isServer: true,
            "RFC 9000 §18.2: a zero-length connection ID in preferred_address is a TRANSPORT_PARAMETER_ERROR")
        assertParameterError(
            param(TP.ID.preferredAddress, preferredAddressValue(cid: [UInt8](repeating: 1, count: 21))),
            isServer: true, "RFC 9000 §18.2: a 21-byte connection ID in preferred_address is invalid")
    }

    func testClientSendingAServerOnlyParameterIsTransportParameterError() throws {
        let serverOnly: [(String, [UInt8])] = [
            ("original_destination_connection_id", param(TP.ID.originalDestinationConnectionID, [1, 2, 3, 4])),
            ("preferred_address", param(TP.ID.preferredAddress, preferredAddressValue(cid: [1, 2, 3, 4]))),
            ("retry_source_connection_id", param(TP.ID.retrySourceConnectionID, [5, 6])),
            ("stateless_reset_token", param(TP.ID.statelessResetToken, [UInt8](repeating: 3, count: 16))),
        ]
        for (name, bytes) in serverOnly {
            assertParameterError(
                bytes, isServer: false,
                "RFC 9000 §18.2: a server MUST treat a client's \(name) as a TRANSPORT_PARAMETER_ERROR")
            XCTAssertNoThrow(try TP.decode(bytes, isServer: true), "a server may send \(name)")
        }
    }

    // MARK: - RFC 9000 §7.3 connection ID authentication

    func testMissingInitialSourceConnectionIDIsTransportParameterError() {
        XCTAssertThrowsError(try TP().validateConnectionIDs(sentByServer: false, expectedInitialSource: ConnectionID([1]))) {
            XCTAssertEqual(
                ($0 as? TransportError)?.code, .transportParameterError,
                "RFC 9000 §7.3: absence of initial_source_connection_id is a TRANSPORT_PARAMETER_ERROR")
        }
    }

    func testServerParametersAreAuthenticatedAgainstTheInitialPackets() throws {
        let odcid = ConnectionID([1, 2, 3, 4, 5, 6, 7, 8])
        let scid = ConnectionID([9, 9, 9, 9])
        var p = TP(originalDestinationConnectionID: odcid, initialSourceConnectionID: scid)
        XCTAssertNoThrow(
            try p.validateConnectionIDs(
                sentByServer: true, expectedInitialSource: scid,
                expectedOriginalDestination: odcid))
        XCTAssertThrowsError(
            try p.validateConnectionIDs(
                sentByServer: true, expectedInitialSource: ConnectionID([1]),
                expectedOriginalDestination: odcid),
            "RFC 9000 §7.3: an initial_source_connection_id mismatch is an error")
        XCTAssertThrowsError(
            try p.validateConnectionIDs(
                sentByServer: true, expectedInitialSource: scid,
                expectedOriginalDestination: odcid, expectedRetrySource: ConnectionID([5])),
            "RFC 9000 §7.3: absence of retry_source_connection_id after a Retry is an error")
        p.retrySourceConnectionID = ConnectionID([5])
        XCTAssertThrowsError(
            try p.validateConnectionIDs(
                sentByServer: true, expectedInitialSource: scid,
                expectedOriginalDestination: odcid),
            "RFC 9000 §7.3: retry_source_connection_id without a Retry is an error")
        XCTAssertNoThrow(
            try p.validateConnectionIDs(
                sentByServer: true, expectedInitialSource: scid,
                expectedOriginalDestination: odcid, expectedRetrySource: ConnectionID([5])))
        var zeroLength = TP(
            originalDestinationConnectionID: odcid, initialSourceConnectionID: .empty,
            preferredAddressForTest: ConnectionID([1, 2, 3, 4]))
        XCTAssertThrowsError(try zeroLength.validateConnectionIDs(sentByServer: true, expectedInitialSource: .empty)) {
            XCTAssertEqual(
                ($0 as? TransportError)?.code, .transportParameterError,
                "RFC 9000 §18.2: a server using a zero-length connection ID MUST NOT send preferred_address")
        }
        zeroLength.preferredAddress = nil
        XCTAssertNoThrow(try zeroLength.validateConnectionIDs(sentByServer: true, expectedInitialSource: .empty))
        p.originalDestinationConnectionID = nil
        XCTAssertThrowsError(try p.validateConnectionIDs(sentByServer: true, expectedInitialSource: scid)) {
            XCTAssertEqual(
                ($0 as? TransportError)?.code, .transportParameterError,
                "RFC 9000 §7.3: a server omitting original_destination_connection_id is a TRANSPORT_PARAMETER_ERROR")
        }
    }
}

extension TransportParameters {
    fileprivate init(
        originalDestinationConnectionID: ConnectionID, initialSourceConnectionID: ConnectionID,
        preferredAddressForTest cid: ConnectionID
    ) {
        self.init(
            originalDestinationConnectionID: originalDestinationConnectionID,
            preferredAddress: PreferredAddress(
                connectionID: cid, statelessResetToken: StatelessResetToken([UInt8](repeating: 1, count: 16))),
            initialSourceConnectionID: initialSourceConnectionID)
    }
}
