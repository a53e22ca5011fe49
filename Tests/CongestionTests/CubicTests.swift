// CUBIC (RFC 9438) and HyStart++ (RFC 9406): the rules one by one against the spec's formulas,
// then the controller on a packet-level model of a bottleneck link. The model
// (`CubicTestBottleneck`, at the end) is shared with WestwoodTests.swift.
import XCTest

@testable import Congestion

private let mss = 1200
private let rtt40 = Duration.milliseconds(40)

private func ms(_ v: UInt64) -> Duration { .milliseconds(v) }
private func rttSample(_ latest: Duration, smoothed: Duration? = nil, min: Duration? = nil) -> RTTSample {
    RTTSample(latest: latest, smoothed: smoothed ?? latest, minimum: min ?? latest, variation: latest / 4)
}

/// One ACK frame acknowledging `packets` MSS-sized packets sent at `sentAt`, with the window
/// reported full on arrival unless `priorInFlight` says otherwise.
private func ack(
    _ cc: CongestionController, packets: Int, sentAt: Timestamp, now: Timestamp, rtt: RTTSample,
    priorInFlight: Int? = nil, newRTTSample: Bool = true
) {
    let prior = priorInFlight ?? max(cc.congestionWindow, packets * mss)
    var inFlight = prior
    for _ in 0..<packets {
        inFlight -= mss
        cc.onPacketAcked(AckedPacketInfo(sentBytes: mss, timeSent: sentAt), rtt: rtt, bytesInFlight: inFlight, now: now)
    }
    cc.onAckProcessed(
        AckSummary(
            now: now, ackedBytes: packets * mss, priorBytesInFlight: prior, bytesInFlight: inFlight,
            rtt: rtt, hasNewRTTSample: newRTTSample, rateSample: nil))
}

/// A window-limited flow over a fixed RTT: every `tick` ACKs arrive for cwnd × tick / RTT bytes,
/// each packet sent one RTT earlier. Calls `observe` after each ACK. Returns the end time.
@discardableResult
private func runSaturated(
    _ cc: CongestionController, from start: Timestamp, for span: Duration, rtt: Duration,
    tick: Duration = ms(1), observe: (Timestamp) -> Void = { _ in }
) -> Timestamp {
    var now = start
    var due = 0.0
    let end = start + span
    while now < end {
        now = now + tick
        due += Double(cc.congestionWindow) * tick.seconds / rtt.seconds
        let n = Int(due / Double(mss))
        if n > 0 {
            due -= Double(n * mss)
            ack(cc, packets: n, sentAt: now - rtt, now: now, rtt: rttSample(rtt))
        }
        observe(now)
    }
    return now
}

/// Slow start (constant RTT, so HyStart++ stays quiet) until cwnd reaches `segments`, then a
/// loss at `now`. Returns the window just before the loss.
private func cubicAfterLoss(
    segments: Int, at now: Timestamp, rtt: Duration = rtt40,
    coupling: CouplingMember? = nil
) -> (Cubic, Int) {
    let cc = Cubic(maxDatagramSize: mss, coupling: coupling)
    while cc.congestionWindow < segments * mss {
        ack(cc, packets: 1, sentAt: now - rtt, now: now - ms(1), rtt: rttSample(rtt))
    }
    let before = cc.congestionWindow
    cc.onCongestionEvent(lostPacketSentTime: now - ms(1), now: now)
    return (cc, before)
}

/// C·K³ = x solved by bisection, independent of the controller's Newton iteration.
private func expectedK(_ x: Double) -> Double {
    var lo = 0.0
    var hi = 100.0
    for _ in 0..<200 {
        let mid = (lo + hi) / 2
        if 0.4 * mid * mid * mid < x { lo = mid } else { hi = mid }
    }
    return lo
}

final class CubicTests: XCTestCase {
    // MARK: Multiplicative decrease (RFC 9438 §4.6) and recovery (RFC 9002 §7.3.2)

    func testLossLeavesSeventyPercentOfTheWindow() {
        let t0 = Timestamp(nanoseconds: 1_000_000_000)
        let (cc, before) = cubicAfterLoss(segments: 100, at: t0)
        XCTAssertEqual(before, 100 * mss)
        XCTAssertEqual(cc.congestionWindow, 84_000, "β_cubic = 0.7: 120000 bytes → 84000")
        XCTAssertEqual(cc.ssthresh, 84_000, "ssthresh is the reduced window")
        XCTAssertEqual(cc.wMax, 120_000, "W_max is the window before the reduction")
        XCTAssertEqual(cc.hystartPhase, .done, "a loss ends HyStart++")
    }

    func testOnlyOneReductionPerRoundTrip() {
        let t0 = Timestamp(nanoseconds: 1_000_000_000)
        let (cc, _) = cubicAfterLoss(segments: 100, at: t0)
        // A packet sent before the recovery started: same congestion event.
        cc.onCongestionEvent(lostPacketSentTime: t0 - ms(5), now: t0 + ms(10))
        XCTAssertEqual(cc.congestionWindow, 84_000, "a loss from before the recovery start must not reduce again")
        // A packet sent after it: a new event, another β.
        cc.onCongestionEvent(lostPacketSentTime: t0 + ms(1), now: t0 + ms(45))
        XCTAssertEqual(cc.congestionWindow, 58_800, "a loss of a packet sent in recovery is a new congestion event")
    }

    func testPacketsSentBeforeRecoveryDoNotGrowTheWindow() {
        let t0 = Timestamp(nanoseconds: 1_000_000_000)
        let (cc, _) = cubicAfterLoss(segments: 100, at: t0)
        ack(cc, packets: 10, sentAt: t0 - ms(1), now: t0 + ms(20), rtt: rttSample(rtt40))
        XCTAssertEqual(cc.congestionWindow, 84_000)
        XCTAssertNil(cc.epochStart, "recovery: no congestion-avoidance stage yet")
        ack(cc, packets: 10, sentAt: t0 + ms(1), now: t0 + ms(41), rtt: rttSample(rtt40))
        XCTAssertGreaterThan(cc.congestionWindow, 84_000, "a packet sent after the recovery start ends it")
        XCTAssertEqual(cc.epochStart, t0 + ms(41))
    }

    func testWindowNeverFallsBelowTwoDatagrams() {
        let cc = Cubic(maxDatagramSize: mss)
        var now = Timestamp(nanoseconds: 1_000_000_000)
        for _ in 0..<20 {
            cc.onCongestionEvent(lostPacketSentTime: now, now: now + ms(1))
            now = now + ms(2)
        }
        XCTAssertEqual(cc.congestionWindow, 2 * mss)
        XCTAssertEqual(cc.ssthresh, 2 * mss)
    }

    // MARK: The cubic curve (RFC 9438 §4.2, §4.4, §4.5)

    func testKIsTheTimeToClimbBackToWMax() {
        let t0 = Timestamp(nanoseconds: 1_000_000_000)
        let (cc, _) = cubicAfterLoss(segments: 100, at: t0)
        ack(cc, packets: 1, sentAt: t0 + ms(1), now: t0 + ms(41), rtt: rttSample(rtt40))
        // K = ∛((W_max − cwnd_epoch) / C) in segments: ∛((100 − 70) / 0.4) = ∛75.
        XCTAssertEqual(cc.k, 4.217163326508746, accuracy: 1e-9)
        XCTAssertEqual(cc.k, expectedK(30), accuracy: 1e-9)
        XCTAssertEqual(cc.cubicWindow(at: cc.k), cc.wMax, accuracy: 1e-6, "W_cubic(K) = W_max")
        XCTAssertEqual(cc.cubicWindow(at: 0), 84_000, accuracy: 1e-6, "W_cubic(0) = cwnd_epoch")
    }

    func testCubeRoot() {
        for x in [1e-9, 0.001, 0.5, 1, 2, 7.999, 75, 1000, 123_456.789, 1e12] {
            let r = Cubic.cubeRoot(x)
            XCTAssertEqual(r * r * r, x, accuracy: x * 1e-12, "∛\(x)")
        }
        XCTAssertEqual(Cubic.cubeRoot(0), 0)
    }

    /// A 1000-segment window drops to 700 and climbs back along W_cubic: concave up to K, convex
    /// after. The Reno estimate stays far below (700 + 13 segments/s), so the curve rules.
    func testWindowFollowsTheCubicCurveThroughConcaveAndConvexRegions() {
        let t0 = Timestamp(nanoseconds: 1_000_000_000)
        let (cc, before) = cubicAfterLoss(segments: 1000, at: t0)
        let wMax = Double(before)
        let epochWindow = Double(cc.congestionWindow)
        let m = Double(mss)
        let k = expectedK((wMax - epochWindow) / m)
        XCTAssertEqual(k, 9.0856, accuracy: 1e-3, "∛(300 / 0.4)")
        func w(_ t: Double) -> Double { 0.4 * m * (t - k) * (t - k) * (t - k) + wMax }

        // Recovery lasts one RTT (tick 1 ms): the epoch starts with the first ACK after it.
        let epoch = t0 + rtt40 + ms(1)
        var checked = 0
        var worst = 0.0
        runSaturated(cc, from: t0, for: .seconds(k + 2.2), rtt: rtt40) { now in
            guard now >= epoch else { return }
            let t = (now - epoch).seconds
            let cwnd = Double(cc.congestionWindow)
            // Sample every RTT in the concave half-way region and for 2 s of the convex region.
            let inConcave = t > k / 2 && t < k / 2 + 1
            let inConvex = t > k && t < k + 2
            guard inConcave || inConvex, (now - epoch).nanoseconds % rtt40.nanoseconds == 0 else { return }
            checked += 1
            worst = max(worst, abs(cwnd - w(t)))
            // cwnd aims one RTT ahead and reaches it in about one RTT: it tracks W_cubic(t) to
            // within a tenth of a datagram.
            XCTAssertEqual(cwnd, w(t), accuracy: m / 10, "cwnd at t = \(t) s vs W_cubic(t)")
        }
        XCTAssertGreaterThan(checked, 70)
        XCTAssertEqual(cc.epochStart, epoch)
        XCTAssertGreaterThan(Double(cc.congestionWindow), wMax + 3 * m, "the convex region probes above W_max")
        print("CUBIC curve: \(checked) checks, worst |cwnd − W_cubic(t)| = \(Int(worst)) bytes (MSS \(mss))")
    }

    func testTargetIsClampedToOneAndAHalfWindows() {
        // A loss at 20 segments leaves 14; with a 10 s RTT, W_cubic(t + RTT) is far above 1.5 cwnd.
        let t0 = Timestamp(nanoseconds: 20_000_000_000)
        let longRTT = Duration.seconds(10)
        let (cc, _) = cubicAfterLoss(segments: 20, at: t0, rtt: longRTT)
        let before = cc.congestionWindow
        // One window's worth acknowledged in one ACK, sent after recovery started.
        ack(cc, packets: before / mss, sentAt: t0 + ms(1), now: t0 + longRTT, rtt: rttSample(longRTT))
        // cwnd += (target − cwnd)/cwnd × acked with target = 1.5 cwnd and acked = cwnd: 1.5 cwnd.
        XCTAssertEqual(cc.congestionWindow, before * 3 / 2, "the increase per RTT is capped at 0.5 cwnd")
    }

    // MARK: Reno-friendly region (RFC 9438 §4.3)

    /// Small window, short RTT: W_est (α_cubic per RTT, then 1 per RTT from cwnd_prior on) outruns the
    /// slowly-rising curve, and cwnd follows W_est.
    func testRenoFriendlyRegionWinsAtSmallBandwidthDelayProduct() {
        let rtt = ms(10)
        let t0 = Timestamp(nanoseconds: 1_000_000_000)
        let (cc, before) = cubicAfterLoss(segments: 20, at: t0, rtt: rtt)
        let epoch = t0 + rtt + Duration.microseconds(500)
        let m = Double(mss)
        let wMax = Double(before)
        let k = expectedK((wMax - Double(cc.congestionWindow)) / m)
        let end = runSaturated(cc, from: t0, for: ms(310), rtt: rtt, tick: .microseconds(500))
        let t = (end - epoch).seconds
        let rounds = t / rtt.seconds
        // W_est in segments: 14 + α per round until it reaches cwnd_prior = 20, then + 1 per round.
        let alpha = 3 * (1 - 0.7) / (1 + 0.7)
        let roundsToPrior = 6 / alpha
        let expected = (20 + (rounds - roundsToPrior)) * m
        let curve = 0.4 * m * (t - k) * (t - k) * (t - k) + wMax
        XCTAssertLessThan(curve, 17 * m, "the cubic curve is still below W_max")
        XCTAssertEqual(
            Double(cc.congestionWindow), expected, accuracy: m / 4,
            "cwnd follows the Reno estimate (\(expected / m) segments)")
        print(
            "CUBIC Reno-friendly: t = \(t) s, cwnd \(Double(cc.congestionWindow) / m) segments, W_est ≈ \(expected / m), W_cubic \(curve / m)"
        )
    }

    // MARK: Fast convergence (RFC 9438 §4.7)

    func testFastConvergenceLowersWMaxWhenLossComesBeforeTheOldMaximum() {
        let t0 = Timestamp(nanoseconds: 1_000_000_000)
        let (cc, _) = cubicAfterLoss(segments: 100, at: t0)
        let end = runSaturated(cc, from: t0, for: .seconds(1), rtt: rtt40)
        let cwndAtLoss = cc.congestionWindow
        XCTAssertLessThan(cwndAtLoss, 120_000)
        XCTAssertGreaterThan(cwndAtLoss, 84_000)
        cc.onCongestionEvent(lostPacketSentTime: end - ms(1), now: end)
        XCTAssertEqual(cc.wMax, Double(cwndAtLoss) * 0.85, accuracy: 1, "W_max = cwnd × (1 + β) / 2")
        XCTAssertEqual(cc.congestionWindow, Int(Double(cwndAtLoss) * 0.7), accuracy: 1)

        // A loss above W_max: no convergence, W_max is simply the window.
        let (fresh, _) = cubicAfterLoss(segments: 20, at: t0)
        let end2 = runSaturated(fresh, from: t0, for: .seconds(2), rtt: rtt40)
        XCTAssertGreaterThan(Double(fresh.congestionWindow), fresh.wMax)
        let w = fresh.congestionWindow
        fresh.onCongestionEvent(lostPacketSentTime: end2 - ms(1), now: end2)
        XCTAssertEqual(fresh.wMax, Double(w), accuracy: 1)
    }

    // MARK: Application-limited (RFC 9002 §7.8, RFC 9438 §5.8)

    func testNoGrowthWhileApplicationLimited() {
        let t0 = Timestamp(nanoseconds: 1_000_000_000)
        let (cc, _) = cubicAfterLoss(segments: 100, at: t0)
        let w = cc.congestionWindow
        ack(cc, packets: 2, sentAt: t0 + ms(1), now: t0 + ms(41), rtt: rttSample(rtt40), priorInFlight: w - 4 * mss)
        XCTAssertEqual(cc.congestionWindow, w, "in flight + 3 MSS below cwnd: app-limited, no growth")
        ack(cc, packets: 2, sentAt: t0 + ms(1), now: t0 + ms(42), rtt: rttSample(rtt40), priorInFlight: w - 2 * mss)
        XCTAssertGreaterThan(cc.congestionWindow, w, "within 3 MSS of cwnd: the window is in use")

        // Slow start: app-limited below half the window.
        let ss = Cubic(maxDatagramSize: mss)
        ack(ss, packets: 2, sentAt: t0, now: t0 + rtt40, rtt: rttSample(rtt40), priorInFlight: 4 * mss)
        XCTAssertEqual(ss.congestionWindow, 12_000, "4 of 10 datagrams in flight: app-limited")
        ack(ss, packets: 2, sentAt: t0, now: t0 + rtt40, rtt: rttSample(rtt40), priorInFlight: 5 * mss)
        XCTAssertEqual(ss.congestionWindow, 14_400, "half the window in flight: a paced slow start, not app-limited")
    }

    /// t excludes app-limited time: a flow idle (app-limited) for 3 s in the middle ends where a
    /// flow that never paused is after the same busy time.
    func testApplicationLimitedTimeDoesNotAdvanceTheCurve() {
        let t0 = Timestamp(nanoseconds: 1_000_000_000)
        let (busy, _) = cubicAfterLoss(segments: 200, at: t0)
        let (paused, _) = cubicAfterLoss(segments: 200, at: t0)
        runSaturated(busy, from: t0, for: .seconds(2), rtt: rtt40)

        var now = runSaturated(paused, from: t0, for: .seconds(1), rtt: rtt40)
        let windowBefore = paused.congestionWindow
        for _ in 0..<3000 {
            now = now + ms(1)
            ack(paused, packets: 1, sentAt: now - rtt40, now: now, rtt: rttSample(rtt40), priorInFlight: 10 * mss)
        }
        XCTAssertEqual(paused.congestionWindow, windowBefore, "no growth while app-limited")
        runSaturated(paused, from: now, for: .seconds(1), rtt: rtt40)
        XCTAssertEqual(
            paused.congestionWindow, busy.congestionWindow, accuracy: mss,
            "the 3 s app-limited must not count in t")
    }

    // MARK: HyStart++ (RFC 9406)

    /// Drives whole rounds: `packets` sent together, then ACKed one per ACK, each with `rtt`.
    private struct SlowStartRounds {
        let cc: any HyStartSlowStart
        var now = Timestamp(nanoseconds: 1_000_000_000)
        init(_ cc: any HyStartSlowStart) { self.cc = cc }

        /// Sends a flight; returns its send time.
        mutating func send(_ packets: Int) -> Timestamp {
            now = now + .microseconds(10)
            for i in 0..<packets { cc.onPacketSent(bytes: mss, bytesInFlight: (i + 1) * mss, now: now) }
            return now
        }
        /// ACKs `count` packets of the flight sent at `sentAt`, one per ACK.
        mutating func ackEach(_ count: Int, sentAt: Timestamp, rtt: Duration) {
            for _ in 0..<count {
                now = max(now + .microseconds(10), sentAt + rtt)
                ack(cc, packets: 1, sentAt: sentAt, now: now, rtt: rttSample(rtt, smoothed: rtt40, min: rtt40))
            }
        }
        mutating func round(rtt: Duration, packets: Int = 10) {
            let sent = send(packets)
            ackEach(packets, sentAt: sent, rtt: rtt)
        }
    }

    func testHyStartLeavesSlowStartWhenTheRoundMinimumRTTRises() {
        // RFC 9406 is not CUBIC's alone: NewReno's and Westwood+'s initial slow starts run it too.
        let controllers: [any HyStartSlowStart] = [
            Cubic(maxDatagramSize: mss), NewReno(maxDatagramSize: mss),
            Westwood(maxDatagramSize: mss),
        ]
        for cc in controllers {
            var r = SlowStartRounds(cc)
            r.round(rtt: rtt40)
            r.round(rtt: rtt40)
            XCTAssertEqual(cc.hystartPhase, .slowStart, cc.name)
            // Threshold: max(4 ms, min(40 ms / 8, 16 ms)) = 5 ms. 46 ms ≥ 40 + 5.
            let sent = r.send(10)
            r.ackEach(7, sentAt: sent, rtt: ms(46))
            XCTAssertEqual(cc.hystartPhase, .slowStart, "\(cc.name): fewer than N_RTT_SAMPLE = 8 samples: no decision yet")
            let w = cc.congestionWindow
            r.ackEach(1, sentAt: sent, rtt: ms(46))
            XCTAssertEqual(cc.hystartPhase, .conservativeSlowStart, "\(cc.name): 8th sample ≥ lastRoundMinRTT + 5 ms: enter CSS")
            XCTAssertEqual(cc.ssthresh, .max, "\(cc.name): CSS is still slow start")
            XCTAssertEqual(cc.congestionWindow, w + mss, "\(cc.name): the ACK that detected the rise grew at the slow-start rate")
            r.ackEach(2, sentAt: sent, rtt: ms(46))
            XCTAssertEqual(cc.congestionWindow, w + mss + 2 * mss / 4, "\(cc.name): CSS grows by a quarter: CSS_GROWTH_DIVISOR = 4")
            // CSS_ROUNDS = 5 rounds of CSS, then congestion avoidance with ssthresh = cwnd.
            for _ in 0..<6 { r.round(rtt: ms(46)) }
            XCTAssertEqual(cc.hystartPhase, .done, cc.name)
            XCTAssertLessThanOrEqual(cc.ssthresh, cc.congestionWindow, "\(cc.name): ssthresh = the window at the exit")
            XCTAssertGreaterThan(cc.ssthresh, 12_000, cc.name)
        }
    }

    func testHyStartIgnoresAnRTTRiseBelowTheThreshold() {
        let cc = Cubic(maxDatagramSize: mss)
        var r = SlowStartRounds(cc)
        r.round(rtt: rtt40)
        r.round(rtt: .microseconds(44_900))
        r.round(rtt: .microseconds(49_800))  // +4.9 ms each round: below 5 ms
        XCTAssertEqual(cc.hystartPhase, .slowStart)

        // A short RTT uses the 4 ms floor: 10 ms → 14 ms exits, 13.9 ms would not.
        let short = Cubic(maxDatagramSize: mss)
        var s = SlowStartRounds(short)
        s.round(rtt: ms(10))
        s.round(rtt: .microseconds(13_900))
        XCTAssertEqual(short.hystartPhase, .slowStart, "MIN_RTT_THRESH = 4 ms")
        s.round(rtt: .microseconds(17_900))
        XCTAssertEqual(short.hystartPhase, .conservativeSlowStart)

        // A long RTT uses the 16 ms ceiling: 200 ms → 215 ms does not exit (200/8 = 25 > 16).
        let long = Cubic(maxDatagramSize: mss)
        var l = SlowStartRounds(long)
        l.round(rtt: ms(200))
        l.round(rtt: ms(215))
        XCTAssertEqual(long.hystartPhase, .slowStart, "MAX_RTT_THRESH = 16 ms")
        l.round(rtt: ms(231))
        XCTAssertEqual(long.hystartPhase, .conservativeSlowStart)
    }

    func testConservativeSlowStartReturnsToSlowStartWhenTheRTTFalls() {
        let cc = Cubic(maxDatagramSize: mss)
        var r = SlowStartRounds(cc)
        r.round(rtt: rtt40)
        r.round(rtt: ms(50))
        XCTAssertEqual(cc.hystartPhase, .conservativeSlowStart)
        // Next round: 8 samples whose minimum (48 ms) is below the CSS baseline (50 ms).
        let sent = r.send(10)
        r.ackEach(7, sentAt: sent, rtt: ms(48))
        XCTAssertEqual(cc.hystartPhase, .conservativeSlowStart)
        r.ackEach(1, sentAt: sent, rtt: ms(48))
        XCTAssertEqual(cc.hystartPhase, .slowStart, "the exit was spurious: resume slow start")
        let w = cc.congestionWindow
        r.ackEach(2, sentAt: sent, rtt: ms(48))
        XCTAssertEqual(cc.congestionWindow, w + 2 * mss, "full slow-start growth again")
    }

    func testConservativeSlowStartEndsAfterFiveRounds() {
        let cc = Cubic(maxDatagramSize: mss)
        var r = SlowStartRounds(cc)
        r.round(rtt: rtt40)
        r.round(rtt: ms(50))  // CSS entered in this round: it counts as the first.
        XCTAssertEqual(cc.hystartPhase, .conservativeSlowStart)
        for _ in 2...5 { r.round(rtt: ms(50)) }
        XCTAssertEqual(cc.hystartPhase, .conservativeSlowStart, "CSS_ROUNDS = 5 rounds, the partial one included")
        XCTAssertEqual(cc.ssthresh, .max)
        let sent = r.send(10)
        r.ackEach(1, sentAt: sent, rtt: ms(50))
        XCTAssertEqual(cc.hystartPhase, .done)
        XCTAssertLessThan(cc.ssthresh, Int.max, "congestion avoidance: ssthresh = cwnd")
        XCTAssertLessThanOrEqual(cc.ssthresh, cc.congestionWindow)
        // RFC 9438 §4.10: W_max undefined, so the first epoch has K = 0 and W_max = its start window.
        XCTAssertEqual(cc.k, 0)
        XCTAssertEqual(cc.wMax, Double(cc.ssthresh), accuracy: Double(mss))
    }

    func testLossDuringSlowStartEndsHyStart() {
        let cc = Cubic(maxDatagramSize: mss)
        var r = SlowStartRounds(cc)
        r.round(rtt: rtt40)
        let w = cc.congestionWindow
        cc.onCongestionEvent(lostPacketSentTime: r.now, now: r.now + ms(1))
        XCTAssertEqual(cc.hystartPhase, .done)
        XCTAssertEqual(cc.ssthresh, Int(Double(w) * 0.7))
    }

    // MARK: Persistent congestion (RFC 9002 §7.6.2, RFC 9438 §4.8)

    func testPersistentCongestionCollapsesToTheMinimumWindowAndRestartsTheCurve() {
        let t0 = Timestamp(nanoseconds: 1_000_000_000)
        let (cc, _) = cubicAfterLoss(segments: 100, at: t0)
        cc.onPersistentCongestion(now: t0 + ms(500))
        XCTAssertEqual(cc.congestionWindow, 2 * mss, "minimum window")
        XCTAssertEqual(cc.ssthresh, 84_000, "ssthresh from the congestion event stays")
        // Plain slow start (no HyStart++ after a loss) back to ssthresh.
        var now = t0 + ms(600)
        ack(cc, packets: 2, sentAt: now - rtt40, now: now, rtt: rttSample(rtt40))
        XCTAssertEqual(cc.congestionWindow, 4 * mss)
        while cc.congestionWindow < cc.ssthresh {
            now = now + ms(1)
            ack(cc, packets: 2, sentAt: now - rtt40, now: now, rtt: rttSample(rtt40))
        }
        now = now + ms(1)
        let start = cc.congestionWindow
        ack(cc, packets: 1, sentAt: now - rtt40, now: now, rtt: rttSample(rtt40))
        XCTAssertEqual(cc.k, 0, "first avoidance after a collapse: K = 0")
        XCTAssertEqual(cc.wMax, Double(start), accuracy: 1, "W_max = the window at the start of the stage")
    }

    // MARK: Coupling (RFC 6356 over CUBIC)

    func testCoupledPathsUseTheLinkedIncreaseAndTheCouplingsDecrease() {
        let group = CongestionCoupling(algorithm: .lia)
        let t0 = Timestamp(nanoseconds: 10_000_000_000)
        let longRTT = ms(200)
        let (a, _) = cubicAfterLoss(segments: 100, at: t0, rtt: longRTT, coupling: group.join())
        let (b, _) = cubicAfterLoss(segments: 100, at: t0, rtt: longRTT, coupling: group.join())
        let (alone, _) = cubicAfterLoss(segments: 100, at: t0, rtt: longRTT)
        // Report both paths' state to the group.
        ack(b, packets: 1, sentAt: t0 + ms(1), now: t0 + longRTT, rtt: rttSample(longRTT))
        let w = a.congestionWindow
        XCTAssertEqual(w, 84_000)
        // One window of ACKs on path a (and on the uncoupled twin).
        for i in 0..<70 {
            let now = t0 + longRTT + ms(UInt64(i))
            ack(a, packets: 1, sentAt: t0 + ms(1), now: now, rtt: rttSample(longRTT))
            ack(alone, packets: 1, sentAt: t0 + ms(1), now: now, rtt: rttSample(longRTT))
        }
        // LIA (RFC 6356 §3), equal RTTs: α = w_max / w_total, increase = α·acked·MSS / w_total. Path b
        // lost under coupling (halved) and a before b joined (β = 0.7): 84 000 and 60 000 bytes.
        let wb = Double(group.members[1].congestionWindow)
        XCTAssertEqual(wb, 60_000, accuracy: 100)
        let total = Double(w) + wb
        let expected = (Double(w) / total) * 70 * Double(mss) * Double(mss) / total
        let grew = a.congestionWindow - w
        XCTAssertEqual(Double(grew), expected, accuracy: Double(mss) / 20, "coupled increase per window")
        XCTAssertGreaterThan(alone.congestionWindow - w, 2 * mss, "the uncoupled twin climbs the cubic curve")
        XCTAssertNil(a.epochStart, "no cubic epoch while coupled")

        let before = a.congestionWindow
        a.onCongestionEvent(lostPacketSentTime: t0 + ms(300), now: t0 + ms(400))
        // The coupled algorithms assume a Reno-like halving (BALIA its own factor); CUBIC's β = 0.7
        // with a coupled increase took 1.4 × a single flow's share of a shared bottleneck.
        XCTAssertEqual(a.congestionWindow, Int(Double(before) * 0.5), accuracy: 1, "LIA's decrease: halve")
        XCTAssertEqual(a.coupling?.bytesSinceLastLoss, 0, "the group hears of the congestion event")
        XCTAssertGreaterThan(a.coupling?.bytesBetweenLastLosses ?? 0, 0)
    }

    func testALonePathInACoupledGroupIsPlainCubic() {
        let group = CongestionCoupling(algorithm: .lia)
        let t0 = Timestamp(nanoseconds: 1_000_000_000)
        let (coupled, _) = cubicAfterLoss(segments: 100, at: t0, coupling: group.join())
        let (plain, _) = cubicAfterLoss(segments: 100, at: t0)
        runSaturated(coupled, from: t0, for: .seconds(2), rtt: rtt40)
        runSaturated(plain, from: t0, for: .seconds(2), rtt: rtt40)
        XCTAssertEqual(coupled.congestionWindow, plain.congestionWindow)
    }

    // MARK: The model link

    /// 50 Mbit/s, 40 ms, a drop-tail queue of one BDP: CUBIC (β = 0.7 > 0.5) keeps the link busy.
    func testCubicFillsA50MbitLinkWithOneBDPQueue() {
        let config = CubicTestBottleneck.Config(rateBitsPerSecond: 50e6, rtt: rtt40, queueBytes: 250_000)
        let model = CubicTestBottleneck(config: config, controller: Cubic(maxDatagramSize: 1200))
        let report = model.run(for: .seconds(20), measuringFrom: .seconds(5))
        print("CUBIC 50 Mbit/s 40 ms 1-BDP queue: \(report)")
        XCTAssertGreaterThanOrEqual(report.utilisation, 0.90, "utilisation from 5 s to 20 s")
        XCTAssertGreaterThan(report.congestionEvents, 0, "the queue overflowed at least once")
    }
}

// MARK: - Bottleneck model

/// xorshift64* (Vigna 2016): a seeded, deterministic stream for random loss.
struct CubicTestRandom {
    private var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }
    /// Uniform in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) / Double(UInt64(1) << 53) }
}

/// A packet-level model of one path through a bottleneck: a bulk sender driving the controller
/// exactly as the QUIC connection does (pacing, RFC 9002 RTT estimation, packet- and
/// time-threshold loss detection, PTO probes, persistent congestion, delivery-rate samples), a
/// FIFO link of fixed rate with a drop-tail queue measured in bytes, optional random loss after the
/// bottleneck, a propagation delay of RTT/2 each way, and a receiver that ACKs every second packet
/// (at once on a gap, else within 1 ms).
final class CubicTestBottleneck {
    struct Config {
        var rateBitsPerSecond: Double
        /// Propagation RTT (no queueing).
        var rtt: Duration
        var queueBytes: Int
        var randomLoss: Double = 0
        var seed: UInt64 = 1
        var datagramSize = 1200
        var ackEvery = 2
        var maxAckDelay = Duration.milliseconds(1)
    }

    struct Report: CustomStringConvertible {
        /// Bytes delivered to the receiver in the measured span over what the link could carry.
        var utilisation: Double
        var congestionEvents = 0
        var persistentCongestions = 0
        var queueDrops = 0
        var randomDrops = 0
        var maxQueueBytes = 0
        /// Mean queueing delay seen by packets entering the queue in the measured span.
        var meanQueueDelay = Duration.zero
        var finalWindow = 0
        var description: String {
            let u = (utilisation * 1000).rounded() / 10
            return "utilisation \(u) %, \(congestionEvents) congestion events (\(persistentCongestions) persistent), "
                + "drops: \(queueDrops) queue / \(randomDrops) random, max queue \(maxQueueBytes) B, "
                + "mean queue delay \((meanQueueDelay.milliseconds * 10).rounded() / 10) ms, final cwnd \(finalWindow) B"
        }
    }

    private struct Sent {
        var size: Int
        var timeSent: Timestamp
        var delivery: DeliverySnapshot
        var outstanding = true
    }

    private let config: Config
    private let cc: CongestionController
    private let bytesPerNanosecond: Double
    private let halfRTT: UInt64
    private var random: CubicTestRandom

    // Sender.
    private var sent: [Sent] = []
    private var lowestOutstanding = 0
    private var largestAcked = -1
    private var bytesInFlight = 0
    private var delivery = DeliveryRateEstimator()
    private var pacer: Pacer
    private var lastAckElicitingSent: UInt64 = 0
    private var ptoCount = 0
    // RFC 9002 §5.3 estimator, initial RTT 333 ms.
    private var latestRTT = Duration.zero
    private var smoothedRTT = Duration.milliseconds(333)
    private var rttVar = Duration.milliseconds(333) / 2
    private var minRTT = Duration.zero
    private var hasRTTSample = false

    // Link and receiver.
    private var linkFreeAt: UInt64 = 0
    private var arrivals: [(time: UInt64, pn: Int)] = []
    private var arrivalHead = 0
    private var acks: [(time: UInt64, pns: [Int])] = []
    private var ackHead = 0
    private var pendingAck: [Int] = []
    private var largestReceived = -1
    private var ackTimer: UInt64?
    private var sendWake: UInt64?
    private var ptoTimer: UInt64?

    // Measurement.
    private var measureFrom: UInt64 = 0
    private var deliveredBytes = 0
    private var queueDelaySum = 0.0
    private var queueDelayCount = 0
    private var report = Report(utilisation: 0)

    init(config: Config, controller: CongestionController) {
        self.config = config
        self.cc = controller
        bytesPerNanosecond = config.rateBitsPerSecond / 8 / 1e9
        halfRTT = config.rtt.nanoseconds / 2
        random = CubicTestRandom(seed: config.seed)
        pacer = Pacer(maxDatagramSize: config.datagramSize)
    }

    func run(for span: Duration, measuringFrom warmUp: Duration) -> Report {
        measureFrom = warmUp.nanoseconds
        let end = span.nanoseconds
        trySend(0)
        while true {
            // The earliest pending event; ties in a fixed order so runs are reproducible.
            var next = UInt64.max
            var kind = -1
            if arrivalHead < arrivals.count, arrivals[arrivalHead].time < next {
                next = arrivals[arrivalHead].time
                kind = 0
            }
            if ackHead < acks.count, acks[ackHead].time < next {
                next = acks[ackHead].time
                kind = 1
            }
            if let t = ackTimer, t < next {
                next = t
                kind = 2
            }
            if let t = sendWake, t < next {
                next = t
                kind = 3
            }
            if let t = ptoTimer, t < next {
                next = t
                kind = 4
            }
            guard kind >= 0, next <= end else { break }
            switch kind {
            case 0:
                let a = arrivals[arrivalHead]
                arrivalHead += 1
                receive(a.pn, at: a.time)
            case 1:
                let a = acks[ackHead]
                ackHead += 1
                onAck(a.pns, at: a.time)
            case 2:
                ackTimer = nil
                sendAck(at: next)
            case 3:
                sendWake = nil
                trySend(next)
            default:
                ptoTimer = nil
                onPTOTimer(next)
            }
        }
        let measured = Double(end - measureFrom) * bytesPerNanosecond
        report.utilisation = Double(deliveredBytes) / measured
        report.meanQueueDelay = Duration(nanoseconds: UInt64(queueDelaySum / Double(max(queueDelayCount, 1))))
        report.finalWindow = cc.congestionWindow
        return report
    }

    // MARK: Sender

    private var rttSample: RTTSample {
        RTTSample(latest: latestRTT, smoothed: smoothedRTT, minimum: minRTT, variation: rttVar)
    }

    private func trySend(_ now: UInt64) {
        let t = Timestamp(nanoseconds: now)
        while bytesInFlight + config.datagramSize <= cc.congestionWindow {
            let rate = Pacer.rate(congestionWindow: cc.congestionWindow, smoothedRTT: smoothedRTT, controllerRate: cc.pacingRate)
            if let wake = pacer.delay(for: config.datagramSize, rate: rate, now: t) {
                sendWake = min(sendWake ?? .max, wake.nanoseconds)
                return
            }
            sendPacket(now)
        }
    }

    private func sendPacket(_ now: UInt64) {
        let size = config.datagramSize
        let t = Timestamp(nanoseconds: now)
        let pn = sent.count
        let snapshot = delivery.onPacketSent(bytes: size, bytesInFlight: bytesInFlight, now: t)
        sent.append(Sent(size: size, timeSent: t, delivery: snapshot))
        bytesInFlight += size
        cc.onPacketSent(bytes: size, bytesInFlight: bytesInFlight, now: t)
        pacer.onSent(bytes: size)
        lastAckElicitingSent = now
        if ptoTimer == nil { ptoTimer = ptoDeadline }
        enterLink(pn, size: size, at: now)
    }

    private var ptoDeadline: UInt64 {
        let pto = smoothedRTT + max(rttVar * 4, .milliseconds(1)) + config.maxAckDelay
        return lastAckElicitingSent + (pto * (UInt64(1) << UInt64(min(ptoCount, 10)))).nanoseconds
    }

    private func onAck(_ pns: [Int], at now: UInt64) {
        let t = Timestamp(nanoseconds: now)
        let newly = pns.filter { sent[$0].outstanding }
        guard let largest = pns.max(), !newly.isEmpty else { return }
        largestAcked = max(largestAcked, largest)
        // RFC 9002 §5.1: a sample when the largest acknowledged is newly acknowledged.
        let newSample = sent[largest].outstanding
        if newSample { updateRTT(t - sent[largest].timeSent) }

        let prior = bytesInFlight
        var ackedBytes = 0
        for pn in newly {
            sent[pn].outstanding = false
            let p = sent[pn]
            bytesInFlight -= p.size
            ackedBytes += p.size
            delivery.onPacketAcked(p.delivery, bytes: p.size, timeSent: p.timeSent, now: t)
            cc.onPacketAcked(
                AckedPacketInfo(sentBytes: p.size, timeSent: p.timeSent, delivery: p.delivery),
                rtt: rttSample, bytesInFlight: bytesInFlight, now: t)
        }
        let rate = delivery.generateSample(minRTT: minRTT)
        cc.onAckProcessed(
            AckSummary(
                now: t, ackedBytes: ackedBytes, priorBytesInFlight: prior, bytesInFlight: bytesInFlight,
                rtt: rttSample, hasNewRTTSample: newSample, rateSample: rate))
        detectLosses(now)
        ptoCount = 0
        if bytesInFlight > 0 { ptoTimer = ptoDeadline }
        trySend(now)
    }

    /// RFC 9002 §5.3.
    private func updateRTT(_ sample: Duration) {
        latestRTT = sample
        if !hasRTTSample {
            hasRTTSample = true
            minRTT = sample
            smoothedRTT = sample
            rttVar = sample / 2
            return
        }
        minRTT = min(minRTT, sample)
        let diff = smoothedRTT > sample ? smoothedRTT - sample : sample - smoothedRTT
        rttVar = Duration(nanoseconds: (3 * rttVar.nanoseconds + diff.nanoseconds) / 4)
        smoothedRTT = Duration(nanoseconds: (7 * smoothedRTT.nanoseconds + sample.nanoseconds) / 8)
    }

    /// RFC 9002 §6.1 packet (3) and time (9/8 RTT) thresholds, then §7.6 persistent congestion,
    /// the way Connection+Recovery.swift reports them.
    private func detectLosses(_ now: UInt64) {
        let t = Timestamp(nanoseconds: now)
        let lossDelay = max(Duration(nanoseconds: max(smoothedRTT, latestRTT).nanoseconds * 9 / 8), .milliseconds(1))
        var firstLost: Timestamp?
        var newestLost: Timestamp?
        var count = 0
        var pn = lowestOutstanding
        while pn <= largestAcked {
            if sent[pn].outstanding, pn + 3 <= largestAcked || sent[pn].timeSent + lossDelay <= t {
                sent[pn].outstanding = false
                let p = sent[pn]
                bytesInFlight -= p.size
                delivery.onPacketLost(bytes: p.size)
                cc.onPacketLost(
                    LostPacketInfo(sentBytes: p.size, timeSent: p.timeSent, delivery: p.delivery),
                    bytesInFlight: bytesInFlight, now: t)
                firstLost = firstLost ?? p.timeSent
                newestLost = p.timeSent
                count += 1
            }
            pn += 1
        }
        while lowestOutstanding < sent.count, !sent[lowestOutstanding].outstanding { lowestOutstanding += 1 }
        guard let newest = newestLost, let first = firstLost else { return }
        cc.onCongestionEvent(lostPacketSentTime: newest, now: t)
        report.congestionEvents += 1
        let pto = smoothedRTT + max(rttVar * 4, .milliseconds(1)) + config.maxAckDelay
        if hasRTTSample, count >= 2, newest - first > pto * 3 {
            cc.onPersistentCongestion(now: t)
            report.persistentCongestions += 1
        }
    }

    /// RFC 9002 §6.2: no ACK for a PTO: send two probes regardless of the window.
    private func onPTOTimer(_ now: UInt64) {
        guard bytesInFlight > 0 else { return }
        let deadline = ptoDeadline
        if now < deadline {
            ptoTimer = deadline
            return
        }
        ptoCount += 1
        sendPacket(now)
        sendPacket(now)
        ptoTimer = ptoDeadline
    }

    // MARK: Link and receiver

    private func enterLink(_ pn: Int, size: Int, at now: UInt64) {
        let backlog = linkFreeAt > now ? Int(Double(linkFreeAt - now) * bytesPerNanosecond) : 0
        guard backlog + size <= config.queueBytes else {
            report.queueDrops += 1
            return
        }
        report.maxQueueBytes = max(report.maxQueueBytes, backlog + size)
        if now >= measureFrom {
            queueDelaySum += Double(linkFreeAt > now ? linkFreeAt - now : 0)
            queueDelayCount += 1
        }
        let departs = max(now, linkFreeAt) + UInt64((Double(size) / bytesPerNanosecond).rounded())
        linkFreeAt = departs
        // Random loss on the wire after the bottleneck (a lossy radio hop, say).
        if config.randomLoss > 0, random.unit() < config.randomLoss {
            report.randomDrops += 1
            return
        }
        arrivals.append((departs + halfRTT, pn))
    }

    private func receive(_ pn: Int, at now: UInt64) {
        if now >= measureFrom { deliveredBytes += sent[pn].size }
        let gap = pn != largestReceived + 1
        largestReceived = max(largestReceived, pn)
        pendingAck.append(pn)
        if pendingAck.count >= config.ackEvery || gap {
            sendAck(at: now)
        } else if ackTimer == nil {
            ackTimer = now + config.maxAckDelay.nanoseconds
        }
    }

    private func sendAck(at now: UInt64) {
        ackTimer = nil
        guard !pendingAck.isEmpty else { return }
        acks.append((now + halfRTT, pendingAck))
        pendingAck.removeAll(keepingCapacity: true)
    }
}

/// The loss-based controllers whose initial slow start runs HyStart++ (HyStart.swift).
private protocol HyStartSlowStart: CongestionController {
    var hystartPhase: HyStartPhase { get }
    var ssthresh: Int { get }
}
extension Cubic: HyStartSlowStart {}
extension NewReno: HyStartSlowStart {}
extension Westwood: HyStartSlowStart {}
