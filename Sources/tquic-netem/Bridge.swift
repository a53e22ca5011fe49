// tquic-netem's packet loop: two AF_PACKET sockets, one per interface, and per direction an
// `EmulatedLink` (NetSim's link model) deciding each frame's fate. A frame's way:
//
//   1. recvmmsg on the input interface, a batch at a time, into free slots of the direction's
//      frame pool (no allocation, no copy)
//   2. EmulatedLink.receive (the IP packet after the Ethernet header): dropped → slot freed;
//      scheduled → held in its slot until its release time (corruption and CE mark applied)
//   3. the epoll wait sleeps until the earliest release (nanosecond timeout, 1 µs timer slack)
//   4. EmulatedLink.popDue → sendmmsg on the output interface → slots freed
//
// One thread drives both directions; every drop is counted by cause (EmulatedLinkCounters).
import Congestion
import Glibc
import LinuxNet
import NetSim

/// Fixed-size frame buffers, allocated once, handed out by index.
final class FramePool {
    let slotSize: Int
    let count: Int
    private let storage: UnsafeMutableRawPointer
    private let lengths: UnsafeMutablePointer<Int32>
    private let free: UnsafeMutablePointer<Int32>
    private(set) var freeCount: Int

    init(count: Int, slotSize: Int) {
        self.count = count
        self.slotSize = slotSize
        // Untouched pages of a large allocation are never made resident: an idle pool costs
        // address space, not memory.
        storage = .allocate(byteCount: count * slotSize, alignment: 64)
        lengths = .allocate(capacity: count)
        lengths.initialize(repeating: 0, count: count)
        free = .allocate(capacity: count)
        for i in 0..<count { free[i] = Int32(count - 1 - i) }
        freeCount = count
    }

    deinit {
        storage.deallocate()
        lengths.deallocate()
        free.deallocate()
    }

    @inline(__always) func take() -> Int32? {
        guard freeCount > 0 else { return nil }
        freeCount -= 1
        return free[freeCount]
    }

    @inline(__always) func give(_ slot: Int32) {
        free[freeCount] = slot
        freeCount += 1
    }

    @inline(__always) func pointer(_ slot: Int32) -> UnsafeMutableRawPointer { storage + Int(slot) * slotSize }
    @inline(__always) func length(_ slot: Int32) -> Int { Int(lengths[Int(slot)]) }
    @inline(__always) func setLength(_ slot: Int32, _ length: Int) { lengths[Int(slot)] = Int32(length) }
}

/// One direction: frames read from `input`, run through `link`, written to `output`.
final class Direction {
    static let ethernetHeader = 14

    let label: String
    let input: PacketSocket
    let output: PacketSocket
    let specification: LinkSpecification
    let link: EmulatedLink
    let pool: FramePool
    private let batchSize: Int
    private let receiveBatch: PacketBatch
    private let receiveSlots: UnsafeMutablePointer<Int32>
    private let sendBatch: PacketBatch
    private let sendSlots: UnsafeMutablePointer<Int32>
    private var sendCount = 0
    private let scratch: UnsafeMutableRawPointer
    /// How late frames left against their release time (the emulator's own error).
    private(set) var maxLateness = Duration.zero
    private(set) var totalLateness = Duration.zero
    private(set) var lateOver1ms = 0

    init(label: String, input: PacketSocket, output: PacketSocket, specification: LinkSpecification,
         seed: UInt64, buffers: Int, slotSize: Int, batchSize: Int) {
        self.label = label
        self.input = input
        self.output = output
        self.specification = specification
        // Frames are whole IP packets plus the Ethernet header: the link counts the IP packet
        // (the rate and queue of the specification) plus its `overhead=`.
        link = EmulatedLink(model: specification.model(perPacketOverhead: 0), seed: seed, capacity: buffers)
        pool = FramePool(count: buffers, slotSize: slotSize)
        self.batchSize = batchSize
        receiveBatch = PacketBatch(capacity: batchSize)
        receiveSlots = .allocate(capacity: batchSize)
        sendBatch = PacketBatch(capacity: batchSize)
        sendSlots = .allocate(capacity: batchSize)
        scratch = .allocate(byteCount: slotSize, alignment: 64)
    }

    deinit {
        receiveSlots.deallocate()
        sendSlots.deallocate()
        scratch.deallocate()
    }

    /// Reads what the input holds (up to `maxBatches` recvmmsg calls) and decides each frame.
    /// - Returns: frames read.
    func receive(clock: () -> Timestamp, maxBatches: Int = 8) throws -> Int {
        var total = 0
        for _ in 0..<maxBatches {
            var room = 0
            while room < batchSize, let slot = pool.take() {
                receiveSlots[room] = slot
                receiveBatch.setBuffer(room, pool.pointer(slot), length: pool.slotSize)
                room += 1
            }
            if room == 0 {
                // Every slot is held: read the waiting frames into the scratch buffer and lose
                // them, counted as `buffers` (left in the socket they would block the queue).
                let n = try discard()
                link.recordDrop(.noBuffer, count: n)
                total += n
                if n < batchSize { return total }
                continue
            }
            let n = try input.receive(into: receiveBatch, count: room)
            let now = clock()
            for i in 0..<n {
                let slot = receiveSlots[i]
                let length = receiveBatch.length(i)
                if receiveBatch.isTruncated(i) {
                    link.recordDrop(.oversize)
                    pool.give(slot)
                    continue
                }
                guard length > Direction.ethernetHeader else {
                    pool.give(slot)
                    continue
                }
                pool.setLength(slot, length)
                let packet = UnsafeMutableRawBufferPointer(start: pool.pointer(slot) + Direction.ethernetHeader,
                                                           count: length - Direction.ethernetHeader)
                if case .dropped = link.receive(packet, slot: slot, at: now) { pool.give(slot) }
            }
            for i in n..<room { pool.give(receiveSlots[i]) }
            total += n
            if n < room { break }
        }
        return total
    }

    /// With no free slot, reads one batch into the scratch buffer (all messages share it).
    private func discard() throws -> Int {
        for i in 0..<batchSize { receiveBatch.setBuffer(i, scratch, length: pool.slotSize) }
        return try input.receive(into: receiveBatch, count: batchSize)
    }

    /// Sends every held frame whose release time has come.
    func releaseDue(at now: Timestamp) {
        while let release = link.popDue(at: now) {
            guard release.deliver else {
                pool.give(release.slot)
                continue
            }
            let late = now - release.due
            totalLateness = totalLateness + late
            if late > maxLateness { maxLateness = late }
            if late.nanoseconds > 1_000_000 { lateOver1ms += 1 }
            sendSlots[sendCount] = release.slot
            sendBatch.setBuffer(sendCount, pool.pointer(release.slot), length: pool.length(release.slot))
            sendCount += 1
            if sendCount == batchSize { flush() }
        }
        flush()
    }

    private func flush() {
        var first = 0
        while first < sendCount {
            switch output.send(sendBatch, from: first, count: sendCount - first) {
            case let .sent(n):
                first += n
            case .wouldBlock, .refused:
                link.recordDrop(.sendFailed)
                first += 1
            }
        }
        for i in 0..<sendCount { pool.give(sendSlots[i]) }
        sendCount = 0
    }

    /// Adds the kernel's receive-queue drops on the input socket since the last call.
    func collectKernelDrops() {
        let n = input.takeKernelDrops()
        if n > 0 { link.recordDrop(.socket, count: n) }
    }

    /// "a→b (m0 → m1): received ..., forwarded ..., dropped ... (causes), ..., late max 0.1 ms".
    var statisticsLine: String {
        let forwarded = link.counters.forwarded.packets
        let mean = forwarded > 0 ? totalLateness.milliseconds / Double(forwarded) : 0
        return "\(label) (\(input.interface) → \(output.interface)): \(link.counters.summary)"
            + ", held \(link.heldCount), late mean \(format(mean)) ms max \(format(maxLateness.milliseconds)) ms"
            + " (>1 ms: \(lateOver1ms))"
    }

    private func format(_ x: Double) -> String { "\((x * 1000).rounded() / 1000)" }
}
