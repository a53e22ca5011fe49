// tquic-netem's packet loop: two AF_PACKET sockets, one per interface, and per direction an
// `EmulatedLink` (NetSim's link model) deciding each frame's fate. A frame's way:
//
//   1. recvmmsg on the input interface, a batch at a time, into free slots of the direction's
//      frame pool (no allocation, no copy), each frame behind its offload header (PACKET_VNET_HDR)
//      and with the kernel's receive time, which is when it enters the link model
//   2. a GSO super-frame (a sender with GSO/TSO on) is cut into MTU-sized frames, each in a slot
//      of its own (FrameSegmentation.swift); a frame with NEEDS_CSUM keeps that request
//   3. EmulatedLink.receive (the IP packet after the Ethernet header): dropped → slot freed;
//      scheduled → held in its slot until its release time (corruption and CE mark applied)
//   4. the epoll wait sleeps until the earliest release (nanosecond timeout, 1 µs timer slack)
//   5. EmulatedLink.popDue → sendmmsg (offload header + frame) on the output interface → slots freed
//
// One thread drives both directions; every drop is counted by cause (EmulatedLinkCounters).
import Congestion
import Glibc
import LinuxNet
import NetSim

/// Fixed-size frame buffers, allocated once, handed out by index. Each slot holds an offload
/// header (`VirtioNetHeader`, 10 bytes) right before the frame, so that header and frame are one
/// contiguous buffer for recvmmsg and sendmmsg.
final class FramePool {
    /// Bytes before the frame: the frame starts 16-byte aligned, its header just before it.
    static let headroom = 16
    let slotSize: Int
    /// The longest frame a slot holds.
    let frameCapacity: Int
    let count: Int
    private let storage: UnsafeMutableRawPointer
    private let lengths: UnsafeMutablePointer<Int32>
    private let free: UnsafeMutablePointer<Int32>
    private(set) var freeCount: Int

    init(count: Int, frameCapacity: Int) {
        self.count = count
        self.frameCapacity = frameCapacity
        slotSize = (FramePool.headroom + frameCapacity + 63) / 64 * 64
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

    /// The frame's first byte.
    @inline(__always) func frame(_ slot: Int32) -> UnsafeMutableRawPointer {
        storage + Int(slot) * slotSize + FramePool.headroom
    }

    /// The offload header's first byte (the frame follows it).
    @inline(__always) func header(_ slot: Int32) -> UnsafeMutableRawPointer {
        frame(slot) - VirtioNetHeader.size
    }

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
    private var lastArrival = Timestamp.zero
    /// Per receive message, room for the part of a GSO super-frame beyond its slot.
    private let overflow: UnsafeMutableRawPointer
    private static let overflowSize = 65_536 + 512
    /// A GSO super-frame made contiguous before it is cut.
    private let superFrame: UnsafeMutableRawPointer
    /// GSO super-frames cut into wire frames.
    private(set) var superFrames = 0
    /// How late frames left against their release time (the emulator's own error), 10 µs
    /// buckets up to 100 ms.
    private(set) var lateness = DelayHistogram(bucketWidth: .microseconds(10), range: .milliseconds(100))

    init(
        label: String, input: PacketSocket, output: PacketSocket, specification: LinkSpecification,
        seed: UInt64, buffers: Int, frameCapacity: Int, batchSize: Int
    ) {
        self.label = label
        self.input = input
        self.output = output
        self.specification = specification
        // Frames are whole IP packets plus the Ethernet header: the link counts the IP packet
        // (the rate and queue of the specification) plus its `overhead=`.
        link = EmulatedLink(model: specification.model(perPacketOverhead: 0), seed: seed, capacity: buffers)
        pool = FramePool(count: buffers, frameCapacity: frameCapacity)
        self.batchSize = batchSize
        receiveBatch = PacketBatch(capacity: batchSize)
        receiveSlots = .allocate(capacity: batchSize)
        sendBatch = PacketBatch(capacity: batchSize)
        sendSlots = .allocate(capacity: batchSize)
        overflow = .allocate(byteCount: batchSize * Direction.overflowSize, alignment: 64)
        superFrame = .allocate(byteCount: frameCapacity + Direction.overflowSize, alignment: 64)
    }

    deinit {
        receiveSlots.deallocate()
        sendSlots.deallocate()
        overflow.deallocate()
        superFrame.deallocate()
    }

    /// Reads what the input holds (up to `maxBatches` recvmmsg calls) and decides each frame.
    /// - Returns: frames read (a GSO super-frame counts once).
    func receive(clock: () -> Timestamp, maxBatches: Int = 8) throws -> Int {
        let headerSize = VirtioNetHeader.size
        var total = 0
        for _ in 0..<maxBatches {
            var room = 0
            while room < batchSize, let slot = pool.take() {
                receiveSlots[room] = slot
                receiveBatch.setBuffer(
                    room, pool.header(slot), length: headerSize + pool.frameCapacity,
                    overflow: overflow + room * Direction.overflowSize, overflowLength: Direction.overflowSize)
                room += 1
            }
            if room == 0 {
                // Every slot is held: read the waiting frames into the overflow buffers and lose
                // them, counted as `buffers` (left in the socket they would block the queue).
                let n = try discard()
                link.recordDrop(.noBuffer, count: n)
                total += n
                if n < batchSize { return total }
                continue
            }
            let n = try input.receive(into: receiveBatch, count: room)
            let now = clock()
            let realNow = RealTimeClock.nanoseconds()
            for i in 0..<n {
                let slot = receiveSlots[i]
                let arrival = arrivalTime(receiveBatch.receiveTime(i), now: now, realNow: realNow)
                let length = receiveBatch.length(i) - headerSize
                if receiveBatch.isTruncated(i) || length > pool.frameCapacity {
                    if !receiveBatch.isTruncated(i) {
                        cutSuperFrame(slot: slot, length: length, overflow: overflow + i * Direction.overflowSize, at: arrival)
                    } else {
                        link.recordDrop(.oversize)
                    }
                    pool.give(slot)
                    continue
                }
                let header = VirtioNetHeader(loading: pool.header(slot))
                if header.isGSO {
                    cutSuperFrame(slot: slot, length: length, overflow: overflow + i * Direction.overflowSize, at: arrival)
                    pool.give(slot)
                    continue
                }
                header.forSingleFrame.store(to: pool.header(slot))
                offer(slot, length: length, at: arrival)
            }
            for i in n..<room { pool.give(receiveSlots[i]) }
            total += n
            if n < room { break }
        }
        return total
    }

    /// When a frame reached the input: the kernel's receive time (SO_TIMESTAMPNS, on the realtime
    /// clock) moved onto the loop's clock, so that frames the loop read late (it was busy, or not
    /// scheduled) still enter the link model when they arrived and do not bunch into a burst the
    /// real link would not have seen; never earlier than the previous frame (the link takes its
    /// offers in time order) nor later than `now`.
    @inline(__always)
    private func arrivalTime(_ kernel: UInt64?, now: Timestamp, realNow: UInt64) -> Timestamp {
        var t = now
        if let kernel, kernel <= realNow {
            let age = realNow - kernel
            if age < 1_000_000_000 && age < now.nanoseconds { t = Timestamp(nanoseconds: now.nanoseconds - age) }
        }
        if t < lastArrival { t = lastArrival }
        lastArrival = t
        return t
    }

    /// Hands the frame in `slot` to the link; frees the slot if the link drops it.
    @inline(__always)
    private func offer(_ slot: Int32, length: Int, at now: Timestamp) {
        guard length > Direction.ethernetHeader else {
            pool.give(slot)
            return
        }
        pool.setLength(slot, length)
        let packet = UnsafeMutableRawBufferPointer(
            start: pool.frame(slot) + Direction.ethernetHeader,
            count: length - Direction.ethernetHeader)
        if case .dropped = link.receive(packet, slot: slot, at: now) { pool.give(slot) }
    }

    /// Cuts the GSO super-frame received in `slot` (its first `frameCapacity` bytes) and
    /// `overflow` (the rest) into wire frames, each offered to the link in a slot of its own.
    /// A super-frame that cannot be cut is dropped as `oversize`.
    private func cutSuperFrame(slot: Int32, length: Int, overflow: UnsafeMutableRawPointer, at now: Timestamp) {
        let header = VirtioNetHeader(loading: pool.header(slot))
        let inSlot = min(length, pool.frameCapacity)
        superFrame.copyMemory(from: pool.frame(slot), byteCount: inSlot)
        if length > inSlot { (superFrame + inSlot).copyMemory(from: overflow, byteCount: length - inSlot) }
        guard header.isGSO,
            let frame = GSOFrame(frame: UnsafeRawBufferPointer(start: superFrame, count: length), header: header),
            (0..<frame.segmentCount).allSatisfy({ frame.segmentLength($0) <= pool.frameCapacity })
        else {
            link.recordDrop(.oversize)
            return
        }
        superFrames += 1
        let segmentHeader = frame.segmentHeader
        for s in 0..<frame.segmentCount {
            guard let target = pool.take() else {
                link.recordDrop(.noBuffer, count: frame.segmentCount - s)
                return
            }
            frame.writeSegment(s, to: pool.frame(target))
            segmentHeader.store(to: pool.header(target))
            offer(target, length: frame.segmentLength(s), at: now)
        }
    }

    /// With no free slot, reads one batch into the overflow buffers (and loses it).
    private func discard() throws -> Int {
        for i in 0..<batchSize {
            receiveBatch.setBuffer(i, overflow + i * Direction.overflowSize, length: Direction.overflowSize)
        }
        return try input.receive(into: receiveBatch, count: batchSize)
    }

    /// Sends every held frame whose release time has come.
    func releaseDue(at now: Timestamp) {
        while let release = link.popDue(at: now) {
            guard release.deliver else {
                pool.give(release.slot)
                continue
            }
            lateness.record(now - release.due)
            sendSlots[sendCount] = release.slot
            sendBatch.setBuffer(sendCount, pool.header(release.slot), length: VirtioNetHeader.size + pool.length(release.slot))
            sendCount += 1
            if sendCount == batchSize { flush() }
        }
        flush()
    }

    private func flush() {
        var first = 0
        while first < sendCount {
            switch output.send(sendBatch, from: first, count: sendCount - first) {
            case .sent(let n):
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

    /// "a→b (a → b): received ..., forwarded ..., dropped ... (causes), ..., late p50 0.02 ms
    /// p99 0.3 ms max 1.2 ms".
    var statisticsLine: String {
        "\(label) (\(input.interface) → \(output.interface)): \(link.counters.summary)"
            + ", held \(link.heldCount), late p50 \(format(lateness.p50.milliseconds)) ms p99 \(format(lateness.p99.milliseconds)) ms"
            + " max \(format(lateness.maximum.milliseconds)) ms" + (superFrames > 0 ? ", GSO frames cut \(superFrames)" : "")
    }

    private func format(_ x: Double) -> String { "\((x * 1000).rounded() / 1000)" }
}
