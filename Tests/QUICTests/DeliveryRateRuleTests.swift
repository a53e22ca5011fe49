import Congestion
// Which delivery-rate samples enter a path's rate (the bonding scheduler's and the queue guard's
// view of it): every sample that was not application-limited; an application-limited one only
// when it is higher, or when its packet met a standing queue, which is more than the path's own
// jitter.
import XCTest

@testable import QUIC

final class DeliveryRateRuleTests: XCTestCase {
    private func sample(mbps: Double, rttMs: UInt64, appLimited: Bool) -> RateSample {
        RateSample(
            deliveryRate: mbps * 1e6 / 8, delivered: 10_000, interval: .milliseconds(40), isAppLimited: appLimited,
            priorDelivered: 0, lost: 0, txInFlight: 0, rtt: .milliseconds(rttMs))
    }

    private func counts(_ s: RateSample, currentMbps: Double, minMs: UInt64, variationMs: UInt64) -> Bool {
        Connection.countsForDeliveryRate(
            s, current: currentMbps * 1e6 / 8, minRTT: .milliseconds(minMs),
            rttVariation: .milliseconds(variationMs))
    }

    func testAnApplicationLimitedSampleBehindAStandingQueueCounts() {
        // 50 -> 5 Mbit/s behind a 400 ms queue: the sender is metered (application-limited), but
        // the bottleneck is busy: the low rate is the truth.
        XCTAssertTrue(counts(sample(mbps: 5, rttMs: 440, appLimited: true), currentMbps: 50, minMs: 40, variationMs: 20))
    }

    func testJitterIsNoQueue() {
        // LTE, 25 ms minimum, ±15 ms of jitter (variation 7 ms): a 40 ms sample of a path held to a
        // few packets says nothing about its 30 Mbit/s.
        XCTAssertFalse(counts(sample(mbps: 0.5, rttMs: 40, appLimited: true), currentMbps: 25, minMs: 25, variationMs: 7))
        XCTAssertTrue(
            counts(sample(mbps: 0.5, rttMs: 40, appLimited: false), currentMbps: 25, minMs: 25, variationMs: 7),
            "a sample that was not application-limited always counts")
        XCTAssertTrue(
            counts(sample(mbps: 30, rttMs: 40, appLimited: true), currentMbps: 25, minMs: 25, variationMs: 7),
            "nor does jitter hide a higher rate")
    }
}
