// The connection-owned memory of the zero-copy DATAGRAM send (RFC 9221): fixed-size slots the
// owner writes a payload into (a TUN read, the tunnel header written in place in front of it),
// which then wait in a datagram queue until `poll` copies them into a packet. One block of
// memory, allocated on first use; taking and releasing a slot allocates nothing.

final class DatagramSlots {
    /// Bytes per slot: at least any DATAGRAM payload that fits a UDP datagram of this size.
    let slotSize: Int
    let capacity: Int
    private var storage: UnsafeMutableRawPointer?
    /// Free slot indices, used as a stack (the most recently released slot is warm in cache).
    private var free: [Int32] = []

    init(capacity: Int, slotSize: Int) {
        precondition(capacity > 0 && capacity <= Int(Int32.max) && slotSize > 0)
        self.capacity = capacity
        self.slotSize = slotSize
    }

    deinit { storage?.deallocate() }

    /// Slots not holding a queued datagram.
    var available: Int { storage == nil ? capacity : free.count }

    /// A free slot, or nil when every slot holds a queued datagram.
    func take() -> Int32? {
        if storage == nil {
            storage = UnsafeMutableRawPointer.allocate(byteCount: capacity * slotSize, alignment: 64)
            free.reserveCapacity(capacity)
            for i in (0..<capacity).reversed() { free.append(Int32(i)) }
        }
        return free.popLast()
    }

    func release(_ slot: Int32) {
        precondition(slot >= 0 && Int(slot) < capacity && free.count < capacity, "DatagramSlots: bad release")
        free.append(slot)
    }

    /// The slot's memory, `length` bytes (at most `slotSize`).
    func buffer(_ slot: Int32, length: Int) -> UnsafeMutableRawBufferPointer {
        precondition(storage != nil && slot >= 0 && Int(slot) < capacity && length <= slotSize)
        return UnsafeMutableRawBufferPointer(start: storage! + Int(slot) * slotSize, count: length)
    }
}
