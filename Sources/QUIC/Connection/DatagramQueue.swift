// Datagrams waiting for a packet (RFC 9221): a FIFO that drops the oldest when full, because an
// unreliable datagram that waits too long is worth less than a fresh one. One per connection
// (any path) and one per path (the bonding scheduler's explicit choice).

/// A datagram waiting to be sent, with the owner's optional tag for ack/loss events. The payload
/// is either an array the owner handed over or a slot of the connection's `DatagramSlots` that
/// the owner wrote into (the zero-copy send).
struct QueuedDatagram {
    var bytes: [UInt8]
    var tag: UInt64?
    /// The slot holding the payload, or -1 when it is `bytes`.
    var slot: Int32 = -1
    var slotLength: Int32 = 0

    init(bytes: [UInt8], tag: UInt64?) {
        self.bytes = bytes
        self.tag = tag
    }

    init(slot: Int32, length: Int, tag: UInt64?) {
        bytes = []
        self.tag = tag
        self.slot = slot
        slotLength = Int32(length)
    }

    var length: Int { slot >= 0 ? Int(slotLength) : bytes.count }
}

struct DatagramQueue {
    private var items: [QueuedDatagram] = []
    private var head = 0

    var count: Int { items.count - head }
    var isEmpty: Bool { head == items.count }
    var first: QueuedDatagram? { isEmpty ? nil : items[head] }
    /// The payload length of the first datagram (without copying it out).
    var firstLength: Int? { isEmpty ? nil : items[head].length }

    /// Appends; when `limit` datagrams already wait, the oldest is dropped and returned (its
    /// slot, if any, is the caller's to release).
    @discardableResult
    mutating func append(_ d: QueuedDatagram, limit: Int) -> QueuedDatagram? {
        var dropped: QueuedDatagram?
        if count >= limit {
            dropped = items[head]
            head += 1
        }
        items.append(d)
        return dropped
    }

    mutating func removeFirst() -> QueuedDatagram {
        let d = items[head]
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 256 {
            items.removeFirst(head)
            head = 0
        }
        return d
    }

    /// Takes every waiting datagram out (a path was abandoned: they go to another queue).
    mutating func drain() -> ArraySlice<QueuedDatagram> {
        defer {
            items.removeAll()
            head = 0
        }
        return items[head...]
    }
}
