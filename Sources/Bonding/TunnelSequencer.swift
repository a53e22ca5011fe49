// Sender side, first stage after the TUN read: numbers each inner packet (one tunnel sequence
// for the direction, one counter per lane) and writes its `TunnelFrame` header into the headroom
// in front of it. Next stage: the path scheduler.

/// Assigns tunnel and lane sequence numbers and frames packets in place. Fixed storage (one
/// 16-bit counter per lane), no allocation per packet.
public struct TunnelSequencer: Sendable {
    /// Sequence number the next packet gets.
    public private(set) var nextSequence: TunnelSequence
    /// Per-connection lane hash seed (see `FlowKey.lane(seed:)`).
    public let flowHashSeed: UInt64
    private var laneCounters: [UInt16]

    /// - Parameters:
    ///   - firstSequence: the first tunnel sequence number (any value; the receiver anchors on
    ///     what it sees).
    ///   - flowHashSeed: injected randomness for the lane hash; keep it for the connection's life.
    public init(firstSequence: TunnelSequence = TunnelSequence(0), flowHashSeed: UInt64 = 0) {
        nextSequence = firstSequence
        self.flowHashSeed = flowHashSeed
        laneCounters = [UInt16](repeating: 0, count: TunnelFrame.laneCount)
    }

    /// Numbers the next packet of `lane`.
    public mutating func nextHeader(lane: UInt16) -> TunnelHeader {
        let lane = Int(lane) < TunnelFrame.laneCount ? lane : FlowKey.fallbackLane
        let header = TunnelHeader(sequence: nextSequence, lane: lane, laneSequence: laneCounters[Int(lane)])
        laneCounters[Int(lane)] &+= 1
        nextSequence = nextSequence.next
        return header
    }

    /// Frames the inner packet at `buffer[payloadOffset ..< payloadOffset + payloadLength]`:
    /// finds its lane from its IP header, numbers it, writes the header just before it.
    /// - Returns: the header and the frame's byte range, or nil (nothing numbered) when there is
    ///   less than `TunnelFrame.headerLength` of headroom or the packet lies outside the buffer.
    public mutating func frame(
        _ buffer: UnsafeMutableRawBufferPointer, payloadOffset: Int, payloadLength: Int
    ) -> (header: TunnelHeader, frame: Range<Int>)? {
        guard payloadOffset >= TunnelFrame.headerLength, payloadLength > 0,
            payloadLength <= buffer.count - payloadOffset
        else { return nil }
        let packet = UnsafeRawBufferPointer(rebasing: buffer[payloadOffset..<payloadOffset + payloadLength])
        let header = nextHeader(lane: FlowKey.lane(of: packet, seed: flowHashSeed))
        guard let range = TunnelFrame.prepend(header, to: buffer, payloadOffset: payloadOffset, payloadLength: payloadLength)
        else { return nil }
        return (header, range)
    }
}
