// Westwood+ (Grieco & Mascolo 2004): the bandwidth estimate and the loss response against known
// delivery patterns, then Westwood+ and NewReno on the same lossy model link
// (`CubicTestBottleneck`, defined in CubicTests.swift).
import XCTest

@testable import Congestion

private let mss = 1200

private func ms(_ v: UInt64) -> Duration { .milliseconds(v) }

/// Drives a steady delivery pattern: every `every`, one ACK for `packets` MSS-sized packets sent one
/// RTT earlier, with a fixed RTT. The window is reported full unless `priorInFlight` says otherwise.
private struct WestwoodAckPattern {
    let cc: Westwood
    var now = Timestamp(nanoseconds: 1_000_000_000)
    var rtt = ms(40)

    mutating func run(acks: Int, packets: Int, every: Duration, priorInFlight: Int? = nil) {
        for _ in 0..<acks {
            now = now + every
            let sample = RTTSample(latest: rtt, smoothed: rtt, minimum: rtt, variation: rtt / 4)
            let prior = priorInFlight ?? max(cc.congestionWindow, packets * mss)
            var inFlight = prior
            for _ in 0..<packets {
                inFlight -= mss
                cc.onPacketAcked(AckedPacketInfo(sentBytes: mss, timeSent: now - rtt), rtt: sample, bytesInFlight: inFlight, now: now)
            }
            cc.onAckProcessed(
                AckSummary(
                    now: now, ackedBytes: packets * mss, priorBytesInFlight: prior, bytesInFlight: inFlight,
                    rtt: sample, hasNewRTTSample: true, rateSample: nil))
        }
    }
}

final class WestwoodTests: XCTestCase {
    func testSsthreshAfterLossIsBandwidthEstimateTimesMinimumRTT() {
        let cc = Westwood(maxDatagramSize: mss)
        var p = WestwoodAckPattern(cc: cc)
        // 3 packets every 10 ms: 360 000 B/s. The first ACK opens the first 40 ms interval.
        p.run(acks: 101, packets: 3, every: ms(10))
        XCTAssertEqual(cc.bandwidthEstimate, 360_000, accuracy: 1e-6)
        XCTAssertGreaterThan(cc.congestionWindow, 100_000, "slow start ran well past the pipe size")
        cc.onCongestionEvent(lostPacketSentTime: p.now - ms(5), now: p.now)
        // BWE × RTT_min = 360 000 B/s × 40 ms.
        XCTAssertEqual(cc.ssthresh, 14_400)
        XCTAssertEqual(cc.congestionWindow, 14_400, "cwnd = min(cwnd, ssthresh)")
    }

    func testBandwidthEstimateIsOneSamplePerRTTFilteredSevenEighthsOneEighth() {
        let cc = Westwood(maxDatagramSize: mss)
        var p = WestwoodAckPattern(cc: cc)
        p.run(acks: 41, packets: 3, every: ms(10))  // ten 40 ms intervals at 360 000 B/s
        XCTAssertEqual(cc.bandwidthEstimate, 360_000, accuracy: 1e-6)
        // A loss ends slow start; from here the samples are filtered.
        cc.onCongestionEvent(lostPacketSentTime: p.now - ms(5), now: p.now)
        XCTAssertLessThanOrEqual(cc.congestionWindow, cc.ssthresh)
        p.run(acks: 3, packets: 6, every: ms(10))
        XCTAssertEqual(cc.bandwidthEstimate, 360_000, accuracy: 1e-6, "no sample before a whole RTT has passed")
        p.run(acks: 1, packets: 6, every: ms(10))  // one interval at 720 000 B/s
        XCTAssertEqual(cc.bandwidthEstimate, 7.0 / 8 * 360_000 + 1.0 / 8 * 720_000, accuracy: 1e-6)
        p.run(acks: 4, packets: 6, every: ms(10))
        XCTAssertEqual(cc.bandwidthEstimate, 7.0 / 8 * 405_000 + 1.0 / 8 * 720_000, accuracy: 1e-6)
    }

    func testInSlowStartEachSampleReplacesTheEstimate() {
        // The 7/8 filter would trail a slow start's climbing samples (see Westwood.swift).
        let cc = Westwood(maxDatagramSize: mss)
        var p = WestwoodAckPattern(cc: cc)
        p.run(acks: 41, packets: 3, every: ms(10))
        XCTAssertEqual(cc.hystartPhase, .slowStart)
        p.run(acks: 4, packets: 6, every: ms(10))  // one interval at 720 000 B/s
        XCTAssertEqual(cc.bandwidthEstimate, 720_000, accuracy: 1e-6)
        XCTAssertLessThan(cc.congestionWindow, cc.ssthresh, "still in slow start")
    }

    func testApplicationLimitedIntervalsDoNotLowerTheEstimate() {
        let cc = Westwood(maxDatagramSize: mss)
        var p = WestwoodAckPattern(cc: cc)
        p.run(acks: 41, packets: 3, every: ms(10))
        let window = cc.congestionWindow
        p.run(acks: 40, packets: 1, every: ms(10), priorInFlight: 2 * mss)
        XCTAssertEqual(cc.bandwidthEstimate, 360_000, accuracy: 1e-6, "app-limited samples say nothing about the path")
        XCTAssertEqual(cc.congestionWindow, window, "RFC 9002 §7.8: no growth while app-limited")
    }

    func testLossBeforeAnyEstimateHalvesTheWindow() {
        let cc = Westwood(maxDatagramSize: mss)
        cc.onCongestionEvent(lostPacketSentTime: .zero, now: Timestamp(nanoseconds: 1_000_000))
        XCTAssertEqual(cc.congestionWindow, 6_000, "no bandwidth estimate yet: NewReno's half")
    }

    func testOnlyOneReductionPerRoundTrip() {
        let cc = Westwood(maxDatagramSize: mss)
        var p = WestwoodAckPattern(cc: cc)
        p.run(acks: 101, packets: 3, every: ms(10))
        let t = p.now
        cc.onCongestionEvent(lostPacketSentTime: t - ms(5), now: t)
        XCTAssertEqual(cc.congestionWindow, 14_400)
        // The ACKs of packets sent before the recovery start don't grow the window...
        p.run(acks: 3, packets: 3, every: ms(10))
        XCTAssertEqual(cc.congestionWindow, 14_400, "no growth for packets sent before recovery")
        // ...and their losses don't reduce it again.
        cc.onCongestionEvent(lostPacketSentTime: t - ms(1), now: p.now)
        XCTAssertEqual(cc.congestionWindow, 14_400)
    }

    func testRenoGrowthOutsideLoss() {
        let cc = Westwood(maxDatagramSize: mss)
        var p = WestwoodAckPattern(cc: cc)
        p.run(acks: 1, packets: 4, every: ms(10))
        XCTAssertEqual(cc.congestionWindow, 12_000 + 4 * mss, "slow start: + acked bytes")
        p.run(acks: 100, packets: 3, every: ms(10))
        cc.onCongestionEvent(lostPacketSentTime: p.now - ms(5), now: p.now)
        XCTAssertEqual(cc.congestionWindow, 14_400)
        p.now = p.now + ms(40)
        // Congestion avoidance: one datagram per window of acknowledged bytes (12 packets = 14 400 B).
        p.run(acks: 11, packets: 1, every: .microseconds(100))
        XCTAssertEqual(cc.congestionWindow, 14_400)
        p.run(acks: 1, packets: 1, every: .microseconds(100))
        XCTAssertEqual(cc.congestionWindow, 14_400 + mss)
    }

    func testPersistentCongestionCollapsesToMinimumWithBandwidthDelayThreshold() {
        let cc = Westwood(maxDatagramSize: mss)
        var p = WestwoodAckPattern(cc: cc)
        p.run(acks: 101, packets: 3, every: ms(10))
        cc.onCongestionEvent(lostPacketSentTime: p.now - ms(5), now: p.now)
        cc.onPersistentCongestion(now: p.now)
        XCTAssertEqual(cc.congestionWindow, 2 * mss)
        XCTAssertEqual(cc.ssthresh, 14_400, "slow start climbs back to BWE × RTT_min")
    }

    func testCoupledCongestionAvoidanceUsesTheLinkedIncrease() {
        let group = CongestionCoupling(algorithm: .lia)
        let a = Westwood(maxDatagramSize: mss, coupling: group.join())
        let b = Westwood(maxDatagramSize: mss, coupling: group.join())
        var pa = WestwoodAckPattern(cc: a)
        var pb = WestwoodAckPattern(cc: b)
        pa.run(acks: 101, packets: 3, every: ms(10))
        pb.run(acks: 101, packets: 3, every: ms(10))
        let beforeLoss = a.congestionWindow
        a.onCongestionEvent(lostPacketSentTime: pa.now - ms(5), now: pa.now)
        b.onCongestionEvent(lostPacketSentTime: pb.now - ms(5), now: pb.now)
        // While coupled the decrease is the coupling's (LIA: Reno's half), not BWE × RTT_min.
        XCTAssertEqual(a.congestionWindow, beforeLoss / 2)
        let w0 = a.congestionWindow
        pa.now = pa.now + ms(40)
        pb.now = pb.now + ms(40)
        pb.run(acks: 1, packets: 1, every: .microseconds(100))
        XCTAssertEqual(a.coupling?.bytesSinceLastLoss, 0)
        // Two equal paths under LIA: α = 1/2, so a window of ACKs adds a quarter datagram, not one.
        pa.run(acks: w0 / mss, packets: 1, every: .microseconds(100))
        XCTAssertEqual(a.congestionWindow - w0, mss / 4, accuracy: 2, "LIA increase over one window")
    }

    /// 1 % random loss on a 50 Mbit/s, 40 ms path (1-BDP queue): NewReno halves on every loss and
    /// stays far below the link rate; Westwood+ only falls back to the measured pipe.
    func testWestwoodKeepsALossyLinkFarBusierThanNewReno() {
        let config = CubicTestBottleneck.Config(
            rateBitsPerSecond: 50e6, rtt: ms(40), queueBytes: 250_000,
            randomLoss: 0.01, seed: 42)
        let westwood = CubicTestBottleneck(config: config, controller: Westwood(maxDatagramSize: 1200))
            .run(for: .seconds(20), measuringFrom: .seconds(5))
        let newReno = CubicTestBottleneck(config: config, controller: NewReno(maxDatagramSize: 1200))
            .run(for: .seconds(20), measuringFrom: .seconds(5))
        print("Westwood+ 50 Mbit/s 40 ms 1 % loss: \(westwood)")
        print("NewReno   50 Mbit/s 40 ms 1 % loss: \(newReno)")
        print("Westwood+/NewReno utilisation ratio: \((westwood.utilisation / newReno.utilisation * 100).rounded() / 100)")
        XCTAssertGreaterThan(westwood.randomDrops, 100, "the loss really is there")
        XCTAssertGreaterThan(newReno.randomDrops, 30)
        XCTAssertGreaterThan(westwood.utilisation, newReno.utilisation, "Westwood+ must beat NewReno under random loss")
        XCTAssertGreaterThan(westwood.utilisation, 2 * newReno.utilisation, "and by a wide margin")
    }

    func testWestwoodFillsALosslessLink() {
        let config = CubicTestBottleneck.Config(rateBitsPerSecond: 50e6, rtt: ms(40), queueBytes: 250_000)
        let report = CubicTestBottleneck(config: config, controller: Westwood(maxDatagramSize: 1200))
            .run(for: .seconds(20), measuringFrom: .seconds(5))
        print("Westwood+ 50 Mbit/s 40 ms 1-BDP queue, no random loss: \(report)")
        XCTAssertGreaterThanOrEqual(report.utilisation, 0.90)
    }
}
