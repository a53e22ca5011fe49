// Receiver side, first check on every decoded frame: has this tunnel sequence number been seen
// already? A sliding bitmap of the most recent `width` numbers behind the highest one seen; copies
// made by the redundant scheduler or by reinjection die here. Used by `ReorderBuffer`.

/// A sliding-window bitmap of recently seen tunnel sequence numbers (the IPsec/WireGuard
/// anti-replay window, without the crypto). Fixed storage; O(1) per packet amortised.
public struct DuplicateWindow: Sendable {
    public enum Verdict: Hashable, Sendable {
        /// Not seen before (and now marked, for `insert`).
        case new
        /// Seen before.
        case duplicate
        /// So far behind the highest number seen that the window no longer knows: treated as
        /// late, since any packet that old has long been given up by the reorder buffer.
        case tooOld
    }

    /// Numbers the window remembers behind the highest seen.
    public let width: Int
    /// Highest number seen, nil before the first.
    public private(set) var highest: TunnelSequence?
    private var words: [UInt64]
    private let mask: Int

    /// - Parameter width: a power of two, at least 64. It must cover the packets that can arrive
    ///   during the largest path delay spread (rate × spread), or late copies read as `tooOld`.
    public init(width: Int) {
        precondition(width >= 64 && width & (width - 1) == 0, "width must be a power of two ≥ 64")
        self.width = width
        mask = width - 1
        words = [UInt64](repeating: 0, count: width / 64)
    }

    /// What `insert` would answer, without marking.
    public func check(_ sequence: TunnelSequence) -> Verdict {
        guard let highest else { return .new }
        let back = sequence.distance(to: highest)
        if back < 0 { return .new }
        if Int(back) >= width { return .tooOld }
        return isMarked(sequence) ? .duplicate : .new
    }

    /// Checks and, when new, marks `sequence` as seen (sliding the window forward if needed).
    @discardableResult
    public mutating func insert(_ sequence: TunnelSequence) -> Verdict {
        guard let current = highest else {
            highest = sequence
            mark(sequence)
            return .new
        }
        let back = sequence.distance(to: current)
        if back < 0 {
            clear(after: current, count: Int(-Int64(back)))
            highest = sequence
            mark(sequence)
            return .new
        }
        if Int(back) >= width { return .tooOld }
        if isMarked(sequence) { return .duplicate }
        mark(sequence)
        return .new
    }

    /// Forgets everything (a new connection).
    public mutating func reset() {
        highest = nil
        for i in words.indices { words[i] = 0 }
    }

    @inline(__always)
    private func isMarked(_ s: TunnelSequence) -> Bool {
        let pos = Int(s.rawValue) & mask
        return words[pos >> 6] & (1 << UInt64(pos & 63)) != 0
    }

    @inline(__always)
    private mutating func mark(_ s: TunnelSequence) {
        let pos = Int(s.rawValue) & mask
        words[pos >> 6] |= 1 << UInt64(pos & 63)
    }

    /// Clears the `count` positions that follow `start` (they now stand for new numbers).
    private mutating func clear(after start: TunnelSequence, count: Int) {
        if count >= width {
            for i in words.indices { words[i] = 0 }
            return
        }
        var pos = Int(start.next.rawValue) & mask
        var remaining = count
        while remaining > 0 {
            let bit = pos & 63
            let take = min(64 - bit, remaining)
            let bits: UInt64 = take == 64 ? ~0 : ((1 << UInt64(take)) - 1) << UInt64(bit)
            words[pos >> 6] &= ~bits
            remaining -= take
            pos = (pos + take) & mask
        }
    }
}
