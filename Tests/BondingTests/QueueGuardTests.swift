import Congestion
// The queue guard: a path whose rate fell behind a big queue is limited to what it delivers,
// and a healthy or merely jittery path is left alone.
import XCTest

@testable import Bonding

final class QueueGuardTests: XCTestCase {
    private func ms(_ v: UInt64) -> Duration { .milliseconds(v) }
    private let t0 = Timestamp.zero + .seconds(10)

    /// rate in Mbit/s.
    /// rate in Mbit/s; in flight: the whole window unless said (a busy path).
    private func path(
        cwnd: Int, srtt: UInt64, min: UInt64, variation: UInt64 = 1, mbps: Double, inFlight: Int? = nil
    ) -> PathSnapshot {
        PathSnapshot(
            id: 0, congestionWindow: cwnd, bytesInFlight: inFlight ?? cwnd, smoothedRTT: ms(srtt), minRTT: ms(min),
            rttVariation: ms(variation), deliveryRate: mbps * 1e6 / 8)
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
        XCTAssertEqual(g.window(for: p, budget: ms(20), now: t0), 500_000)
        XCTAssertFalse(g.isDraining)
    }

    func testRateDropBehindABigQueueIsLimitedToTheDeliveredRate() {
        var g = QueueGuard()
        // 50 -> 5 Mbit/s: the queue holds 400 ms, the controller still has its 500 kB window.
        let dropped = path(cwnd: 500_000, srtt: 440, min: 40, variation: 20, mbps: 5)
        let w = g.window(for: dropped, budget: ms(20), now: t0)
        XCTAssertTrue(g.isDraining)
        // 5 Mbit/s x (40 ms + 10 ms + 2 x 20 ms of RTT variation) = 56 250 bytes, and one packet.
        XCTAssertEqual(w, 56_250 + QueueGuard.probeAllowance)
        // The queue drains (RTT back near the minimum, variation 1 ms) but the window is still
        // stale: keep limiting, to 5 Mbit/s x (40 + 10 + 2) ms and one packet.
        XCTAssertEqual(
            g.window(for: path(cwnd: 500_000, srtt: 45, min: 40, mbps: 5), budget: ms(20), now: t0), 32_500 + QueueGuard.probeAllowance)
        // With no queue for a round trip, a quarter more; when the queue comes back (sRTT 100
        // ms), the rate's window again.
        XCTAssertEqual(
            g.window(for: path(cwnd: 500_000, srtt: 45, min: 40, mbps: 5), budget: ms(20), now: t0 + ms(45)),
            (32_500 + QueueGuard.probeAllowance) * 5 / 4)
        XCTAssertEqual(
            g.window(for: path(cwnd: 500_000, srtt: 100, min: 40, mbps: 5), budget: ms(20), now: t0 + ms(90)),
            32_500 + QueueGuard.probeAllowance)
        XCTAssertTrue(g.isDraining)
        // The controller caught up (cwnd <= 2 x the supported window): let go.
        XCTAssertEqual(g.window(for: path(cwnd: 60_000, srtt: 45, min: 40, mbps: 5), budget: ms(20), now: t0), 60_000)
        XCTAssertFalse(g.isDraining)
    }

    func testAQueueThatIsNotOursIsLeftAlone() {
        var g = QueueGuard()
        // The VPS's side of a clean 50 Mbit/s LTE path while the router uploads over it: the
        // VPS sends only acknowledgements (a few packets in flight, a delivery rate of 0.5
        // Mbit/s) and their acknowledgements wait in the saturated upload's queue (sRTT 40 ms
        // against a 19 ms minimum), while BBR keeps its 285 kB window. Held to that rate, the
        // path would deliver no more and never be let go: the download that follows took the
        // lossy path instead (lab lte-jitter: inner QUIC 28 → 3 Mbit/s).
        let acksOnly = path(cwnd: 285_000, srtt: 40, min: 19, mbps: 0.5, inFlight: 1_300)
        XCTAssertEqual(g.window(for: acksOnly, budget: ms(13), now: t0), 285_000)
        XCTAssertFalse(g.isDraining)
        // The same signs with the window's worth of our own packets in the queue: held.
        XCTAssertLessThan(g.window(for: path(cwnd: 285_000, srtt: 40, min: 19, mbps: 0.5), budget: ms(13), now: t0), 285_000)
        XCTAssertTrue(g.isDraining)
    }

    func testAHeldPathWithRoomGrowsOutOfTheGuard() {
        var g = QueueGuard()
        // Caught while its RTT counted another queue (40 ms against 19), then held: the path
        // really carries 50 Mbit/s at 21 ms. Each round trip it delivers the whole packets
        // (1279 bytes: an inner QUIC download's) that its allowed window holds.
        var window = g.window(for: path(cwnd: 324_000, srtt: 40, min: 19, mbps: 0.5), budget: ms(13), now: t0)
        XCTAssertTrue(g.isDraining)
        var rounds = 0
        var now = t0
        while g.isDraining && rounds < 40 {
            // What it delivered is what it was given: the scheduler sent the rest elsewhere.
            let delivered = window / 1279 * 1279
            let mbps = min(50, Double(delivered) * 8 / 1e6 / 0.021)
            now = now + ms(21)
            window = g.window(for: path(cwnd: 324_000, srtt: 21, min: 19, mbps: mbps, inFlight: delivered), budget: ms(13), now: now)
            rounds += 1
        }
        XCTAssertFalse(g.isDraining, "held at \(window) bytes after \(rounds) round trips")
        XCTAssertLessThan(rounds, 20)
        XCTAssertEqual(window, 324_000)
    }

    func testAJitteryPathHeldByTheGuardIsNotStarvedRoundTripAfterRoundTrip() {
        var g = QueueGuard()
        // LTE: 30 Mbit/s, 25 ms minimum RTT, ±15 ms of jitter (sRTT 40 ms, variation 7 ms), the
        // guard engaged once a queue stood. While it holds the path, the path delivers its
        // allowed window per smoothed RTT, and that becomes its measured rate.
        var mbps = 30.0
        for _ in 0..<30 {
            let w = g.window(for: path(cwnd: 2_000_000, srtt: 90, min: 25, variation: 7, mbps: mbps), budget: ms(12), now: t0)
            XCTAssertTrue(g.isDraining)
            mbps = min(30, Double(w) * 8 / 1e6 / 0.040)
        }
        XCTAssertGreaterThan(mbps, 29, "the limit covers the RTT the path really has: the rate holds")
    }

    func testJitteryPathIsNotMistakenForAQueue() {
        var g = QueueGuard()
        // A radio link wandering 15 ms above a 27 ms minimum, with a rate estimate lagging 2x.
        let p = path(cwnd: 236_000, srtt: 50, min: 27, variation: 3, mbps: 23)
        XCTAssertEqual(g.window(for: p, budget: ms(14), now: t0), 236_000)
        XCTAssertFalse(g.isDraining)
    }

    func testNeverBelowTwoPackets() {
        var g = QueueGuard()
        let p = path(cwnd: 500_000, srtt: 900, min: 40, variation: 20, mbps: 0.1)
        XCTAssertEqual(g.window(for: p, budget: ms(20), now: t0), QueueGuard.minimumWindow)
    }

    func testUnknownRatesAreLeftAlone() {
        var g = QueueGuard()
        XCTAssertEqual(g.window(for: path(cwnd: 500_000, srtt: 900, min: 40, mbps: 0), budget: ms(20), now: t0), 500_000)
    }
}
