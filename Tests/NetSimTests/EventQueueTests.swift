// The agenda's ordering: by time, ties in insertion order, whatever the heap does inside.
import Congestion
import NetSim
import XCTest

final class EventQueueTests: XCTestCase {
    func testEventsComeOutInTimeOrder() {
        var queue = EventQueue<String>()
        queue.push("c", at: ms(30))
        queue.push("a", at: ms(10))
        queue.push("b", at: ms(20))
        XCTAssertEqual(queue.nextTime, ms(10))
        XCTAssertEqual(queue.popFirst()?.payload, "a")
        XCTAssertEqual(queue.popFirst()?.payload, "b")
        XCTAssertEqual(queue.popFirst()?.payload, "c")
        XCTAssertNil(queue.popFirst(), "an emptied queue has nothing left")
        XCTAssertTrue(queue.isEmpty)
    }

    func testEventsAtTheSameTimeComeOutInTheOrderTheyWereScheduled() {
        var queue = EventQueue<Int>()
        for i in 0..<100 { queue.push(i, at: ms(5)) }
        queue.push(-1, at: ms(1))
        XCTAssertEqual(queue.popFirst()?.payload, -1)
        let order = (0..<100).map { _ in queue.popFirst()!.payload }
        XCTAssertEqual(order, Array(0..<100), "ties must keep insertion order")
    }

    func testRandomScheduleMatchesAStableSortByTime() {
        var random = SimRandom(seed: 7)
        var queue = EventQueue<Int>()
        var expected: [(time: Timestamp, id: Int)] = []
        for id in 0..<5_000 {
            // Few distinct times, so most events tie with others.
            let time = ms(random.nextInclusive(50))
            queue.push(id, at: time)
            expected.append((time, id))
            // Interleave pops with pushes, as the simulator does.
            if id % 7 == 0, let popped = queue.popFirst() {
                let index = expected.indices.min { a, b in
                    (expected[a].time, expected[a].id) < (expected[b].time, expected[b].id)
                }!
                XCTAssertEqual(popped.payload, expected[index].id)
                expected.remove(at: index)
            }
        }
        let sorted = expected.enumerated().sorted { a, b in
            a.element.time != b.element.time ? a.element.time < b.element.time : a.offset < b.offset
        }.map(\.element.id)
        var drained: [Int] = []
        while let e = queue.popFirst() { drained.append(e.payload) }
        XCTAssertEqual(drained, sorted)
    }

    func testSequenceNumbersIncreaseAcrossClears() {
        var queue = EventQueue<Int>()
        let first = queue.push(1, at: ms(1))
        queue.removeAll()
        let second = queue.push(2, at: ms(1))
        XCTAssertGreaterThan(second, first)
        XCTAssertEqual(queue.count, 1)
    }
}
