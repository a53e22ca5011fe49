// Fixed buffers for tunnel frames that must outlive the call that made them: frames handed to the
// connection until acknowledged (reinjection re-sends them as they are) and DATAGRAM payloads held
// in the reorder buffer. One allocation up front, a free list, and a reference count per buffer
// (the redundant scheduler hands one frame to several paths), so forwarding allocates nothing.

/// A buffer's index in the pool.
public typealias PacketBufferHandle = Int

public final class PacketBufferPool {
    public let bufferSize: Int
    public let count: Int
    /// Not initialised: a large allocation comes from mmap and its pages are committed only
    /// when first written, so an idle pool costs address space, not memory.
    private let storage: UnsafeMutableRawPointer
    private var lengths: [Int]
    private var references: [Int]
    private var free: [PacketBufferHandle]

    public init(count: Int, bufferSize: Int) {
        precondition(count > 0 && bufferSize > 0)
        self.count = count
        self.bufferSize = bufferSize
        storage = UnsafeMutableRawPointer.allocate(byteCount: count * bufferSize, alignment: 64)
        lengths = [Int](repeating: 0, count: count)
        references = [Int](repeating: 0, count: count)
        free = Array((0..<count).reversed())
    }

    deinit { storage.deallocate() }

    public var available: Int { free.count }

    /// A buffer with one reference, or nil when every buffer is in use.
    public func allocate() -> PacketBufferHandle? {
        guard let h = free.popLast() else { return nil }
        references[h] = 1
        lengths[h] = 0
        return h
    }

    public func retain(_ h: PacketBufferHandle) { references[h] += 1 }

    public func release(_ h: PacketBufferHandle) {
        precondition(references[h] > 0, "packet buffer \(h) released more often than retained")
        references[h] -= 1
        if references[h] == 0 { free.append(h) }
    }

    public func length(_ h: PacketBufferHandle) -> Int { lengths[h] }

    public func setLength(_ h: PacketBufferHandle, _ n: Int) {
        precondition(n >= 0 && n <= bufferSize)
        lengths[h] = n
    }

    /// The whole buffer (`bufferSize` bytes), to write into.
    public func withBuffer<R>(_ h: PacketBufferHandle, _ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeMutableRawBufferPointer(start: storage + h * bufferSize, count: bufferSize))
    }

    /// The buffer's first `length(h)` bytes.
    public func withBytes<R>(_ h: PacketBufferHandle, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: storage + h * bufferSize, count: lengths[h]))
    }

}
