// RFC 9000 §18: QUIC transport parameters, carried in the TLS quic_transport_parameters extension.
// Also RFC 9221 §3 (max_datagram_frame_size) and draft-ietf-quic-multipath §2.1 (initial_max_path_id).
//
// Encoding is `Transport Parameter { ID (i), Length (i), Value (..) }` repeated (§18). Parameters
// equal to their RFC default are omitted when encoding, so decode(encode(p)) == p.
// Unknown parameters (including GREASE ids 31*N+27) are ignored, as §7.4.2 and §18.1 require.
//
// Pure Swift standard library: this file is also compiled standalone by scripts/fuzz.sh.

/// RFC 9000 §18.2 preferred_address.
public struct PreferredAddress: Equatable, Sendable {
    /// 4 bytes, network order; all zero with port 0 when the server offers no IPv4 address.
    public var ipv4Address: [UInt8]
    public var ipv4Port: UInt16
    /// 16 bytes, network order; all zero with port 0 when the server offers no IPv6 address.
    public var ipv6Address: [UInt8]
    public var ipv6Port: UInt16
    /// Non-empty (RFC 9000 §18.2).
    public var connectionID: ConnectionID
    public var statelessResetToken: StatelessResetToken

    public init(
        ipv4Address: [UInt8] = [0, 0, 0, 0], ipv4Port: UInt16 = 0,
        ipv6Address: [UInt8] = [UInt8](repeating: 0, count: 16), ipv6Port: UInt16 = 0,
        connectionID: ConnectionID, statelessResetToken: StatelessResetToken
    ) {
        precondition(ipv4Address.count == 4, "IPv4 address must be 4 bytes")
        precondition(ipv6Address.count == 16, "IPv6 address must be 16 bytes")
        self.ipv4Address = ipv4Address
        self.ipv4Port = ipv4Port
        self.ipv6Address = ipv6Address
        self.ipv6Port = ipv6Port
        self.connectionID = connectionID
        self.statelessResetToken = statelessResetToken
    }

    /// Encoded size of the value: 4 + 2 + 16 + 2 + 1 + CID + 16.
    var encodedLength: Int { 41 + connectionID.length }
}

public struct TransportParameters: Equatable, Sendable {
    /// Transport parameter identifiers (RFC 9000 §18.2, RFC 9221 §3, draft-ietf-quic-multipath §2.1).
    public enum ID {
        public static let originalDestinationConnectionID: UInt64 = 0x00
        public static let maxIdleTimeout: UInt64 = 0x01
        public static let statelessResetToken: UInt64 = 0x02
        public static let maxUDPPayloadSize: UInt64 = 0x03
        public static let initialMaxData: UInt64 = 0x04
        public static let initialMaxStreamDataBidiLocal: UInt64 = 0x05
        public static let initialMaxStreamDataBidiRemote: UInt64 = 0x06
        public static let initialMaxStreamDataUni: UInt64 = 0x07
        public static let initialMaxStreamsBidi: UInt64 = 0x08
        public static let initialMaxStreamsUni: UInt64 = 0x09
        public static let ackDelayExponent: UInt64 = 0x0a
        public static let maxAckDelay: UInt64 = 0x0b
        public static let disableActiveMigration: UInt64 = 0x0c
        public static let preferredAddress: UInt64 = 0x0d
        public static let activeConnectionIDLimit: UInt64 = 0x0e
        public static let initialSourceConnectionID: UInt64 = 0x0f
        public static let retrySourceConnectionID: UInt64 = 0x10
        public static let maxDatagramFrameSize: UInt64 = 0x20
        public static let initialMaxPathID: UInt64 = 0x3e
        /// The GREASE id `encode(grease: true)` writes (31 * 0 + 27, RFC 9000 §18.1).
        public static let grease: UInt64 = 27

        /// RFC 9000 §18.1: ids of the form 31 * N + 27 are reserved to exercise the ignoring of
        /// unknown parameters.
        public static func isReserved(_ id: UInt64) -> Bool { id % 31 == 27 }
    }

    // RFC 9000 §18.2 defaults.
    public static let defaultMaxUDPPayloadSize: UInt64 = 65527
    public static let defaultAckDelayExponent: UInt64 = 3
    public static let defaultMaxAckDelay: UInt64 = 25
    public static let defaultActiveConnectionIDLimit: UInt64 = 2

    /// Server only. Required from servers (RFC 9000 §7.3); checked by `validateConnectionIDs`.
    public var originalDestinationConnectionID: ConnectionID?
    /// Milliseconds; 0 (the default) disables the idle timeout.
    public var maxIdleTimeout: UInt64
    /// Server only.
    public var statelessResetToken: StatelessResetToken?
    /// Default 65527; values below 1200 are invalid.
    public var maxUDPPayloadSize: UInt64
    public var initialMaxData: UInt64
    public var initialMaxStreamDataBidiLocal: UInt64
    public var initialMaxStreamDataBidiRemote: UInt64
    public var initialMaxStreamDataUni: UInt64
    /// At most 2^60.
    public var initialMaxStreamsBidi: UInt64
    /// At most 2^60.
    public var initialMaxStreamsUni: UInt64
    /// Default 3; at most 20.
    public var ackDelayExponent: UInt64
    /// Milliseconds; default 25; below 2^14.
    public var maxAckDelay: UInt64
    public var disableActiveMigration: Bool
    /// Server only.
    public var preferredAddress: PreferredAddress?
    /// Default 2; at least 2.
    public var activeConnectionIDLimit: UInt64
    /// Required from both endpoints (RFC 9000 §7.3).
    public var initialSourceConnectionID: ConnectionID?
    /// Server only; present exactly when the server sent a Retry (RFC 9000 §7.3).
    public var retrySourceConnectionID: ConnectionID?
    /// RFC 9221 §3: nil = DATAGRAM not supported. 0 is not sent by a supporting endpoint but is decoded as given.
    public var maxDatagramFrameSize: UInt64?
    /// draft-ietf-quic-multipath §2.1: nil = multipath not supported; at most 2^32-1.
    public var initialMaxPathID: UInt64?

    /// All parameters at their RFC 9000 §18.2 defaults (absent optionals).
    public init(
        originalDestinationConnectionID: ConnectionID? = nil,
        maxIdleTimeout: UInt64 = 0,
        statelessResetToken: StatelessResetToken? = nil,
        maxUDPPayloadSize: UInt64 = TransportParameters.defaultMaxUDPPayloadSize,
        initialMaxData: UInt64 = 0,
        initialMaxStreamDataBidiLocal: UInt64 = 0,
        initialMaxStreamDataBidiRemote: UInt64 = 0,
        initialMaxStreamDataUni: UInt64 = 0,
        initialMaxStreamsBidi: UInt64 = 0,
        initialMaxStreamsUni: UInt64 = 0,
        ackDelayExponent: UInt64 = TransportParameters.defaultAckDelayExponent,
        maxAckDelay: UInt64 = TransportParameters.defaultMaxAckDelay,
        disableActiveMigration: Bool = false,
        preferredAddress: PreferredAddress? = nil,
        activeConnectionIDLimit: UInt64 = TransportParameters.defaultActiveConnectionIDLimit,
        initialSourceConnectionID: ConnectionID? = nil,
        retrySourceConnectionID: ConnectionID? = nil,
        maxDatagramFrameSize: UInt64? = nil,
        initialMaxPathID: UInt64? = nil
    ) {
        self.originalDestinationConnectionID = originalDestinationConnectionID
        self.maxIdleTimeout = maxIdleTimeout
        self.statelessResetToken = statelessResetToken
        self.maxUDPPayloadSize = maxUDPPayloadSize
        self.initialMaxData = initialMaxData
        self.initialMaxStreamDataBidiLocal = initialMaxStreamDataBidiLocal
        self.initialMaxStreamDataBidiRemote = initialMaxStreamDataBidiRemote
        self.initialMaxStreamDataUni = initialMaxStreamDataUni
        self.initialMaxStreamsBidi = initialMaxStreamsBidi
        self.initialMaxStreamsUni = initialMaxStreamsUni
        self.ackDelayExponent = ackDelayExponent
        self.maxAckDelay = maxAckDelay
        self.disableActiveMigration = disableActiveMigration
        self.preferredAddress = preferredAddress
        self.activeConnectionIDLimit = activeConnectionIDLimit
        self.initialSourceConnectionID = initialSourceConnectionID
        self.retrySourceConnectionID = retrySourceConnectionID
        self.maxDatagramFrameSize = maxDatagramFrameSize
        self.initialMaxPathID = initialMaxPathID
    }

    /// The values an endpoint assumes for a peer that omitted every parameter (RFC 9000 §18.2).
    public static let defaults = TransportParameters()

    // MARK: - Encoding

    /// Serializes the parameters. Parameters at their default value are omitted. With
    /// `grease: true` a reserved parameter (id 27, RFC 9000 §18.1) is appended so the peer's
    /// tolerance of unknown parameters is exercised.
    public func encode(grease: Bool = false) -> [UInt8] {
        var w = ByteWriter(capacity: 128)
        func varintParam(_ id: UInt64, _ value: UInt64) {
            w.writeVarInt(id)
            w.writeVarInt(UInt64(VarInt.encodedLength(value)))
            w.writeVarInt(value)
        }
        func cidParam(_ id: UInt64, _ cid: ConnectionID) {
            w.writeVarInt(id)
            w.writeVarInt(UInt64(cid.length))
            cid.write(to: &w)
        }
        if let cid = originalDestinationConnectionID { cidParam(ID.originalDestinationConnectionID, cid) }
        if maxIdleTimeout != 0 { varintParam(ID.maxIdleTimeout, maxIdleTimeout) }
        if let token = statelessResetToken {
            w.writeVarInt(ID.statelessResetToken)
            w.writeVarInt(16)
            w.writeUInt(token.high, bytes: 8)
            w.writeUInt(token.low, bytes: 8)
        }
        if maxUDPPayloadSize != Self.defaultMaxUDPPayloadSize { varintParam(ID.maxUDPPayloadSize, maxUDPPayloadSize) }
        if initialMaxData != 0 { varintParam(ID.initialMaxData, initialMaxData) }
        if initialMaxStreamDataBidiLocal != 0 { varintParam(ID.initialMaxStreamDataBidiLocal, initialMaxStreamDataBidiLocal) }
        if initialMaxStreamDataBidiRemote != 0 { varintParam(ID.initialMaxStreamDataBidiRemote, initialMaxStreamDataBidiRemote) }
        if initialMaxStreamDataUni != 0 { varintParam(ID.initialMaxStreamDataUni, initialMaxStreamDataUni) }
        if initialMaxStreamsBidi != 0 { varintParam(ID.initialMaxStreamsBidi, initialMaxStreamsBidi) }
        if initialMaxStreamsUni != 0 { varintParam(ID.initialMaxStreamsUni, initialMaxStreamsUni) }
        if ackDelayExponent != Self.defaultAckDelayExponent { varintParam(ID.ackDelayExponent, ackDelayExponent) }
        if maxAckDelay != Self.defaultMaxAckDelay { varintParam(ID.maxAckDelay, maxAckDelay) }
        if disableActiveMigration {
            // RFC 9000 §18.2: "This parameter is a zero-length value."
            w.writeVarInt(ID.disableActiveMigration)
            w.writeVarInt(0)
        }
        if let pa = preferredAddress {
            w.writeVarInt(ID.preferredAddress)
            w.writeVarInt(UInt64(pa.encodedLength))
            w.writeBytes(pa.ipv4Address)
            w.writeUInt16(pa.ipv4Port)
            w.writeBytes(pa.ipv6Address)
            w.writeUInt16(pa.ipv6Port)
            w.writeUInt8(UInt8(pa.connectionID.length))
            pa.connectionID.write(to: &w)
            w.writeUInt(pa.statelessResetToken.high, bytes: 8)
            w.writeUInt(pa.statelessResetToken.low, bytes: 8)
        }
        if activeConnectionIDLimit != Self.defaultActiveConnectionIDLimit {
            varintParam(ID.activeConnectionIDLimit, activeConnectionIDLimit)
        }
        if let cid = initialSourceConnectionID { cidParam(ID.initialSourceConnectionID, cid) }
        if let cid = retrySourceConnectionID { cidParam(ID.retrySourceConnectionID, cid) }
        if let size = maxDatagramFrameSize { varintParam(ID.maxDatagramFrameSize, size) }
        if let maxPath = initialMaxPathID { varintParam(ID.initialMaxPathID, maxPath) }
        if grease {
            // RFC 9000 §18.1: a reserved id with an arbitrary value; deterministic here.
            w.writeVarInt(ID.grease)
            w.writeVarInt(4)
            w.writeBytes([0x47, 0x52, 0x53, 0x45])
        }
        return w.bytes
    }

    // MARK: - Decoding

    /// Parses the peer's transport parameters.
    /// - Parameter sender: true when the peer that sent them is the server (we are the client).
    /// - Throws: `TransportError(.transportParameterError)` for any malformed, duplicate,
    ///   out-of-range or role-forbidden parameter.
    public static func decode(_ bytes: [UInt8], isServer sender: Bool) throws -> TransportParameters {
        var p = TransportParameters()
        var r = ByteReader(bytes)
        var seen = Set<UInt64>()

        func fail(_ reason: String) -> TransportError {
            TransportError(.transportParameterError, frameType: 0, reason)
        }

        while !r.isAtEnd {
            let id: UInt64
            let value: ArraySlice<UInt8>
            do {
                id = try r.readVarInt()
                value = try r.readBytes(try r.readLength())
            } catch {
                throw fail("transport parameters truncated")
            }
            // RFC 9000 §7.4: "An endpoint MUST NOT send a parameter more than once in a given
            // transport parameters extension. An endpoint SHOULD treat receipt of duplicate transport
            // parameters as a connection error of type TRANSPORT_PARAMETER_ERROR." (Any id, known or not.)
            guard seen.insert(id).inserted else {
                throw fail("duplicate transport parameter 0x\(String(id, radix: 16))")
            }
            var v = ByteReader(value)

            /// The value must be exactly one varint (RFC 9000 §18: the Length covers the value).
            func varintValue() throws -> UInt64 {
                guard let x = try? v.readVarInt(), v.isAtEnd else {
                    throw fail("parameter 0x\(String(id, radix: 16)): length does not match a varint value")
                }
                return x
            }
            func cidValue() throws -> ConnectionID {
                // RFC 9000 §18.2 / §17.2: a connection ID is at most 20 bytes.
                guard value.count <= ConnectionID.maxLength else {
                    throw fail("parameter 0x\(String(id, radix: 16)): connection ID longer than 20 bytes")
                }
                return ConnectionID(value)
            }
            func serverOnly() throws {
                // RFC 9000 §18.2: "A client MUST NOT include any server-only transport parameter:
                // original_destination_connection_id, preferred_address, retry_source_connection_id, or
                // stateless_reset_token. A server MUST treat receipt of any of these transport
                // parameters as a connection error of type TRANSPORT_PARAMETER_ERROR."
                guard sender else { throw fail("client sent server-only parameter 0x\(String(id, radix: 16))") }
            }

            switch id {
            case ID.originalDestinationConnectionID:
                try serverOnly()
                p.originalDestinationConnectionID = try cidValue()

            case ID.maxIdleTimeout:
                p.maxIdleTimeout = try varintValue()

            case ID.statelessResetToken:
                try serverOnly()
                // RFC 9000 §18.2: "This parameter is a sequence of 16 bytes."
                guard value.count == 16 else { throw fail("stateless_reset_token must be 16 bytes") }
                p.statelessResetToken = StatelessResetToken(value)

            case ID.maxUDPPayloadSize:
                let x = try varintValue()
                // RFC 9000 §18.2: "The default for this parameter is the maximum permitted UDP payload
                // of 65527. Values below 1200 are invalid."
                guard x >= 1200 else { throw fail("max_udp_payload_size below 1200") }
                p.maxUDPPayloadSize = x

            case ID.initialMaxData: p.initialMaxData = try varintValue()
            case ID.initialMaxStreamDataBidiLocal: p.initialMaxStreamDataBidiLocal = try varintValue()
            case ID.initialMaxStreamDataBidiRemote: p.initialMaxStreamDataBidiRemote = try varintValue()
            case ID.initialMaxStreamDataUni: p.initialMaxStreamDataUni = try varintValue()

            case ID.initialMaxStreamsBidi, ID.initialMaxStreamsUni:
                let x = try varintValue()
                // RFC 9000 §4.6: "If a max_streams transport parameter ... is received with a value
                // greater than 2^60, ... the connection MUST be closed immediately with a connection
                // error of type TRANSPORT_PARAMETER_ERROR" (also §18.2: "cannot exceed 2^60").
                guard x <= (1 << 60) else { throw fail("initial_max_streams exceeds 2^60") }
                if id == ID.initialMaxStreamsBidi { p.initialMaxStreamsBidi = x } else { p.initialMaxStreamsUni = x }

            case ID.ackDelayExponent:
                let x = try varintValue()
                // RFC 9000 §18.2: "Values above 20 are invalid."
                guard x <= 20 else { throw fail("ack_delay_exponent above 20") }
                p.ackDelayExponent = x

            case ID.maxAckDelay:
                let x = try varintValue()
                // RFC 9000 §18.2: "Values of 2^14 or greater are invalid."
                guard x < (1 << 14) else { throw fail("max_ack_delay of 2^14 or greater") }
                p.maxAckDelay = x

            case ID.disableActiveMigration:
                // RFC 9000 §18.2: "This parameter is a zero-length value."
                guard value.isEmpty else { throw fail("disable_active_migration must be zero-length") }
                p.disableActiveMigration = true

            case ID.preferredAddress:
                try serverOnly()
                p.preferredAddress = try decodePreferredAddress(value, fail: fail)

            case ID.activeConnectionIDLimit:
                let x = try varintValue()
                // RFC 9000 §18.2: "The value of the active_connection_id_limit parameter MUST be at
                // least 2. An endpoint that receives a value less than 2 MUST close the connection
                // with an error of type TRANSPORT_PARAMETER_ERROR."
                guard x >= 2 else { throw fail("active_connection_id_limit below 2") }
                p.activeConnectionIDLimit = x

            case ID.initialSourceConnectionID:
                p.initialSourceConnectionID = try cidValue()

            case ID.retrySourceConnectionID:
                try serverOnly()
                p.retrySourceConnectionID = try cidValue()

            case ID.maxDatagramFrameSize:
                // RFC 9221 §3: a varint; its presence signals DATAGRAM support.
                p.maxDatagramFrameSize = try varintValue()

            case ID.initialMaxPathID:
                let x = try varintValue()
                // draft-ietf-quic-multipath §2.1: "If an initial_max_path_id transport parameter value
                // higher than 2^32-1 is received, the receiver MUST close the connection with an error
                // of type TRANSPORT_PARAMETER_ERROR."
                guard x <= 0xffff_ffff else { throw fail("initial_max_path_id exceeds 2^32-1") }
                p.initialMaxPathID = x

            default:
                // RFC 9000 §7.4.2: "An endpoint MUST ignore transport parameters that it does not
                // support." This includes the reserved GREASE ids 31 * N + 27 (§18.1).
                break
            }
        }
        return p
    }

    private static func decodePreferredAddress(
        _ value: ArraySlice<UInt8>,
        fail: (String) -> TransportError
    ) throws -> PreferredAddress {
        var v = ByteReader(value)
        do {
            let ipv4 = Array(try v.readBytes(4))
            let port4 = try v.readUInt16()
            let ipv6 = Array(try v.readBytes(16))
            let port6 = try v.readUInt16()
            let cidLength = Int(try v.readUInt8())
            // RFC 9000 §18.2: "a server MUST NOT include a zero-length connection ID in this transport
            // parameter. A client MUST treat a violation of these requirements as a connection error
            // of type TRANSPORT_PARAMETER_ERROR." A connection ID is at most 20 bytes (§17.2).
            guard cidLength >= 1 && cidLength <= ConnectionID.maxLength else {
                throw fail("preferred_address connection ID length \(cidLength) outside 1...20")
            }
            let cid = ConnectionID(try v.readBytes(cidLength))
            let token = StatelessResetToken(try v.readBytes(16))
            // The parameter's Length must cover exactly these fields.
            guard v.isAtEnd else { throw fail("preferred_address has trailing bytes") }
            return PreferredAddress(
                ipv4Address: ipv4, ipv4Port: port4, ipv6Address: ipv6, ipv6Port: port6,
                connectionID: cid, statelessResetToken: token)
        } catch let e as TransportError {
            throw e
        } catch {
            throw fail("preferred_address truncated")
        }
    }

    // MARK: - Handshake authentication (RFC 9000 §7.3)

    /// RFC 9000 §7.3 checks on the peer's connection ID parameters, to run once the peer's
    /// parameters are decoded. `expectedInitialSource` is the Source Connection ID of the peer's
    /// first Initial packet. For a server's parameters (checked by the client): `expectedOriginalDestination`
    /// is the Destination Connection ID of the client's first Initial, and `expectedRetrySource` the
    /// Source Connection ID of the Retry packet received, or nil if none.
    /// - Throws: TRANSPORT_PARAMETER_ERROR for an absent parameter (or a preferred_address from a
    ///   server using a zero-length connection ID), PROTOCOL_VIOLATION for a mismatch.
    public func validateConnectionIDs(
        sentByServer: Bool, expectedInitialSource: ConnectionID,
        expectedOriginalDestination: ConnectionID? = nil,
        expectedRetrySource: ConnectionID? = nil
    ) throws {
        // RFC 9000 §7.3: "An endpoint MUST treat the absence of the initial_source_connection_id
        // transport parameter from either endpoint or the absence of the
        // original_destination_connection_id transport parameter from the server as a connection
        // error of type TRANSPORT_PARAMETER_ERROR."
        guard let initialSource = initialSourceConnectionID else {
            throw TransportError(.transportParameterError, frameType: 0, "initial_source_connection_id absent")
        }
        // RFC 9000 §7.3: "An endpoint MUST treat the following as a connection error of type
        // TRANSPORT_PARAMETER_ERROR or PROTOCOL_VIOLATION: absence of the retry_source_connection_id
        // transport parameter from the server after receiving a Retry packet, presence of the
        // retry_source_connection_id transport parameter when no Retry packet was received, or a
        // mismatch between values received from a peer in these transport parameters and the value
        // sent in the corresponding Destination or Source Connection ID fields of Initial packets."
        guard initialSource == expectedInitialSource else {
            throw TransportError(.protocolViolation, frameType: 0, "initial_source_connection_id mismatch")
        }
        guard sentByServer else { return }
        // RFC 9000 §18.2: "A server that chooses a zero-length connection ID MUST NOT provide a
        // preferred address. ... A client MUST treat a violation of these requirements as a
        // connection error of type TRANSPORT_PARAMETER_ERROR."
        if preferredAddress != nil && initialSource.isEmpty {
            throw TransportError(.transportParameterError, frameType: 0, "preferred_address with a zero-length server connection ID")
        }
        guard let originalDestination = originalDestinationConnectionID else {
            throw TransportError(.transportParameterError, frameType: 0, "original_destination_connection_id absent")
        }
        if let expected = expectedOriginalDestination, originalDestination != expected {
            throw TransportError(.protocolViolation, frameType: 0, "original_destination_connection_id mismatch")
        }
        switch (retrySourceConnectionID, expectedRetrySource) {
        case (nil, nil): break
        case (nil, .some):
            throw TransportError(.transportParameterError, frameType: 0, "retry_source_connection_id absent after Retry")
        case (.some, nil):
            throw TransportError(.transportParameterError, frameType: 0, "retry_source_connection_id present without Retry")
        case (.some(let got), .some(let expected)):
            guard got == expected else {
                throw TransportError(.protocolViolation, frameType: 0, "retry_source_connection_id mismatch")
            }
        }
    }
}
