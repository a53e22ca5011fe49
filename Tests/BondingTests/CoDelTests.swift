import Congestion
// CoDel (RFC 8289) on its own, with exact times: no drop below target or for a single packet,
// the first drop one interval after the sojourn stayed above target, then drops at interval /
// sqrt(count), and leaving the dropping state as soon as a packet is below target again.
import XCTest

@testable import Bonding

final class CoDelTests: XCTestCase {
    let ms = Duration.milliseconds(1)
    func at(_ t: UInt64) -> Timestamp { Timestamp(nanoseconds: t * 1_000_000) }

    func testBelowTargetOrASinglePacketIsNeverDropped() {
        var c = CoDel()
        for t in 0..<1000 as Range<UInt64> {
            XCTAssertFalse(c.shouldDrop(sojourn: ms * 4, backlogBytes: 100_000, maxPacketBytes: 1500, now: at(t)))
            XCTAssertFalse(
                c.shouldDrop(sojourn: ms * 50, backlogBytes: 1500, maxPacketBytes: 1500, now: at(t)),
                "RFC 8289 §4.2: a queue of one packet is not dropped from")
        }
        XCTAssertEqual(c.drops, 0)
    }

    func testDropsStartOneIntervalAboveTargetAndQuickenWithTheSquareRootOfTheCount() {
        var c = CoDel()
        var drops: [UInt64] = []
        // A standing queue of 20 ms: one packet leaves every millisecond.
        for t in 0..<400 as Range<UInt64> {
            if c.shouldDrop(sojourn: ms * 20, backlogBytes: 30_000, maxPacketBytes: 1500, now: at(t)) { drops.append(t) }
        }
        // First above target at 0: the first drop at 100 ms enters the dropping state with count 1
        // (next one interval later, 200); then 100/√2 ≈ 70.7 ms, 100/√3 ≈ 57.7 ms, 100/√4 = 50 ms.
        XCTAssertEqual(Array(drops.prefix(5)), [100, 200, 271, 329, 379])
        XCTAssertTrue(c.isDropping)
        XCTAssertEqual(c.drops, UInt64(drops.count))
    }

    func testAnAllowanceForPathsOfUnequalDelayRaisesTargetAndInterval() {
        // Fibre 5 ms and satellite 300 ms one way: bulk may wait 295 ms for the fibre by choice.
        var c = CoDel()
        for t in 0..<2000 as Range<UInt64> {
            XCTAssertFalse(
                c.shouldDrop(sojourn: ms * 200, backlogBytes: 2_500_000, maxPacketBytes: 1500, now: at(t), allowance: ms * 295),
                "200 ms is below the 5 + 295 ms target")
        }
        var drops: [UInt64] = []
        for t in 2000..<4000 as Range<UInt64> {
            if c.shouldDrop(sojourn: ms * 320, backlogBytes: 4_000_000, maxPacketBytes: 1500, now: at(t), allowance: ms * 295) {
                drops.append(t)
            }
        }
        // Above target from 2000: the first drop one interval (100 + 2 × 295 ms) later, the next
        // one interval after that, then 690/√2 ≈ 487.9 ms.
        XCTAssertEqual(Array(drops.prefix(3)), [2690, 3380, 3868])
        // Without the allowance the same queue is dropped from 100 ms after it rose above 5 ms.
        var plain = CoDel()
        XCTAssertFalse(plain.shouldDrop(sojourn: ms * 200, backlogBytes: 2_500_000, maxPacketBytes: 1500, now: at(0)))
        XCTAssertTrue(plain.shouldDrop(sojourn: ms * 200, backlogBytes: 2_500_000, maxPacketBytes: 1500, now: at(100)))
    }

    func testBelowTargetEndsTheDroppingStateAndAQuickReturnResumesTheDropRate() {
        var c = CoDel()
        var t: UInt64 = 0
        func run(_ n: UInt64, sojourn: Duration) -> [UInt64] {
            var d: [UInt64] = []
            for _ in 0..<n {
                if c.shouldDrop(sojourn: sojourn, backlogBytes: 30_000, maxPacketBytes: 1500, now: at(t)) { d.append(t) }
                t += 1
            }
            return d
        }
        XCTAssertEqual(run(400, sojourn: ms * 20), [100, 200, 271, 329, 379])
        XCTAssertTrue(c.isDropping)
        XCTAssertEqual(run(10, sojourn: ms * 1), [])
        XCTAssertFalse(c.isDropping, "a packet below target ends the dropping state")
        // Above target again soon after: after one interval, dropping resumes near the rate reached
        // before (count 5 - 1 = 4, RFC 8289 §5.6) rather than from one drop per interval.
        let again = run(300, sojourn: ms * 20)
        XCTAssertEqual(again.first, 510)
        XCTAssertEqual(again[1] - again[0], 50, "interval / sqrt(4) = 50 ms, not 100 ms")
    }

    func testAnEmptiedQueueForgetsItsTimeAboveTarget() {
        var c = CoDel()
        for t in 0..<99 as Range<UInt64> {
            XCTAssertFalse(c.shouldDrop(sojourn: ms * 20, backlogBytes: 30_000, maxPacketBytes: 1500, now: at(t)))
        }
        c.queueEmptied()
        XCTAssertFalse(
            c.shouldDrop(sojourn: ms * 20, backlogBytes: 30_000, maxPacketBytes: 1500, now: at(100)),
            "the interval starts again after the queue ran empty")
        XCTAssertTrue(c.shouldDrop(sojourn: ms * 20, backlogBytes: 30_000, maxPacketBytes: 1500, now: at(200)))
    }
}
