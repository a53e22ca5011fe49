// RangeSet (received packet numbers, acknowledged stream bytes) against a plain set of values:
// random inserts and removals keep the same members, and the ranges stay sorted, disjoint and
// not adjacent. remove works in place (it runs for every ACK of an ACK).
import XCTest

@testable import QUIC

final class RangeSetTests: XCTestCase {
    func testRandomInsertsAndRemovalsMatchASetOfValues() {
        let rng = SeededRandom(seed: 17)
        for _ in 0..<200 {
            var set = RangeSet()
            var model = Set<UInt64>()
            for _ in 0..<60 {
                let lo = UInt64(rng.next(below: 200))
                let len = UInt64(rng.next(below: 12))
                let r = lo...(lo + len)
                if rng.next(below: 3) == 0 {
                    set.remove(r)
                    model.subtract(r)
                } else {
                    set.insert(r)
                    model.formUnion(r)
                }
                var members = Set<UInt64>()
                for x in set.ranges { members.formUnion(x) }
                XCTAssertEqual(members, model, "after \(r)")
                for (a, b) in zip(set.ranges, set.ranges.dropFirst()) {
                    XCTAssertLessThan(a.upperBound &+ 1, b.lowerBound, "ranges \(a) and \(b) sorted, disjoint, not adjacent")
                }
            }
        }
    }

    func testRemoveBelowTrimsTheLowRanges() {
        var set = RangeSet()
        set.insert(1...3)
        set.insert(6...9)
        set.insert(12...12)
        set.removeBelow(7)
        XCTAssertEqual(set.ranges, [7...9, 12...12])
        set.removeBelow(100)
        XCTAssertTrue(set.ranges.isEmpty)
    }
}
