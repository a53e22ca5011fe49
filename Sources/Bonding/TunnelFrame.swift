// The tunnel frame: the 8-byte header every inner IP packet carries inside its QUIC DATAGRAM.
// Sender: TUN read (packet lands after 8 bytes of headroom) → `TunnelSequencer` stamps a header
// here in place → scheduler → DATAGRAM. Receiver: DATAGRAM → `TunnelFrameDecoder` → ReorderBuffer.
//
// Wire format (version 1), network byte order:
//
//    0                   1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |Ver|R|X|       Lane (12)       |    Tunnel Sequence (32) ...   |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |   ... Tunnel Sequence         |       Lane Sequence (16)      |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |                    Inner IPv4/IPv6 packet ...                 |
//
// - Ver (2 bits) = 1. Any other version is malformed (a future format takes a new version).
// - R: this copy was reinjected after its first path failed (statistics only; the receiver's
//   duplicate window drops whichever copy comes second).
// - X: reserved, sent as 0, ignored on receipt.
// - Lane (12 bits): the inner flow's ordering lane, a hash of its 5-tuple (`FlowKey`) into
//   1...4095; 0 is the fallback lane for packets whose flow cannot be parsed. The receiver orders
//   packets only within a lane, so a gap in one flow never holds back another. The lane is sent
//   (rather than re-derived by the receiver from the inner header) so both ends agree even on
//   fragments and future hash changes; the flow's addresses and ports are never sent again.
// - Tunnel Sequence (32 bits): one counter for the whole tunnel direction, used for duplicate
//   detection and for the order of packets within a lane. 32 bits, not 40: the receiver only
//   compares numbers inside its reorder horizon (≤ 1 s of traffic) and its duplicate window
//   (2^17 packets), both far below the 2^31 that serial-number arithmetic allows, and the byte
//   saved pays for the 12-bit lane. At 8 Mpps the counter wraps every 9 minutes, harmlessly.
// - Lane Sequence (16 bits): a counter per lane. A packet whose lane sequence is the successor of
//   the lane's last delivered one is in order and leaves the reorder buffer at once; any other
//   value tells the receiver that a packet of *this* flow is missing, which is exactly what a
//   global number alone cannot tell it.

/// The fields of a tunnel frame header.
public struct TunnelHeader: Hashable, Sendable, CustomStringConvertible {
    public var sequence: TunnelSequence
    /// Ordering lane, `0 ..< TunnelFrame.laneCount` (0: flow not parseable).
    public var lane: UInt16
    /// Per-lane counter, successor of the previous packet of the same lane.
    public var laneSequence: UInt16
    /// Set on copies re-sent after their first path failed.
    public var isReinjected: Bool

    public init(sequence: TunnelSequence, lane: UInt16, laneSequence: UInt16, isReinjected: Bool = false) {
        precondition(Int(lane) < TunnelFrame.laneCount, "a lane has 12 bits")
        self.sequence = sequence
        self.lane = lane
        self.laneSequence = laneSequence
        self.isReinjected = isReinjected
    }

    public var description: String {
        "\(sequence) lane \(lane)/\(laneSequence)\(isReinjected ? " R" : "")"
    }
}

/// Why a datagram is not a tunnel frame.
public enum TunnelFrameError: Error, Hashable, Sendable {
    /// Fewer than `TunnelFrame.headerLength` bytes.
    case tooShort
    /// Version field other than `TunnelFrame.version`.
    case unsupportedVersion
    /// A header with no inner packet behind it.
    case emptyPayload
}

/// A decoded frame: its header, and where the inner packet lies in the datagram.
public struct DecodedTunnelFrame: Hashable, Sendable {
    public var header: TunnelHeader
    /// Byte range of the inner IP packet within the datagram that was decoded.
    public var payload: Range<Int>

    public init(header: TunnelHeader, payload: Range<Int>) {
        self.header = header
        self.payload = payload
    }
}

/// The tunnel frame codec. Encoding writes into a caller's buffer in place; nothing allocates.
public enum TunnelFrame {
    public static let headerLength = 8
    public static let version: UInt8 = 1
    /// Number of ordering lanes (12 bits).
    public static let laneCount = 4096

    static let versionShift: UInt8 = 6
    static let reinjectedBit: UInt8 = 0x20

    /// Writes `header` into `buffer[offset ..< offset + headerLength]`.
    /// - Returns: false (writing nothing) when the header does not fit there.
    @discardableResult
    public static func write(_ header: TunnelHeader, to buffer: UnsafeMutableRawBufferPointer, at offset: Int) -> Bool {
        guard offset >= 0, buffer.count - offset >= headerLength else { return false }
        let lane = header.lane & 0x0fff
        var first = (version << versionShift) | UInt8(truncatingIfNeeded: lane >> 8)
        if header.isReinjected { first |= reinjectedBit }
        let seq = header.sequence.rawValue
        buffer[offset] = first
        buffer[offset + 1] = UInt8(truncatingIfNeeded: lane)
        buffer[offset + 2] = UInt8(truncatingIfNeeded: seq >> 24)
        buffer[offset + 3] = UInt8(truncatingIfNeeded: seq >> 16)
        buffer[offset + 4] = UInt8(truncatingIfNeeded: seq >> 8)
        buffer[offset + 5] = UInt8(truncatingIfNeeded: seq)
        buffer[offset + 6] = UInt8(truncatingIfNeeded: header.laneSequence >> 8)
        buffer[offset + 7] = UInt8(truncatingIfNeeded: header.laneSequence)
        return true
    }

    /// Frames an inner packet in place: the packet already sits at
    /// `buffer[payloadOffset ..< payloadOffset + payloadLength]` (read there from the TUN with
    /// headroom), and the header is written into the `headerLength` bytes just before it.
    /// - Returns: the frame's byte range (header + packet), or nil when there is no headroom or
    ///   the packet does not lie inside the buffer.
    public static func prepend(
        _ header: TunnelHeader, to buffer: UnsafeMutableRawBufferPointer, payloadOffset: Int, payloadLength: Int
    ) -> Range<Int>? {
        guard payloadOffset >= headerLength, payloadLength > 0,
            payloadLength <= buffer.count - payloadOffset
        else { return nil }
        let start = payloadOffset - headerLength
        guard write(header, to: buffer, at: start) else { return nil }
        return start..<payloadOffset + payloadLength
    }

    /// Sets the R bit of a frame already written at `offset` (before re-sending it on another
    /// path); the rest of the frame is left as it was. Returns false if no frame fits there.
    @discardableResult
    public static func markReinjected(_ buffer: UnsafeMutableRawBufferPointer, at offset: Int) -> Bool {
        guard offset >= 0, buffer.count - offset >= headerLength else { return false }
        buffer[offset] |= reinjectedBit
        return true
    }

    /// Decodes a datagram's header. Never traps, whatever the bytes.
    public static func decode(_ datagram: UnsafeRawBufferPointer) -> Result<DecodedTunnelFrame, TunnelFrameError> {
        guard datagram.count >= headerLength else { return .failure(.tooShort) }
        let first = datagram[0]
        guard first >> versionShift == version else { return .failure(.unsupportedVersion) }
        guard datagram.count > headerLength else { return .failure(.emptyPayload) }
        let lane = UInt16(first & 0x0f) << 8 | UInt16(datagram[1])
        let seq = UInt32(datagram[2]) << 24 | UInt32(datagram[3]) << 16 | UInt32(datagram[4]) << 8 | UInt32(datagram[5])
        let laneSeq = UInt16(datagram[6]) << 8 | UInt16(datagram[7])
        let header = TunnelHeader(
            sequence: TunnelSequence(seq), lane: lane, laneSequence: laneSeq,
            isReinjected: first & reinjectedBit != 0)
        return .success(DecodedTunnelFrame(header: header, payload: headerLength..<datagram.count))
    }
}

/// Receiver-side decoding with counters of what was refused (for metrics).
public struct TunnelFrameDecoder: Sendable {
    public private(set) var decoded: UInt64 = 0
    public private(set) var tooShort: UInt64 = 0
    public private(set) var unsupportedVersion: UInt64 = 0
    public private(set) var emptyPayload: UInt64 = 0
    /// All datagrams refused as malformed.
    public var malformed: UInt64 { tooShort + unsupportedVersion + emptyPayload }

    public init() {}

    /// Decodes one datagram, counting it.
    /// - Returns: the frame, or nil (counted by reason) when the bytes are not a tunnel frame.
    public mutating func decode(_ datagram: UnsafeRawBufferPointer) -> DecodedTunnelFrame? {
        switch TunnelFrame.decode(datagram) {
        case .success(let frame):
            decoded += 1
            return frame
        case .failure(.tooShort): tooShort += 1
        case .failure(.unsupportedVersion): unsupportedVersion += 1
        case .failure(.emptyPayload): emptyPayload += 1
        }
        return nil
    }
}
