// Datagrams waiting for a packet (RFC 9221): a FIFO that drops the oldest when full, because an
// unreliable datagram that waits too long is worth less than a fresh one. One per connection
// (any path) and one per path (the bonding scheduler's explicit choice).

/// A datagram waiting to be sent, with the owner's optional tag for ack/loss events.
struct QueuedDatagram {
    var bytes: [UInt8]
    var tag: UInt64?
}

struct DatagramQueue {
    private var items: [QueuedDatagram] = []
    private var head = 0

    var count: Int { items.count - head }
    var isEmpty: Bool { head == items.count }
    var first: QueuedDatagram? { isEmpty ? nil : items[head] }

    /// Appends; when `limit` datagrams already wait, the oldest is dropped (returns true then).
    @discardableResult
    mutating func append(_ d: QueuedDatagram, limit: Int) -> Bool {
        var dropped = false
        if count >= limit {
            head += 1
            dropped = true
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
        defer { items.removeAll(); head = 0 }
        return items[head...]
    }
}
