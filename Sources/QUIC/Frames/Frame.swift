// RFC 9000 §19 frame types, RFC 9221 DATAGRAM, and the frames of draft-ietf-quic-multipath
// (-20 codepoints). A parsed frame's payload slices share the decrypted packet's storage.

public struct FrameType {
    public static let padding: UInt64 = 0x00
    public static let ping: UInt64 = 0x01
    public static let ack: UInt64 = 0x02
    public static let ackECN: UInt64 = 0x03
    public static let resetStream: UInt64 = 0x04
    public static let stopSending: UInt64 = 0x05
    public static let crypto: UInt64 = 0x06
    public static let newToken: UInt64 = 0x07
    public static let streamBase: UInt64 = 0x08  // 0x08-0x0f: OFF=0x04, LEN=0x02, FIN=0x01
    public static let maxData: UInt64 = 0x10
    public static let maxStreamData: UInt64 = 0x11
    public static let maxStreamsBidi: UInt64 = 0x12
    public static let maxStreamsUni: UInt64 = 0x13
    public static let dataBlocked: UInt64 = 0x14
    public static let streamDataBlocked: UInt64 = 0x15
    public static let streamsBlockedBidi: UInt64 = 0x16
    public static let streamsBlockedUni: UInt64 = 0x17
    public static let newConnectionID: UInt64 = 0x18
    public static let retireConnectionID: UInt64 = 0x19
    public static let pathChallenge: UInt64 = 0x1a
    public static let pathResponse: UInt64 = 0x1b
    public static let connectionCloseTransport: UInt64 = 0x1c
    public static let connectionCloseApplication: UInt64 = 0x1d
    public static let handshakeDone: UInt64 = 0x1e
    public static let datagram: UInt64 = 0x30  // RFC 9221: no length field
    public static let datagramWithLength: UInt64 = 0x31
    // draft-ietf-quic-multipath (codepoints of -20, kept by -21)
    public static let pathAck: UInt64 = 0x3e
    public static let pathAckECN: UInt64 = 0x3f
    public static let pathAbandon: UInt64 = 0x3e75
    public static let pathStatusBackup: UInt64 = 0x3e76
    public static let pathStatusAvailable: UInt64 = 0x3e77
    public static let pathNewConnectionID: UInt64 = 0x3e78
    public static let pathRetireConnectionID: UInt64 = 0x3e79
    public static let maxPathID: UInt64 = 0x3e7a
    public static let pathsBlocked: UInt64 = 0x3e7b
    public static let pathCIDsBlocked: UInt64 = 0x3e7c
}

/// RFC 9000 §19.3.2: ECN counts carried by ACK (0x03).
public struct ECNCounts: Equatable, Sendable {
    public var ect0: UInt64
    public var ect1: UInt64
    public var ce: UInt64
    public init(ect0: UInt64 = 0, ect1: UInt64 = 0, ce: UInt64 = 0) {
        self.ect0 = ect0
        self.ect1 = ect1
        self.ce = ce
    }
}

/// RFC 9000 §19.3: acknowledged packet-number ranges, highest first, disjoint, non-adjacent.
public struct AckFrame: Equatable, Sendable {
    /// Ranges in descending order; `ranges[0].upperBound` is the Largest Acknowledged.
    public var ranges: AckRanges
    /// The ACK Delay field as sent (already scaled down by the sender's ack_delay_exponent).
    public var ackDelay: UInt64
    public var ecn: ECNCounts?

    public init(ranges: AckRanges, ackDelay: UInt64, ecn: ECNCounts? = nil) {
        self.ranges = ranges
        self.ackDelay = ackDelay
        self.ecn = ecn
    }

    public init(ranges: [ClosedRange<UInt64>], ackDelay: UInt64, ecn: ECNCounts? = nil) {
        self.init(ranges: AckRanges(ranges), ackDelay: ackDelay, ecn: ecn)
    }

    public var largestAcknowledged: UInt64 { ranges[0].upperBound }
}

public struct StreamFrame: Equatable, Sendable {
    public var streamID: UInt64
    public var offset: UInt64
    public var data: ArraySlice<UInt8>
    public var fin: Bool
    public init(streamID: UInt64, offset: UInt64, data: ArraySlice<UInt8>, fin: Bool) {
        self.streamID = streamID
        self.offset = offset
        self.data = data
        self.fin = fin
    }
}

public struct NewConnectionIDFrame: Equatable, Sendable {
    public var sequenceNumber: UInt64
    public var retirePriorTo: UInt64
    public var connectionID: ConnectionID
    public var statelessResetToken: StatelessResetToken
    public init(sequenceNumber: UInt64, retirePriorTo: UInt64, connectionID: ConnectionID, statelessResetToken: StatelessResetToken) {
        self.sequenceNumber = sequenceNumber
        self.retirePriorTo = retirePriorTo
        self.connectionID = connectionID
        self.statelessResetToken = statelessResetToken
    }
}

/// RFC 9000 §19.19: 0x1c (transport, carries the offending frame type) or 0x1d (application).
public struct ConnectionCloseFrame: Equatable, Sendable {
    public var isApplication: Bool
    public var errorCode: UInt64
    /// Only for transport closes (0x1c).
    public var frameType: UInt64
    public var reason: ArraySlice<UInt8>
    public init(isApplication: Bool, errorCode: UInt64, frameType: UInt64 = 0, reason: ArraySlice<UInt8> = []) {
        self.isApplication = isApplication
        self.errorCode = errorCode
        self.frameType = frameType
        self.reason = reason
    }
}

public enum Frame: Equatable, Sendable {
    /// A run of consecutive PADDING bytes, counted as one frame.
    case padding(count: Int)
    case ping
    case ack(AckFrame)
    case resetStream(streamID: UInt64, errorCode: UInt64, finalSize: UInt64)
    case stopSending(streamID: UInt64, errorCode: UInt64)
    case crypto(offset: UInt64, data: ArraySlice<UInt8>)
    case newToken(token: ArraySlice<UInt8>)
    case stream(StreamFrame)
    case maxData(UInt64)
    case maxStreamData(streamID: UInt64, maximum: UInt64)
    case maxStreams(bidirectional: Bool, maximum: UInt64)
    case dataBlocked(limit: UInt64)
    case streamDataBlocked(streamID: UInt64, limit: UInt64)
    case streamsBlocked(bidirectional: Bool, limit: UInt64)
    case newConnectionID(NewConnectionIDFrame)
    case retireConnectionID(sequenceNumber: UInt64)
    case pathChallenge(data: UInt64)
    case pathResponse(data: UInt64)
    case connectionClose(ConnectionCloseFrame)
    case handshakeDone
    /// RFC 9221; `hasLength` selects type 0x31 (length-prefixed) over 0x30 (runs to packet end).
    case datagram(data: ArraySlice<UInt8>, hasLength: Bool)
    // draft-ietf-quic-multipath
    case pathAck(pathID: UInt64, AckFrame)
    case pathAbandon(pathID: UInt64, errorCode: UInt64)
    case pathStatusBackup(pathID: UInt64, sequenceNumber: UInt64)
    case pathStatusAvailable(pathID: UInt64, sequenceNumber: UInt64)
    case pathNewConnectionID(pathID: UInt64, NewConnectionIDFrame)
    case pathRetireConnectionID(pathID: UInt64, sequenceNumber: UInt64)
    case maxPathID(UInt64)
    case pathsBlocked(maximumPathID: UInt64)
    case pathCIDsBlocked(pathID: UInt64, nextSequenceNumber: UInt64)
}
