// RFC 9000 §12.3 / RFC 9002 Appendix A: one packet number space's state: the next packet number,
// packets in flight, and what was received (for ACK frames).
import Congestion

final class PacketNumberSpace {
    let id: PacketNumberSpaceID

    // MARK: Sending
    var nextPacketNumber: UInt64 = 0
    var largestAcked: UInt64?
    /// Packets sent and not yet acknowledged or declared lost: a ring of `sentCount` slots from
    /// `sentHead`, slot i holding packet number `sentBase + i` (nil once acknowledged or lost, or
    /// for a skipped number). A ring, so that dropping acknowledged packets from the front moves
    /// nothing (an array's removeFirst moved every packet still in flight, per ACK).
    private var ring: [SentPacket?] = []
    private var sentHead = 0
    private var sentCount = 0
    private var sentBase: UInt64 = 0
    private var sentLiveCount = 0
    /// The newest and the number of ack-eliciting packets in flight that the PTO covers (RFC 9002
    /// §6.2.1). PMTU probes are left out: a probe too large for the path is expected to vanish,
    /// and a PTO for it would make a healthy path look as if it were failing.
    var timeOfLastAckElicitingPacket: Timestamp?
    var lossTime: Timestamp?
    var ackElicitingInFlight = 0
    /// Probe packets owed after a PTO expiry (RFC 9002 §6.2.4).
    var probes = 0
    /// Keys for this space were discarded (RFC 9001 §4.9).
    var discarded = false

    // MARK: Receiving
    var received = RangeSet()
    var largestReceived: UInt64?
    var largestReceivedTime: Timestamp?
    /// Ack-eliciting packets received since our last ACK (RFC 9000 §13.2.2).
    var ackElicitingSinceLastAck = 0
    var ackPending = false
    /// When a delayed ACK must be sent at the latest.
    var ackDeadline: Timestamp?
    /// The largest packet number covered by one of our ACK frames that the peer has acknowledged
    /// (RFC 9000 §13.2.4). Received packets above it are re-reported in outgoing packets.
    var largestAckedInPeerAckedAck: UInt64?
    /// Packets below this number are no longer tracked and are treated as duplicates: the peer
    /// has acknowledged an ACK that covered them (RFC 9000 §13.2.4), so it has already declared
    /// any still missing ones lost and resent their content.
    var duplicateFloor: UInt64 = 0

    /// RFC 9000 §13.2.4: stop reporting packets the peer knows we received.
    func onPeerAcknowledgedAck(largest: UInt64) {
        guard largest + 1 > duplicateFloor else { return }
        largestAckedInPeerAckedAck = max(largestAckedInPeerAckedAck ?? 0, largest)
        duplicateFloor = largest + 1
        received.removeBelow(largest + 1)
    }
    /// ECN counts of received packets (RFC 9000 §13.4.1).
    var ecnCounts = ECNCounts()

    init(id: PacketNumberSpaceID) { self.id = id }

    // MARK: Sent packet tracking

    var hasInFlight: Bool { sentLiveCount > 0 }

    /// Ring slot of window position `i` (the ring's size is a power of two).
    @inline(__always) private func slot(_ i: Int) -> Int { (sentHead + i) & (ring.count - 1) }

    private func pushBack(_ p: SentPacket?) {
        if sentCount == ring.count {
            // Full: double, in window order from slot 0 (allocates only when the window outgrows
            // every window before it).
            var bigger = [SentPacket?](repeating: nil, count: max(16, ring.count * 2))
            for i in 0..<sentCount { bigger[i] = ring[slot(i)].take() }
            ring = bigger
            sentHead = 0
        }
        ring[slot(sentCount)] = p
        sentCount += 1
    }

    func onPacketSent(_ p: SentPacket) {
        if sentCount == 0 { sentBase = p.packetNumber }
        // Packet numbers are sent in increasing order; gaps (skipped numbers) hold nil.
        while sentBase + UInt64(sentCount) < p.packetNumber { pushBack(nil) }
        pushBack(p)
        sentLiveCount += 1
        if p.ackEliciting && !p.isPMTUProbe {
            timeOfLastAckElicitingPacket = p.timeSent
            ackElicitingInFlight += 1
        }
    }

    func packet(_ pn: UInt64) -> SentPacket? {
        guard pn >= sentBase, pn < sentBase + UInt64(sentCount) else { return nil }
        return ring[slot(Int(pn - sentBase))]
    }

    /// Removes and returns a packet (when acknowledged or lost).
    @discardableResult
    func remove(_ pn: UInt64) -> SentPacket? {
        guard pn >= sentBase, pn < sentBase + UInt64(sentCount) else { return nil }
        guard let p = ring[slot(Int(pn - sentBase))].take() else { return nil }
        sentLiveCount -= 1
        if p.ackEliciting && !p.isPMTUProbe { ackElicitingInFlight -= 1 }
        compact()
        return p
    }

    /// Drops the acknowledged or lost packets at the front of the window.
    private func compact() {
        while sentCount > 0 && ring[sentHead] == nil {
            sentHead = (sentHead + 1) & (ring.count - 1)
            sentCount -= 1
            sentBase += 1
        }
    }

    /// Removes and returns the tracked packets whose numbers fall in `range` (ascending); touches
    /// only the tracked window, so a wide ACK range costs nothing for long-gone packets.
    func removeAcknowledged(_ range: ClosedRange<UInt64>, into out: inout [SentPacket]) {
        guard sentCount > 0 else { return }
        let lo = max(range.lowerBound, sentBase)
        let hi = min(range.upperBound, sentBase + UInt64(sentCount) - 1)
        guard lo <= hi else { return }
        for pn in lo...hi {
            let idx = Int(pn - sentBase)
            guard idx < sentCount, let p = ring[slot(idx)].take() else { continue }
            sentLiveCount -= 1
            if p.ackEliciting && !p.isPMTUProbe { ackElicitingInFlight -= 1 }
            out.append(p)
        }
        compact()
    }

    /// Packet numbers currently tracked, ascending.
    var trackedPacketNumbers: [UInt64] {
        var out: [UInt64] = []
        for i in 0..<sentCount where ring[slot(i)] != nil { out.append(sentBase + UInt64(i)) }
        return out
    }

    /// Calls `body` for each live packet with pn <= `upTo`, in ascending order.
    func forEachSent(upTo: UInt64, _ body: (SentPacket) -> Void) {
        // A snapshot (no copy unless `body` changes the space): the window as it was.
        let snapshot = ring
        let head = sentHead
        let count = sentCount
        let mask = ring.count - 1
        for i in 0..<count {
            guard let p = snapshot[(head + i) & mask] else { continue }
            if p.packetNumber > upTo { break }
            body(p)
        }
    }

    /// Drops all sent-packet state (keys discarded); returns the bytes that were in flight.
    func discardSent() -> [SentPacket] {
        var live: [SentPacket] = []
        for i in 0..<sentCount { if let p = ring[slot(i)] { live.append(p) } }
        ring.removeAll()
        sentHead = 0
        sentCount = 0
        sentLiveCount = 0
        ackElicitingInFlight = 0
        lossTime = nil
        timeOfLastAckElicitingPacket = nil
        return live
    }

    // MARK: Receive tracking

    /// Returns false for a duplicate (already received) packet number.
    func isDuplicate(_ pn: UInt64) -> Bool {
        if pn < duplicateFloor { return true }
        if received.contains(pn) { return true }
        return false
    }

    static let maxAckRanges = 32

    func onPacketReceived(_ pn: UInt64, ackEliciting: Bool, now: Timestamp) {
        received.insert(pn)
        if received.count > Self.maxAckRanges {
            // Forget the oldest ranges; anything below them now counts as a duplicate.
            received.keepHighest(Self.maxAckRanges)
            duplicateFloor = max(duplicateFloor, received.lowerBound ?? duplicateFloor)
        }
        if largestReceived == nil || pn > largestReceived! {
            largestReceived = pn
            largestReceivedTime = now
        }
        if ackEliciting {
            ackElicitingSinceLastAck += 1
            ackPending = true
        }
    }

    /// Builds an ACK frame for what was received (ranges descending).
    func makeAckFrame(now: Timestamp, ackDelayExponent: UInt64) -> AckFrame? {
        guard !received.isEmpty, let largestTime = largestReceivedTime else { return nil }
        let delayMicros = (now - largestTime).nanoseconds / 1000
        let ranges = AckRanges(received.ranges.reversed())
        return AckFrame(
            ranges: ranges, ackDelay: delayMicros >> ackDelayExponent,
            ecn: (ecnCounts.ect0 + ecnCounts.ect1 + ecnCounts.ce) > 0 ? ecnCounts : nil)
    }

    /// Whether the peer may not know yet about some packets we received.
    var hasUnconfirmedAckInformation: Bool {
        guard let largest = largestReceived else { return false }
        return largestAckedInPeerAckedAck.map { largest > $0 } ?? true
    }

    func onAckSent() {
        ackElicitingSinceLastAck = 0
        ackPending = false
        ackDeadline = nil
    }
}
