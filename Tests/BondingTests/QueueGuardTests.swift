import Congestion
// The queue guard: a path whose rate fell behind a big queue is limited to what it delivers,
// and a healthy or merely jittery path is left alone.
import XCTest

@testable import Bonding

final class QueueGuardTests: XCTestCase {
    private func ms(_ v: UInt64) -> Duration { .milliseconds(v) }

    /// rate in Mbit/s.
    private func path(cwnd: Int, srtt: UInt64, min: UInt64, variation: UInt64 = 1, mbps: Double) -> PathSnapshot {
        PathSnapshot(
            id: 0, congestionWindow: cwnd, smoothedRTT: ms(srtt), minRTT: ms(min), rttVariation: ms(variation),
            deliveryRate: mbps * 1e6 / 8)
    }

    func testBudgetIsHalfTheSlowestMinimumRTTAtLeastFiveMilliseconds() {
        let paths = [path(cwnd: 1, srtt: 10, min: 10, mbps: 50), path(cwnd: 1, srtt: 40, min: 40, mbps: 50)]
        XCTAssertEqual(QueueGuard.budget(for: paths), ms(20))
        XCTAssertEqual(QueueGuard.budget(for: [path(cwnd: 1, srtt: 4, min: 4, mbps: 50)]), ms(5))
    }

    func testHealthyPathKeepsItsWindow() {
        var g = QueueGuard()
        // BBR at 50 Mbit/s, 40 ms: cwnd = 2 BDP = 500 kB, a little queue.
        let p = path(cwnd: 500_000, srtt: 45, min: 40, mbps: 50)
        XCTAssertEqual(g.window(for: p, budget: ms(20)), 500_000)
        XCTAssertFalse(g.isDraining)
    }

    func testRateDropBehindABigQueueIsLimitedToTheDeliveredRate() {
        var g = QueueGuard()
        // 50 -> 5 Mbit/s: the queue holds 400 ms, the controller still has its 500 kB window.
        let dropped = path(cwnd: 500_000, srtt: 440, min: 40, variation: 20, mbps: 5)
        let w = g.window(for: dropped, budget: ms(20))
        XCTAssertTrue(g.isDraining)
        // 5 Mbit/s x (40 ms + 10 ms + 2 x 20 ms of RTT variation) = 56 250 bytes.
        XCTAssertEqual(w, 56_250)
        // The queue drains (RTT back near the minimum, variation 1 ms) but the window is still
        // stale: keep limiting, to 5 Mbit/s x (40 + 10 + 2) ms.
        XCTAssertEqual(g.window(for: path(cwnd: 500_000, srtt: 45, min: 40, mbps: 5), budget: ms(20)), 32_500)
        // The controller caught up (cwnd <= 2 x the supported window): let go.
        XCTAssertEqual(g.window(for: path(cwnd: 60_000, srtt: 45, min: 40, mbps: 5), budget: ms(20)), 60_000)
        XCTAssertFalse(g.isDraining)
    }

    func testAJitteryPathHeldByTheGuardIsNotStarvedRoundTripAfterRoundTrip() {
        var g = QueueGuard()
        // LTE: 30 Mbit/s, 25 ms minimum RTT, ±15 ms of jitter (sRTT 40 ms, variation 7 ms), the
        // guard engaged once a queue stood. While it holds the path, the path delivers its
        // allowed window per smoothed RTT, and that becomes its measured rate.
        var mbps = 30.0
        for _ in 0..<30 {
            let w = g.window(for: path(cwnd: 2_000_000, srtt: 90, min: 25, variation: 7, mbps: mbps), budget: ms(12))
            XCTAssertTrue(g.isDraining)
            mbps = min(30, Double(w) * 8 / 1e6 / 0.040)
        }
        XCTAssertGreaterThan(mbps, 29, "the limit covers the RTT the path really has: the rate holds")
    }

    func testJitteryPathIsNotMistakenForAQueue() {
        var g = QueueGuard()
        // A radio link wandering 15 ms above a 27 ms minimum, with a rate estimate lagging 2x.
        let p = path(cwnd: 236_000, srtt: 50, min: 27, variation: 3, mbps: 23)
        XCTAssertEqual(g.window(for: p, budget: ms(14)), 236_000)
        XCTAssertFalse(g.isDraining)
    }

    func testNeverBelowTwoPackets() {
        var g = QueueGuard()
        let p = path(cwnd: 500_000, srtt: 900, min: 40, variation: 20, mbps: 0.1)
        XCTAssertEqual(g.window(for: p, budget: ms(20)), QueueGuard.minimumWindow)
    }

    func testUnknownRatesAreLeftAlone() {
        var g = QueueGuard()
        XCTAssertEqual(g.window(for: path(cwnd: 500_000, srtt: 900, min: 40, mbps: 0), budget: ms(20)), 500_000)
    }
}
