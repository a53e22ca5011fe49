// Delivery-rate estimation (draft-cheng-iccrg-delivery-rate-estimation): samples from a known
// send/ack pattern.
import XCTest

@testable import Congestion

final class DeliveryRateTests: XCTestCase {
    private func t(_ ms: UInt64) -> Timestamp { Timestamp(nanoseconds: ms * 1_000_000) }

    /// Ten 1000-byte packets sent 1 ms apart, each acknowledged 50 ms later: 1 MB/s.
    func testSteadyFlowGivesTheSendRate() {
        var e = DeliveryRateEstimator()
        var snaps: [DeliverySnapshot] = []
        var inFlight = 0
        for i in 0..<10 {
            snaps.append(e.onPacketSent(bytes: 1000, bytesInFlight: inFlight, now: t(UInt64(i))))
            inFlight += 1000
        }
        var last: RateSample?
        for i in 0..<10 {
            e.onPacketAcked(snaps[i], bytes: 1000, timeSent: t(UInt64(i)), now: t(UInt64(50 + i)))
            inFlight -= 1000
            if let s = e.generateSample(minRTT: .milliseconds(0)) { last = s }
        }
        let s = try! XCTUnwrap(last)
        // The last packet: 10000 bytes delivered over max(send 9 ms, ack 59 ms).
        XCTAssertEqual(s.delivered, 10_000)
        XCTAssertEqual(s.interval, .milliseconds(59))
        XCTAssertEqual(s.deliveryRate, 10_000 / 0.059, accuracy: 1)
        XCTAssertFalse(s.isAppLimited)
        XCTAssertEqual(s.rtt, .milliseconds(50))
        XCTAssertEqual(e.delivered, 10_000)
    }

    func testSamplesShorterThanMinRTTAreDiscarded() {
        var e = DeliveryRateEstimator()
        let s0 = e.onPacketSent(bytes: 1000, bytesInFlight: 0, now: t(0))
        e.onPacketAcked(s0, bytes: 1000, timeSent: t(0), now: t(10))
        XCTAssertNil(e.generateSample(minRTT: .milliseconds(20)))
    }

    func testAppLimitedMarkLastsUntilTheBubbleIsDelivered() {
        var e = DeliveryRateEstimator()
        e.onAppLimited(bytesInFlight: 2000)
        XCTAssertTrue(e.isAppLimited)
        let a = e.onPacketSent(bytes: 1000, bytesInFlight: 0, now: t(0))
        XCTAssertTrue(a.isAppLimited)
        e.onPacketAcked(a, bytes: 1000, timeSent: t(0), now: t(40))
        let s = e.generateSample(minRTT: .milliseconds(1))
        XCTAssertEqual(s?.isAppLimited, true)
        XCTAssertTrue(e.isAppLimited, "1000 of the 2000 bytes in flight delivered")
        let b = e.onPacketSent(bytes: 1500, bytesInFlight: 0, now: t(41))
        e.onPacketAcked(b, bytes: 1500, timeSent: t(41), now: t(81))
        XCTAssertFalse(e.isAppLimited)
    }

    func testLossIsCountedIntoTheSample() {
        var e = DeliveryRateEstimator()
        let a = e.onPacketSent(bytes: 1000, bytesInFlight: 0, now: t(0))
        _ = e.onPacketSent(bytes: 1000, bytesInFlight: 1000, now: t(1))
        let c = e.onPacketSent(bytes: 1000, bytesInFlight: 2000, now: t(2))
        XCTAssertEqual(c.bytesInFlight, 3000)
        e.onPacketLost(bytes: 1000)
        e.onPacketAcked(a, bytes: 1000, timeSent: t(0), now: t(40))
        e.onPacketAcked(c, bytes: 1000, timeSent: t(2), now: t(42))
        let s = e.generateSample(minRTT: .milliseconds(1))
        XCTAssertEqual(s?.lost, 1000)
        XCTAssertEqual(s?.txInFlight, 3000)
    }
}
