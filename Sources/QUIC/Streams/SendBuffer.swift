// Bytes an application (or TLS, for CRYPTO frames) has written and the peer has not yet
// acknowledged. New data is sent in order; lost ranges are re-sent first (RFC 9000 §13.3);
// acknowledged prefixes are released.

struct SendBuffer {
    /// Unacknowledged bytes starting at stream offset `base`.
    private var storage: [UInt8] = []
    private var storageStart = 0  // index in storage of offset `base`
    private(set) var base: UInt64 = 0
    /// Next offset never sent before.
    private(set) var nextNewOffset: UInt64 = 0
    /// Lost ranges to send again (offsets).
    private(set) var lost = RangeSet()
    /// Acknowledged ranges above `base`.
    private var acked = RangeSet()

    /// Total bytes written by the application.
    var endOffset: UInt64 { base + UInt64(storage.count - storageStart) }
    var hasUnsentData: Bool { nextNewOffset < endOffset || !lost.isEmpty }
    var hasLostData: Bool { !lost.isEmpty }
    var unsentNewBytes: UInt64 { endOffset - nextNewOffset }
    var allAcknowledged: Bool { base == endOffset }
    var bufferedBytes: Int { storage.count - storageStart }

    mutating func append<C: Collection>(_ data: C) where C.Element == UInt8 {
        storage.append(contentsOf: data)
    }

    /// The next chunk to send: a lost range first, else new data; at most `maxLength` bytes and,
    /// for new data, not beyond `limit` (flow control).
    mutating func nextChunk(maxLength: Int, limit: UInt64) -> (offset: UInt64, data: ArraySlice<UInt8>, isRetransmission: Bool)? {
        guard maxLength > 0 else { return nil }
        while let r = lost.ranges.first {
            // Skip parts already acknowledged meanwhile.
            if r.upperBound < base {
                lost.remove(r)
                continue
            }
            let start = max(r.lowerBound, base)
            let end = min(r.upperBound + 1, start + UInt64(maxLength))
            lost.remove(start...(end - 1))
            return (start, slice(start, end), true)
        }
        let end = min(endOffset, limit, nextNewOffset + UInt64(maxLength))
        guard end > nextNewOffset else { return nil }
        let start = nextNewOffset
        nextNewOffset = end
        return (start, slice(start, end), false)
    }

    private func slice(_ start: UInt64, _ end: UInt64) -> ArraySlice<UInt8> {
        let s = storageStart + Int(start - base)
        return storage[s..<(s + Int(end - start))]
    }

    mutating func onAcked(offset: UInt64, length: Int) {
        guard length > 0 else { return }
        let end = offset + UInt64(length)
        guard end > base else { return }
        acked.insert(max(offset, base)...(end - 1))
        // Release the acknowledged prefix.
        if let first = acked.ranges.first, first.lowerBound <= base {
            let newBase = first.upperBound + 1
            storageStart += Int(newBase - base)
            base = newBase
            acked.removeBelow(newBase)
            lost.removeBelow(newBase)
            if storageStart > 65536 && storageStart > storage.count / 2 {
                storage.removeFirst(storageStart)
                storageStart = 0
            }
        }
    }

    mutating func onLost(offset: UInt64, length: Int) {
        guard length > 0 else { return }
        let end = offset + UInt64(length)
        guard end > base else { return }
        var r = RangeSet([max(offset, base)...(end - 1)])
        for a in acked.ranges { r.remove(a) }
        for x in r.ranges { lost.insert(x) }
    }

    /// Forget everything (stream reset).
    mutating func discardAll() {
        // Everything below the end counts as settled, so a late ACK of data sent before the
        // reset finds nothing to release (base was once taken after emptying the storage, which
        // left it at the old base and let such an ACK move storageStart past the storage).
        let end = endOffset
        storage = []
        storageStart = 0
        base = end
        nextNewOffset = end
        lost = RangeSet()
        acked = RangeSet()
    }

    /// Resend everything sent so far (Retry or 0-RTT rejection).
    mutating func markAllSentAsLost() {
        if nextNewOffset > base { onLost(offset: base, length: Int(nextNewOffset - base)) }
    }
}
