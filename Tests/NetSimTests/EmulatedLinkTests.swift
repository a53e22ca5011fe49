// tquic-netem's core without sockets: packets in caller-owned slots, exact release times from
// the link's rate, delay, rate changes and jitter; drops counted by cause; the byte flip and the
// CE mark applied to the bytes.
import Congestion
import NetSim
import QUIC
import XCTest

final class EmulatedLinkTests: XCTestCase {
    /// Buffers standing in for the emulator's slots.
    final class Slots {
        var storage: [[UInt8]]
        init(count: Int, size: Int) { storage = Array(repeating: [UInt8](repeating: 0, count: size), count: count) }
        func receive(_ link: EmulatedLink, slot: Int, at time: Timestamp) -> EmulatedLink.Verdict {
            storage[slot].withUnsafeMutableBytes { link.receive($0, slot: Int32(slot), at: time) }
        }
    }

    func link(_ spec: String, seed: UInt64 = 1) throws -> EmulatedLink {
        EmulatedLink(model: try LinkSpecification(parsing: spec).model, seed: seed)
    }

    /// Every release due by `time`: (slot, due, delivered).
    func due(_ link: EmulatedLink, by time: Timestamp) -> [EmulatedLink.Release] {
        var out: [EmulatedLink.Release] = []
        while let r = link.popDue(at: time) { out.append(r) }
        return out
    }

    // MARK: Rate, delay, queue

    func testPacketsLeaveOneSerialisationApartAfterTheDelayAndTheQueueDropsTheExcess() throws {
        // 1250 B at 10 Mbit/s take 1 ms; the queue holds 3000 B waiting, so the fourth of four
        // back-to-back packets does not fit (1250 + 1250 waiting, a third would make 3750).
        let l = try link("a=10mbit,5ms,queue=3000")
        let slots = Slots(count: 4, size: 1250)
        XCTAssertEqual(slots.receive(l, slot: 0, at: .zero), .scheduled(release: ms(6)))
        XCTAssertEqual(slots.receive(l, slot: 1, at: .zero), .scheduled(release: ms(7)))
        XCTAssertEqual(slots.receive(l, slot: 2, at: .zero), .scheduled(release: ms(8)))
        XCTAssertEqual(slots.receive(l, slot: 3, at: .zero), .dropped(.queueFull))
        XCTAssertEqual(l.nextRelease, ms(6))
        XCTAssertEqual(due(l, by: us(5_999)), [], "nothing before its time")
        XCTAssertEqual(due(l, by: us(7_500)), [.init(slot: 0, due: ms(6), deliver: true), .init(slot: 1, due: ms(7), deliver: true)])
        XCTAssertEqual(l.nextRelease, ms(8))
        XCTAssertEqual(due(l, by: ms(9)), [.init(slot: 2, due: ms(8), deliver: true)])
        XCTAssertNil(l.nextRelease)
        XCTAssertEqual(l.counters.received, .init(packets: 4, bytes: 5000))
        XCTAssertEqual(l.counters.forwarded, .init(packets: 3, bytes: 3750))
        XCTAssertEqual(l.counters.dropped(.queueFull), 1)
        XCTAssertEqual(l.counters.summary, "received 4, forwarded 3, dropped 1 (queue 1), corrupted 0, ce 0")
    }

    func testOverheadCountsOnTheWire() throws {
        // 1242 B + overhead 8 = 1250 B: 1 ms at 10 Mbit/s.
        let l = try link("a=10mbit,0,overhead=8")
        let slots = Slots(count: 2, size: 1242)
        XCTAssertEqual(slots.receive(l, slot: 0, at: .zero), .scheduled(release: ms(1)))
        XCTAssertEqual(slots.receive(l, slot: 1, at: .zero), .scheduled(release: ms(2)))
    }

    func testASerialisationThatSpansARateChangeIsExact() throws {
        // 2500 B = 20 000 bits from 1 ms: 10 000 at 10 Mbit/s until 2 ms, 10 000 at 5 Mbit/s: 4 ms.
        let l = try link("a=10mbit,3ms,rate@2ms=5mbit,queue=unlimited")
        let slots = Slots(count: 2, size: 2500)
        XCTAssertEqual(slots.receive(l, slot: 0, at: ms(1)), .scheduled(release: ms(7)))
        XCTAssertEqual(slots.receive(l, slot: 1, at: ms(10)), .scheduled(release: ms(17)), "4 ms at 5 Mbit/s, + 3 ms")
    }

    func testAnUnlimitedLinkWithoutDelayReleasesAtOnce() throws {
        let l = try link("a=unlimited,0")
        let slots = Slots(count: 1, size: 1500)
        XCTAssertEqual(slots.receive(l, slot: 0, at: ms(3)), .scheduled(release: ms(3)))
        XCTAssertEqual(due(l, by: ms(3)), [.init(slot: 0, due: ms(3), deliver: true)])
    }

    // MARK: Loss

    func testRandomLossDropsExactlyTheSeededDrawsAboutTenPercent() throws {
        let seed: UInt64 = 42
        let l = try link("a=unlimited,0,loss=10%", seed: seed)
        let slots = Slots(count: 1, size: 100)
        var lost = 0
        for i in 0..<1000 {
            switch slots.receive(l, slot: 0, at: ms(UInt64(i))) {
            case .dropped(let cause):
                XCTAssertEqual(cause, .randomLoss)
                lost += 1
            case .scheduled: _ = due(l, by: ms(UInt64(i)))
            }
        }
        // The link's loss stream is SimRandom(derive(seed, 1)), one draw per packet.
        var stream = SimRandom(seed: SimRandom.derive(seed, 1))
        let expected = (0..<1000).filter { _ in stream.chance(0.1) }.count
        XCTAssertEqual(lost, expected)
        XCTAssertEqual(l.counters.dropped(.randomLoss), expected)
        XCTAssertEqual(Double(lost), 100, accuracy: 30, "about 10 % of 1000")
        XCTAssertEqual(l.counters.forwarded.packets, 1000 - expected)
    }

    func testBurstLossComesInRuns() throws {
        let l = try link("a=unlimited,0,burst=5%:10", seed: 3)
        let slots = Slots(count: 1, size: 100)
        var runs = 0
        var lost = 0
        var previousLost = false
        for i in 0..<20_000 {
            let dropped = slots.receive(l, slot: 0, at: us(UInt64(i))) == .dropped(.burstLoss)
            if dropped {
                lost += 1
                if !previousLost { runs += 1 }
            } else {
                _ = due(l, by: us(UInt64(i)))
            }
            previousLost = dropped
        }
        XCTAssertEqual(l.counters.dropped(.burstLoss), lost)
        XCTAssertEqual(Double(lost) / 20_000, 0.05, accuracy: 0.02)
        XCTAssertEqual(Double(lost) / Double(runs), 10, accuracy: 3, "mean burst of 10 packets")
    }

    // MARK: Outages

    func testAnOutageDropsWhatArrivesInItAndWhatItCatchesHeld() throws {
        let l = try link("a=unlimited,20ms,outage=100ms-200ms")
        let slots = Slots(count: 4, size: 100)
        XCTAssertEqual(slots.receive(l, slot: 0, at: ms(70)), .scheduled(release: ms(90)))
        XCTAssertEqual(slots.receive(l, slot: 1, at: ms(90)), .scheduled(release: ms(110)), "in flight when the cut comes")
        XCTAssertEqual(due(l, by: ms(95)), [.init(slot: 0, due: ms(90), deliver: true)])
        XCTAssertEqual(slots.receive(l, slot: 2, at: ms(100)), .dropped(.outage))
        XCTAssertEqual(slots.receive(l, slot: 2, at: ms(199)), .dropped(.outage))
        XCTAssertEqual(due(l, by: ms(199)), [.init(slot: 1, due: ms(110), deliver: false)], "held when the cut began: lost")
        XCTAssertEqual(slots.receive(l, slot: 3, at: ms(200)), .scheduled(release: ms(220)), "back at the window's end")
        XCTAssertEqual(due(l, by: ms(220)), [.init(slot: 3, due: ms(220), deliver: true)])
        XCTAssertEqual(l.counters.dropped(.outage), 3)
        XCTAssertEqual(l.counters.forwarded.packets, 2)
    }

    // MARK: Jitter

    func testJitterThatKeepsOrderNeverReleasesALaterPacketFirst() throws {
        let l = try link("a=unlimited,20ms,jitter=10ms", seed: 9)
        let slots = Slots(count: 200, size: 100)
        var releases: [Timestamp] = []
        for i in 0..<200 {
            guard case .scheduled(let release) = slots.receive(l, slot: i, at: us(UInt64(i) * 100)) else { return XCTFail() }
            XCTAssertGreaterThanOrEqual(release, us(UInt64(i) * 100 + 10_000))
            XCTAssertLessThanOrEqual(release, us(UInt64(i) * 100 + 30_000 + 20_000))
            releases.append(release)
        }
        XCTAssertEqual(releases, releases.sorted())
        XCTAssertEqual(due(l, by: seconds(1)).map(\.slot), (0..<200).map(Int32.init), "in arrival order")
    }

    func testReorderingJitterReleasesEachPacketAtItsOwnTimeInThatOrder() throws {
        let l = try link("a=unlimited,20ms,jitter=10ms,reorder", seed: 9)
        let slots = Slots(count: 200, size: 100)
        var release: [Int32: Timestamp] = [:]
        for i in 0..<200 {
            guard case .scheduled(let r) = slots.receive(l, slot: i, at: us(UInt64(i) * 100)) else { return XCTFail() }
            XCTAssertEqual(Double((r - us(UInt64(i) * 100)).nanoseconds), 20e6, accuracy: 10e6)
            release[Int32(i)] = r
        }
        let out = due(l, by: seconds(1))
        XCTAssertEqual(out.map(\.due), out.map(\.due).sorted(), "released in time order")
        XCTAssertEqual(out.map(\.due), out.map { release[$0.slot]! })
        XCTAssertNotEqual(out.map(\.slot), (0..<200).map(Int32.init), "packets 100 µs apart with ±10 ms jitter reorder")
    }

    // MARK: Corruption and ECN

    func testCorruptionFlipsExactlyOneByteOfEachCorruptedPacket() throws {
        let l = try link("a=unlimited,0,corrupt=100%")
        let slots = Slots(count: 1, size: 64)
        for i in 0..<50 {
            slots.storage[0] = [UInt8](repeating: 0x55, count: 64)
            _ = slots.receive(l, slot: 0, at: ms(UInt64(i)))
            XCTAssertEqual(slots.storage[0].filter { $0 != 0x55 }, [0xAA])
            _ = due(l, by: ms(UInt64(i)))
        }
        XCTAssertEqual(l.counters.corrupted, 50)
    }

    /// A 20-byte IPv4 header with a valid checksum and the given ECN bits.
    func ipv4Header(ecn: UInt8) -> [UInt8] {
        var h: [UInt8] = [
            0x45, 0xB8 | ecn, 0x05, 0xDC, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0, 0,
            10, 0, 0, 1, 10, 0, 0, 2,
        ]
        let sum = Self.onesComplementSum(h)
        h[10] = UInt8(~sum >> 8)
        h[11] = UInt8(~sum & 0xFF)
        return h
    }

    static func onesComplementSum(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        for i in stride(from: 0, to: bytes.count, by: 2) { sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1]) }
        while sum >> 16 != 0 { sum = (sum & 0xFFFF) + (sum >> 16) }
        return UInt16(sum)
    }

    func testAnECTPacketThatQueuedPastTheThresholdLeavesCEMarkedWithAValidChecksum() throws {
        // 1500 B at 12 Mbit/s: 1 ms each; the third of three back-to-back packets waits 2 ms.
        let l = try link("a=12mbit,0,ecn=2ms,queue=unlimited")
        let slots = Slots(count: 4, size: 1500)
        for s in 0..<4 { slots.storage[s].replaceSubrange(0..<20, with: ipv4Header(ecn: s == 3 ? 0 : 2)) }
        for s in 0..<4 { _ = slots.receive(l, slot: s, at: .zero) }
        XCTAssertEqual(slots.storage[0][1] & 3, 2, "no wait: still ECT(0)")
        XCTAssertEqual(slots.storage[1][1] & 3, 2, "1 ms: below the threshold")
        XCTAssertEqual(slots.storage[2][1] & 3, 3, "2 ms: CE")
        XCTAssertEqual(slots.storage[3][1] & 3, 0, "not ECN-capable: never marked")
        XCTAssertEqual(Self.onesComplementSum(Array(slots.storage[2][0..<20])), 0xFFFF, "header checksum still valid")
        XCTAssertEqual(l.counters.ceMarked, 1)
    }

    func testCEMarkingOfIPv6SetsTheTrafficClassBits() {
        var packet = [UInt8](repeating: 0, count: 40)
        packet[0] = 0x60
        packet[1] = 0x20  // traffic class low bits 10: ECT(0)
        packet.withUnsafeBytes { XCTAssertEqual(EmulatedLink.ecn(of: $0), .ect0) }
        packet.withUnsafeMutableBytes { EmulatedLink.markCE($0) }
        packet.withUnsafeBytes { XCTAssertEqual(EmulatedLink.ecn(of: $0), .ce) }
        XCTAssertEqual(packet[1], 0x30)
    }

    func testCallerDropsAreCountedByCause() throws {
        let l = try link("a=unlimited,0")
        l.recordDrop(.noBuffer)
        l.recordDrop(.socket, count: 5)
        XCTAssertEqual(l.counters.dropped(.noBuffer), 1)
        XCTAssertEqual(l.counters.dropped(.socket), 5)
        XCTAssertEqual(l.counters.summary, "received 0, forwarded 0, dropped 6 (buffers 1, socket 5), corrupted 0, ce 0")
    }

    func testTheSameSeedGivesTheSameReleases() throws {
        func run() throws -> [EmulatedLink.Verdict] {
            let l = try link("a=20mbit,10ms,jitter=3ms,loss=5%,burst=2%:4,queue=20kb", seed: 5)
            let slots = Slots(count: 1, size: 1000)
            return (0..<500).map { i in
                let v = slots.receive(l, slot: 0, at: us(UInt64(i) * 300))
                _ = due(l, by: us(UInt64(i) * 300))
                return v
            }
        }
        XCTAssertEqual(try run(), try run())
    }
}
