// Sender side, after the scheduler: remembers, per path, the tunnel packets handed to that path
// and not yet acknowledged, so that when the path dies (PTO-based detection, or the daemon sees
// the interface go down) they are re-sent on the surviving paths — reinjection — in tunnel
// sequence order. The receiver's duplicate window drops any copy that arrives twice.
//
//   scheduler → `recordSent` (per path ring) → DATAGRAM
//   connection ack / loss of that DATAGRAM → `acknowledged` / `lost` (entry leaves, handle freed)
//   path failed → `pathFailed` (its unacknowledged entries move to the reinjection queue)
//   daemon, before new TUN packets → `nextReinjection` → scheduler → `recordSent` again
//
// Urgent records (the sender's interactive packets) wait in a queue of their own and leave first:
// the receiver holds their lane's later packets until they arrive, and a call or a ping must not
// wait behind the bulk a dead path owed.

import Congestion

/// Per-path rings of unacknowledged tunnel packets and the reinjection queue. Storage is fixed
/// (a ring per path allocated when the path is first seen, one queue); nothing allocates per
/// packet. The ledger never frees packet buffers: every record that leaves it is handed back
/// (by a return value or the `discard` closure) so the caller can release the handle.
public struct ReinjectionLedger: Sendable {
    public struct Configuration: Sendable {
        /// Paths tracked at once.
        public var maxPaths: Int = 16
        /// Unacknowledged packets remembered per path (≥ the largest window in packets); when
        /// full, the oldest is forgotten (it can no longer be reinjected).
        public var capacityPerPath: Int = 4096
        /// Packets waiting for reinjection; beyond, the oldest are discarded.
        public var queueCapacity: Int = 16384
        public init() {}
    }

    /// A tunnel packet handed to a path.
    public struct Record: Hashable, Sendable {
        public var sequence: TunnelSequence
        /// Reinjected before the others (an interactive packet). Beside the 4-byte sequence, so a
        /// record stays 32 bytes.
        public var isUrgent: Bool
        /// The caller's packet buffer (the whole tunnel frame must stay in it until the record
        /// leaves the ledger: reinjection re-sends it as it is).
        public var handle: Int
        public var bytes: Int
        /// When it was first sent (the caller may drop reinjections older than the receiver's
        /// maximum hold: they would arrive after their lane moved on).
        public var firstSent: Timestamp
        public init(sequence: TunnelSequence, handle: Int, bytes: Int, firstSent: Timestamp, isUrgent: Bool = false) {
            self.sequence = sequence
            self.handle = handle
            self.bytes = bytes
            self.firstSent = firstSent
            self.isUrgent = isUrgent
        }
        static let empty = Record(sequence: TunnelSequence(0), handle: -1, bytes: 0, firstSent: .zero)
    }

    /// Names one record for an O(1) acknowledgement (keep it with the DATAGRAM's context).
    public struct Ticket: Hashable, Sendable {
        let slot: UInt16
        let epoch: UInt32
        let position: UInt64
    }

    public struct Statistics: Sendable {
        public var recorded: UInt64 = 0
        public var acknowledged: UInt64 = 0
        /// Declared lost on a path that is still alive (not reinjected: DATAGRAMs are unreliable
        /// and the inner transport recovers).
        public var lost: UInt64 = 0
        /// Forgotten because a path's ring was full.
        public var evicted: UInt64 = 0
        /// Moved to the reinjection queue by path failures.
        public var reinjected: UInt64 = 0
        /// Discarded because the reinjection queue was full.
        public var queueOverflow: UInt64 = 0
        public var pathFailures: UInt64 = 0
    }

    public let configuration: Configuration
    public private(set) var statistics = Statistics()

    private struct PathRing: Sendable {
        var id = -1
        var epoch: UInt32 = 0
        var head: UInt64 = 0
        var tail: UInt64 = 0
        var records: [Record] = []
        var done: [Bool] = []
    }

    private var rings: [PathRing]
    /// Records waiting for reinjection, urgent ones apart; each in tunnel sequence order.
    private var queue: ReinjectionQueue
    private var urgent: ReinjectionQueue

    public init(configuration: Configuration = Configuration()) {
        precondition(configuration.maxPaths > 0 && configuration.maxPaths <= Int(UInt16.max))
        precondition(configuration.capacityPerPath > 0 && configuration.queueCapacity > 0)
        self.configuration = configuration
        rings = [PathRing](repeating: PathRing(), count: configuration.maxPaths)
        queue = ReinjectionQueue(capacity: configuration.queueCapacity)
        urgent = ReinjectionQueue(capacity: max(1, configuration.queueCapacity / 4))
    }

    // MARK: Sending

    /// Remembers that `record` was handed to path `pathID` (a non-negative path ID).
    /// - Returns: the ticket that acknowledges it (nil when no path slot is free: the packet is
    ///   then not tracked), and the record forgotten to make room, if any (the caller frees it).
    public mutating func recordSent(_ record: Record, onPath pathID: Int) -> (ticket: Ticket?, evicted: Record?) {
        guard let s = slot(for: pathID, create: true) else { return (nil, nil) }
        let capacity = UInt64(configuration.capacityPerPath)
        var evicted: Record?
        if rings[s].tail - rings[s].head == capacity {
            let i = Int(rings[s].head % capacity)
            if !rings[s].done[i] {
                evicted = rings[s].records[i]
                statistics.evicted += 1
            }
            rings[s].head += 1
            skipDone(s)
        }
        let position = rings[s].tail
        let i = Int(position % capacity)
        rings[s].records[i] = record
        rings[s].done[i] = false
        rings[s].tail += 1
        statistics.recorded += 1
        return (Ticket(slot: UInt16(s), epoch: rings[s].epoch, position: position), evicted)
    }

    // MARK: Feedback from the connection

    /// The DATAGRAM of this ticket was acknowledged.
    /// - Returns: its record (free its handle), or nil if the ledger no longer holds it.
    public mutating func acknowledged(_ ticket: Ticket) -> Record? {
        guard let record = take(ticket) else { return nil }
        statistics.acknowledged += 1
        return record
    }

    /// The packet with this tunnel sequence was acknowledged on `pathID` (lookup by scanning
    /// from the oldest; use tickets where the connection can carry them).
    public mutating func acknowledged(sequence: TunnelSequence, onPath pathID: Int) -> Record? {
        guard let s = slot(for: pathID, create: false) else { return nil }
        let capacity = UInt64(configuration.capacityPerPath)
        var p = rings[s].head
        while p < rings[s].tail {
            let i = Int(p % capacity)
            if !rings[s].done[i], rings[s].records[i].sequence == sequence {
                return acknowledged(Ticket(slot: UInt16(s), epoch: rings[s].epoch, position: p))
            }
            p += 1
        }
        return nil
    }

    /// The DATAGRAM of this ticket was declared lost while its path lives on: forgotten, not
    /// reinjected. - Returns: its record (free its handle), or nil.
    public mutating func lost(_ ticket: Ticket) -> Record? {
        guard let record = take(ticket) else { return nil }
        statistics.lost += 1
        return record
    }

    /// Path `pathID` failed or was abandoned: every packet it still owed moves to the reinjection
    /// queue, which stays in tunnel sequence order; the path is forgotten (its tickets go stale).
    /// - Parameter discard: receives records that did not fit the queue (the oldest go first).
    /// - Returns: how many packets were queued for reinjection.
    @discardableResult
    public mutating func pathFailed(id pathID: Int, discard: (Record) -> Void = { _ in }) -> Int {
        guard let s = slot(for: pathID, create: false) else { return 0 }
        statistics.pathFailures += 1
        let capacity = UInt64(configuration.capacityPerPath)
        var moved = 0
        var p = rings[s].head
        while p < rings[s].tail {
            let i = Int(p % capacity)
            if !rings[s].done[i] {
                let record = rings[s].records[i]
                // Full: the oldest eighth goes (the least likely to arrive in time).
                let dropped: Int
                if record.isUrgent {
                    dropped = urgent.append(record, discard: discard)
                } else {
                    dropped = queue.append(record, discard: discard)
                }
                statistics.queueOverflow += UInt64(dropped)
                moved += 1
            }
            p += 1
        }
        statistics.reinjected += UInt64(moved)
        queue.sortBySequence()
        urgent.sortBySequence()
        rings[s].id = -1
        rings[s].epoch &+= 1
        rings[s].head = rings[s].tail
        return moved
    }

    /// The DATAGRAM of this ticket was declared lost on a path that is failing (probe timeouts
    /// without an answer, not yet declared dead): the loss is the outage, so it is queued for
    /// reinjection (in sequence order) instead of forgotten.
    /// - Parameter discard: receives a record that did not fit the queue.
    /// - Returns: whether the ledger still held it.
    @discardableResult
    public mutating func requeueForReinjection(_ ticket: Ticket, discard: (Record) -> Void = { _ in }) -> Bool {
        guard let record = take(ticket) else { return false }
        // Full: the oldest waiting one goes (the least likely to arrive in time).
        let dropped = record.isUrgent ? urgent.insertInOrder(record, discard: discard) : queue.insertInOrder(record, discard: discard)
        statistics.queueOverflow += UInt64(dropped)
        statistics.reinjected += 1
        return true
    }

    // MARK: Reinjection

    /// The next packet to re-send (urgent ones first, then the lowest tunnel sequence), or nil.
    /// Send it before new TUN packets, on a path the scheduler picks, with
    /// `TunnelFrame.markReinjected`, then `recordSent` it again.
    /// - Parameter urgentOnly: only an urgent one (the sender has interactive packets waiting,
    ///   which go before the others).
    public mutating func nextReinjection(urgentOnly: Bool = false) -> Record? {
        if let r = urgent.next() { return r }
        return urgentOnly ? nil : queue.next()
    }

    /// Packets waiting for reinjection.
    public var pendingReinjections: Int { queue.count + urgent.count }

    /// Unacknowledged packets tracked for `pathID`.
    public func unacknowledged(onPath pathID: Int) -> Int {
        guard let s = rings.firstIndex(where: { $0.id == pathID }) else { return 0 }
        let capacity = UInt64(configuration.capacityPerPath)
        var n = 0
        var p = rings[s].head
        while p < rings[s].tail {
            if !rings[s].done[Int(p % capacity)] { n += 1 }
            p += 1
        }
        return n
    }

    // MARK: Internals

    private mutating func take(_ ticket: Ticket) -> Record? {
        let s = Int(ticket.slot)
        guard s < rings.count, rings[s].id >= 0, rings[s].epoch == ticket.epoch,
            ticket.position >= rings[s].head, ticket.position < rings[s].tail
        else { return nil }
        let i = Int(ticket.position % UInt64(configuration.capacityPerPath))
        guard !rings[s].done[i] else { return nil }
        rings[s].done[i] = true
        let record = rings[s].records[i]
        skipDone(s)
        return record
    }

    /// Advances a ring's head past entries already acknowledged or lost.
    private mutating func skipDone(_ s: Int) {
        let capacity = UInt64(configuration.capacityPerPath)
        while rings[s].head < rings[s].tail, rings[s].done[Int(rings[s].head % capacity)] {
            rings[s].head += 1
        }
    }

    private mutating func slot(for pathID: Int, create: Bool) -> Int? {
        guard pathID >= 0 else { return nil }
        for s in rings.indices where rings[s].id == pathID { return s }
        guard create, let s = rings.firstIndex(where: { $0.id < 0 }) else { return nil }
        rings[s].id = pathID
        rings[s].head = rings[s].tail
        if rings[s].records.isEmpty {  // first use of this slot: its one allocation
            rings[s].records = [Record](repeating: .empty, count: configuration.capacityPerPath)
            rings[s].done = [Bool](repeating: true, count: configuration.capacityPerPath)
        }
        return s
    }
}

/// Records waiting for reinjection, in a fixed array (nothing allocated after init).
private struct ReinjectionQueue: Sendable {
    private var records: [Record]
    private var start = 0
    private var end = 0

    typealias Record = ReinjectionLedger.Record

    init(capacity: Int) {
        records = [Record](repeating: .empty, count: capacity)
    }

    var count: Int { end - start }

    /// Appends (sort afterwards); when full, first discards the oldest eighth. Returns how many
    /// it discarded.
    mutating func append(_ record: Record, discard: (Record) -> Void) -> Int {
        compact()
        var dropped = 0
        if end == records.count {
            sortBySequence()
            dropped = max(1, count / 8)
            for k in start..<start + dropped { discard(records[k]) }
            start += dropped
            compact()
        }
        records[end] = record
        end += 1
        return dropped
    }

    /// Inserts in sequence order (usually at the end: losses come in sending order); when full,
    /// first discards the oldest. Returns how many it discarded.
    mutating func insertInOrder(_ record: Record, discard: (Record) -> Void) -> Int {
        compact()
        var dropped = 0
        if end == records.count {
            discard(records[start])
            start += 1
            dropped = 1
            compact()
        }
        var k = end
        while k > start, record.sequence.precedes(records[k - 1].sequence) {
            records[k] = records[k - 1]
            k -= 1
        }
        records[k] = record
        end += 1
        return dropped
    }

    mutating func sortBySequence() {
        records[start..<end].sort { $0.sequence.precedes($1.sequence) }
    }

    mutating func next() -> Record? {
        guard start < end else { return nil }
        let record = records[start]
        start += 1
        if start == end {
            start = 0
            end = 0
        }
        return record
    }

    private mutating func compact() {
        guard start > 0 else { return }
        let n = end - start
        for k in 0..<n { records[k] = records[start + k] }
        start = 0
        end = n
    }
}
