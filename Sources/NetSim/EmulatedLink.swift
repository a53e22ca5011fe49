// One direction of tquic-netem's link, sans-I/O: the caller (the emulator's packet loop) hands in
// each IP packet as it arrives, held in a buffer slot of its own, and asks which slots are due to
// leave. The decisions (queue, rate, loss, jitter, outages, corruption, ECN) are NetSim's `Link`,
// so a lab link and a simulated one with the same `LinkModel` behave alike; this type adds what a
// real packet needs: the release schedule, the byte flip and the CE mark applied to the bytes, and
// a count of every drop by cause, including the emulator's own (no buffer, oversize, send failed).
//
// A packet's way: receive() → Link.offer (outage? queue full? serialise, lost? corrupt? jitter) →
// release heap keyed by arrival time → popDue() at that time → Link.complete (an outage began
// while it was held?) → the caller sends it.
import Congestion
import QUIC

/// Why the emulator did not forward a packet.
public enum EmulatorDropCause: String, CaseIterable, Sendable {
    /// The link model's drop-tail queue had no room (`LinkModel.queueCapacityBytes`).
    case queueFull = "queue"
    /// Independent random loss (`loss=`).
    case randomLoss = "loss"
    /// Gilbert–Elliott burst loss (`burst=`, `ge=`).
    case burstLoss = "burst"
    /// Offered during an outage, or held when one began.
    case outage
    /// Every buffer slot was taken (the emulator's own limit, `--buffers`).
    case noBuffer = "buffers"
    /// A frame longer than a slot (GSO/TSO left on at the sender, or a jumbo frame).
    case oversize
    /// The kernel refused to send it on the other interface.
    case sendFailed = "send"
    /// The kernel's receive queue of the packet socket overflowed before the emulator read it
    /// (PACKET_STATISTICS): the emulator itself was too slow.
    case socket

    init(_ reason: DropReason) {
        switch reason {
        case .queueFull: self = .queueFull
        case .randomLoss: self = .randomLoss
        case .burstLoss: self = .burstLoss
        case .outage: self = .outage
        }
    }
}

/// What one direction of the emulator did.
public struct EmulatedLinkCounters: Sendable, Equatable {
    public var received = LinkStatistics.Counter()
    public var forwarded = LinkStatistics.Counter()
    /// Packets forwarded with a byte flipped.
    public var corrupted = 0
    /// Packets forwarded with their ECN field set to CE.
    public var ceMarked = 0
    private var drops = [Int](repeating: 0, count: EmulatorDropCause.allCases.count)

    public init() {}

    public func dropped(_ cause: EmulatorDropCause) -> Int {
        drops[EmulatorDropCause.allCases.firstIndex(of: cause)!]
    }

    public var droppedTotal: Int { drops.reduce(0, +) }

    public mutating func recordDrop(_ cause: EmulatorDropCause, count: Int = 1) {
        drops[EmulatorDropCause.allCases.firstIndex(of: cause)!] += count
    }

    /// "received 1000, forwarded 900, dropped 100 (loss 98, outage 2), corrupted 0, ce 0": the
    /// drops listed only for causes that happened.
    public var summary: String {
        let causes = EmulatorDropCause.allCases.filter { dropped($0) > 0 }.map { "\($0.rawValue) \(dropped($0))" }
        return "received \(received.packets), forwarded \(forwarded.packets), dropped \(droppedTotal)"
            + (causes.isEmpty ? "" : " (\(causes.joined(separator: ", ")))")
            + ", corrupted \(corrupted), ce \(ceMarked)"
    }
}

/// One direction of an emulated link over caller-owned packet buffers.
///
/// Time is the caller's (nanoseconds since the emulator started: outages and rate changes count
/// from there) and must not go backwards between calls; randomness comes from `seed` alone, so the
/// same packets at the same times give the same verdicts and release times.
public final class EmulatedLink {
    /// What happens to a received packet.
    public enum Verdict: Equatable, Sendable {
        /// Held until `release` (then returned by `popDue`, unless an outage takes it first).
        case scheduled(release: Timestamp)
        case dropped(EmulatorDropCause)
    }

    /// A packet whose release time has come.
    public struct Release: Equatable, Sendable {
        public var slot: Int32
        /// When it was due (the caller is at or after it).
        public var due: Timestamp
        /// False when an outage began while it was held: free the slot, send nothing.
        public var deliver: Bool

        public init(slot: Int32, due: Timestamp, deliver: Bool) {
            self.slot = slot
            self.due = due
            self.deliver = deliver
        }
    }

    /// The decisions, and the link model's own statistics (queueing delay, busy time).
    public let link: Link
    public private(set) var counters = EmulatedLinkCounters()

    private struct Held {
        var release: UInt64
        var sequence: UInt64
        var enteredAt: Timestamp
        var bytes: Int32
        var slot: Int32
        func precedes(_ other: Held) -> Bool {
            release != other.release ? release < other.release : sequence < other.sequence
        }
    }

    /// Min-heap on (release, arrival order): with jitter that keeps order it is a FIFO; with
    /// `reorder` it hands packets out in their own release order.
    private var heap: [Held] = []
    private var sequence: UInt64 = 0

    /// - Parameters:
    ///   - model: the direction's link; its `overheadBytes` is added to each packet's length.
    ///   - seed: the link's random streams (`Link`'s: loss, burst, jitter, corruption).
    ///   - capacity: the most packets held at once (the caller's slot count), reserved up front.
    public init(model: LinkModel, seed: UInt64, capacity: Int = 1024) {
        // One-second series: a long emulator run keeps 16 bytes a second of history, not 1.6 kB.
        link = Link(model: model, seed: seed, name: "", seriesInterval: .seconds(1))
        heap.reserveCapacity(capacity)
    }

    /// Packets held (scheduled and not yet returned by `popDue`).
    public var heldCount: Int { heap.count }

    /// When the next held packet is due; nil when none is held.
    public var nextRelease: Timestamp? { heap.first.map { Timestamp(nanoseconds: $0.release) } }

    /// Decides the fate of an IP packet that arrived at `now`, held in the caller's `slot`.
    ///
    /// A corrupted packet has one byte flipped here, and a CE mark is written into its IP header
    /// here (with the IPv4 header checksum updated), so the caller sends the bytes as they are.
    /// - Parameter packet: the IP packet (what follows the Ethernet header); the link counts its
    ///   length plus the model's `overheadBytes`.
    public func receive(_ packet: UnsafeMutableRawBufferPointer, slot: Int32, at now: Timestamp) -> Verdict {
        counters.received.add(packet.count)
        switch link.offer(bytes: packet.count, at: now) {
        case .dropped(let reason):
            let cause = EmulatorDropCause(reason)
            counters.recordDrop(cause)
            return .dropped(cause)
        case .accepted(let arrival):
            if let index = link.lastCorruptedByte {
                packet[index] ^= 0xFF
                counters.corrupted += 1
            }
            if link.model.ecnMarkingThreshold != nil, let ecn = Self.ecn(of: UnsafeRawBufferPointer(packet)),
                link.marking(ecn) == .ce, ecn != .ce
            {
                Self.markCE(packet)
                counters.ceMarked += 1
            }
            push(Held(release: arrival.nanoseconds, sequence: sequence, enteredAt: now, bytes: Int32(packet.count), slot: slot))
            sequence &+= 1
            return .scheduled(release: arrival)
        }
    }

    /// Counts a drop the caller made before or after the link (no buffer, oversize, send failed,
    /// kernel socket drops).
    public func recordDrop(_ cause: EmulatorDropCause, count: Int = 1) {
        counters.recordDrop(cause, count: count)
    }

    /// The next held packet due at or before `now`, in release order; nil when none is due.
    /// Each packet is returned once; one caught by an outage comes with `deliver` false (and is
    /// counted as an outage drop).
    public func popDue(at now: Timestamp) -> Release? {
        guard let top = heap.first, top.release <= now.nanoseconds else { return nil }
        pop()
        let due = Timestamp(nanoseconds: top.release)
        let delivered = link.complete(bytes: Int(top.bytes), enteredAt: top.enteredAt, at: due)
        if delivered {
            counters.forwarded.add(Int(top.bytes))
        } else {
            counters.recordDrop(.outage)
        }
        return Release(slot: top.slot, due: due, deliver: delivered)
    }

    /// Moves the link's clock (outages that began empty its queue); call before reading
    /// `link.statistics`.
    public func advance(to now: Timestamp) { link.advance(to: now) }

    // MARK: IP header

    /// The ECN field of an IPv4 or IPv6 packet; nil for anything else (ARP, a short packet).
    public static func ecn(of packet: UnsafeRawBufferPointer) -> ECNCodepoint? {
        guard packet.count >= 20 else { return nil }
        let bits: UInt8
        switch packet[0] >> 4 {
        case 4: bits = packet[1] & 0x03
        case 6 where packet.count >= 40: bits = (packet[1] >> 4) & 0x03
        default: return nil
        }
        switch bits {
        case 1: return .ect1
        case 2: return .ect0
        case 3: return .ce
        default: return .notECT
        }
    }

    /// Sets the ECN field of an IPv4 or IPv6 packet to CE (RFC 3168), updating the IPv4 header
    /// checksum incrementally (RFC 1624: HC' = ~(~HC + ~m + m')).
    public static func markCE(_ packet: UnsafeMutableRawBufferPointer) {
        guard packet.count >= 20 else { return }
        switch packet[0] >> 4 {
        case 4:
            let oldWord = UInt16(packet[0]) << 8 | UInt16(packet[1])
            packet[1] |= 0x03
            let newWord = UInt16(packet[0]) << 8 | UInt16(packet[1])
            let checksum = UInt16(packet[10]) << 8 | UInt16(packet[11])
            var sum = UInt32(~checksum) + UInt32(~oldWord) + UInt32(newWord)
            sum = (sum & 0xFFFF) + (sum >> 16)
            sum = (sum & 0xFFFF) + (sum >> 16)
            let updated = ~UInt16(sum)
            packet[10] = UInt8(updated >> 8)
            packet[11] = UInt8(updated & 0xFF)
        case 6 where packet.count >= 40:
            packet[1] |= 0x30
        default:
            return
        }
    }

    // MARK: Heap

    private func push(_ element: Held) {
        heap.append(element)
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard heap[i].precedes(heap[parent]) else { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    private func pop() {
        let last = heap.removeLast()
        guard !heap.isEmpty else { return }
        heap[0] = last
        var i = 0
        while true {
            let l = 2 * i + 1
            let r = l + 1
            var best = i
            if l < heap.count && heap[l].precedes(heap[best]) { best = l }
            if r < heap.count && heap[r].precedes(heap[best]) { best = r }
            guard best != i else { return }
            heap.swapAt(i, best)
            i = best
        }
    }
}
