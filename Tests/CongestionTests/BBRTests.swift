import Congestion
// BBRv3 (draft-ietf-ccwg-bbr-03): unit tests of the model and state machine rules, driven by
// synthetic ACKs from an idealised path (`BBRFluidPath`), and a packet-level bottleneck model
// (`BBRBottleneckModel`) that drives the controller exactly like a QUIC connection does.
import XCTest

final class BBRTests: XCTestCase {
    // MARK: Path model

    func testWindowedMaxFilterKeepsTheMaximumForTheWindowThenHandsOver() {
        var f = BBRWindowedMaxFilter()
        XCTAssertEqual(f.update(value: 10, time: 0, window: 2), 10)
        XCTAssertEqual(f.update(value: 5, time: 0, window: 2), 10)
        XCTAssertEqual(f.update(value: 7, time: 1, window: 2), 10, "a sample one cycle old is still in a 2-cycle window")
        XCTAssertEqual(f.update(value: 3, time: 2, window: 2), 7, "the 10 of cycle 0 expired; cycle 1's 7 takes over")
        XCTAssertEqual(f.update(value: 2, time: 3, window: 2), 3, "cycle 1 expired too; cycle 2's 3 is the best left")
        XCTAssertEqual(f.update(value: 20, time: 3, window: 2), 20, "a new maximum replaces everything at once")
        XCTAssertEqual(f.update(value: 1, time: 9, window: 2), 1, "after a gap longer than the window nothing old survives")
        XCTAssertEqual(f.update(value: 4, time: 9, window: 1), 4)
        XCTAssertEqual(f.update(value: 3, time: 10, window: 1), 3, "a 1-round window forgets the previous round")
    }

    func testRoundsAreCountedFromThePriorDeliveredOfTheNewestAckedPacket() {
        let bbr = BBR(maxDatagramSize: 1200, randomSeed: 1)
        let ack = BBRDirectAcks(bbr)
        ack.ack(priorDelivered: 0)
        XCTAssertEqual(bbr.roundCount, 1, "the first ACK ends round 0 (next_round_delivered starts at 0)")
        for _ in 0..<4 { ack.ack(priorDelivered: 0) }
        XCTAssertEqual(bbr.roundCount, 1, "packets sent before the round's first ACK belong to the same round")
        ack.ack(priorDelivered: 2_400)
        XCTAssertEqual(bbr.roundCount, 2, "a packet sent after 1200 B were delivered closes the round")
        ack.ack(priorDelivered: 3_600)
        XCTAssertEqual(bbr.roundCount, 2, "the new round ends only with a packet sent after its start (7200 B)")
        ack.ack(priorDelivered: 7_200)
        XCTAssertEqual(bbr.roundCount, 3)
        ack.ack(priorDelivered: 9_600, withRateSample: false)
        XCTAssertEqual(bbr.roundCount, 4, "without a rate sample the packet's own delivery snapshot counts the round")
    }

    // MARK: Startup and Drain

    func testStartupExitsAfterThreeRoundsWithoutTwentyFivePercentGrowth() {
        let bbr = BBR(maxDatagramSize: 1200, randomSeed: 1)
        let path = BBRFluidPath(bbr, rate: 1e6, rtt: .milliseconds(40), acksPerRound: 1)
        for rate in [1e6, 2e6, 4e6, 8e6] {
            path.rate = rate
            path.ack(inflight: 10_000_000)
        }
        XCTAssertEqual(bbr.state, .startup)
        path.rate = 9e6
        path.ack(inflight: 10_000_000)  // < 1.25 × 8e6: plateau round 1
        path.rate = 9.5e6
        path.ack(inflight: 10_000_000)  // round 2
        XCTAssertEqual(bbr.state, .startup, "two rounds without growth are not enough")
        XCTAssertFalse(bbr.fullBandwidthReached)
        path.rate = 9.9e6
        path.ack(inflight: 10_000_000)  // round 3
        XCTAssertTrue(bbr.fullBandwidthReached, "three rounds below 25 % growth mean the pipe is full")
        XCTAssertEqual(bbr.state, .drain, "with a queue still in flight Startup hands over to Drain")
        XCTAssertEqual(bbr.pacingGain, 0.35)
        XCTAssertEqual(bbr.maxBandwidth, 9.9e6)
        XCTAssertEqual(bbr.pacingRate!, 0.35 * 9.9e6 * 0.99, accuracy: 1, "Drain paces at 0.35 × bw less the 1 % margin")
        path.ack(inflight: 100_000)  // below bw × min_rtt = 396 kB
        XCTAssertTrue(bbr.state.isProbeBW, "Drain ends once inflight fits the BDP; got \(bbr.state)")
    }

    func testStartupExitsOnLossRateAboveTwoPercentWithSixLossEvents() {
        for events in [5, 6] {
            let bbr = BBR(maxDatagramSize: 1200, randomSeed: 1)
            let path = BBRFluidPath(bbr, rate: 1e6, rtt: .milliseconds(40), acksPerRound: 10)
            for _ in 0..<10 { path.ack(inflight: 100_000) }
            // Round 2: `events` separate loss detections, then rounds whose samples show 7 % loss.
            for i in 0..<10 {
                path.rate = 2e6
                path.ack(inflight: 100_000)
                if i < events { path.lose(bytes: 1_200, sentWithInflight: 100_000) }
            }
            for _ in 0..<12 { path.ack(inflight: 100_000, lostSinceSend: 7_200) }
            if events < 6 {  // BBRStartupFullLossCnt
                XCTAssertEqual(bbr.state, .startup, "\(events) loss events must not end Startup")
                XCTAssertFalse(bbr.fullBandwidthReached)
            } else {
                XCTAssertTrue(bbr.fullBandwidthReached, "6 loss events and 7 % loss must end Startup")
                XCTAssertNotEqual(bbr.state, .startup)
                XCTAssertTrue(bbr.inflightLongterm.isFinite, "inflight_longterm is set from the losses")
                XCTAssertGreaterThanOrEqual(
                    bbr.inflightLongterm, (2e6 * 0.040).rounded(.down),
                    "inflight_longterm = max(bdp, inflight_latest)")
            }
        }
    }

    // MARK: ProbeBW

    func testProbeBWCyclesThroughDownCruiseRefillUpInOrder() {
        let bbr = BBR(maxDatagramSize: 1200, randomSeed: 7)
        let path = BBRFluidPath(bbr, rate: 12.5e6, rtt: .milliseconds(10), acksPerRound: 10)
        var sequence: [BBRState] = []
        var refillRounds: [UInt64] = []
        var refillStartRound: UInt64 = 0
        // 4 s: several ~63-round cycles, and no ProbeRTT yet (due 5 s after the first RTT sample).
        for _ in 0..<4_000 {
            path.ack()
            let s = bbr.state
            if sequence.last != s {
                if sequence.last == .probeBWRefill { refillRounds.append(bbr.roundCount - refillStartRound) }
                if s == .probeBWRefill { refillStartRound = bbr.roundCount }
                sequence.append(s)
            }
            switch s {
            case .probeBWDown: XCTAssertEqual(bbr.pacingGain, 0.90)
            case .probeBWCruise, .probeBWRefill: XCTAssertEqual(bbr.pacingGain, 1.0)
            case .probeBWUp:
                XCTAssertEqual(bbr.pacingGain, 1.25)
                XCTAssertEqual(bbr.cwndGain, 2.25)
            default: break
            }
        }
        XCTAssertEqual(sequence.first, .startup)
        XCTAssertFalse(sequence.contains(.probeRTT))
        let allowed: Set<String> = [
            "ProbeBW_DOWN>ProbeBW_CRUISE", "ProbeBW_DOWN>ProbeBW_REFILL",
            "ProbeBW_CRUISE>ProbeBW_REFILL", "ProbeBW_REFILL>ProbeBW_UP", "ProbeBW_UP>ProbeBW_DOWN",
        ]
        let probeBW = sequence.filter(\.isProbeBW)
        for (a, b) in zip(probeBW, probeBW.dropFirst()) {
            XCTAssertTrue(allowed.contains("\(a.rawValue)>\(b.rawValue)"), "ProbeBW went \(a.rawValue) → \(b.rawValue)")
        }
        let cycles = zip(probeBW, probeBW.dropFirst()).filter { $0 == .probeBWUp && $1 == .probeBWDown }.count
        XCTAssertGreaterThanOrEqual(cycles, 3, "expected several full cycles in 4 s: \(sequence.map(\.rawValue))")
        XCTAssertTrue(refillRounds.allSatisfy { $0 == 1 }, "REFILL lasts one round: \(refillRounds)")
    }

    func testLossAboveTwoPercentWhileProbingUpSetsInflightLongtermAndGoesDown() {
        let bbr = BBR(maxDatagramSize: 1200, randomSeed: 7)
        let path = BBRFluidPath(bbr, rate: 12.5e6, rtt: .milliseconds(10), acksPerRound: 10)
        while bbr.state != .probeBWCruise { path.ack() }
        path.lose(bytes: 1_000, sentWithInflight: 10_000)  // lost_prev for the probe's loss below
        var guardSteps = 0
        while bbr.state != .probeBWUp && guardSteps < 10_000 {
            path.ack()
            guardSteps += 1
        }
        XCTAssertEqual(bbr.state, .probeBWUp)
        XCTAssertFalse(bbr.inflightLongterm.isFinite, "no loss has bounded inflight yet")
        // 2200 B lost out of 100 kB in flight (2.2 %): the 2 % crossing is 995.9 B into this packet.
        path.lose(bytes: 1_200, sentWithInflight: 100_000, lostBeforeSend: 0)
        XCTAssertEqual(bbr.state, .probeBWDown, "too much loss ends the probe")
        let inflightPrev = 100_000.0 - 1_200
        let lostPrev = 1_000.0
        let expected = (inflightPrev + (0.02 * inflightPrev - lostPrev) / 0.98).rounded(.down)
        XCTAssertEqual(bbr.inflightLongterm, expected, "inflight_longterm is the inflight where loss crossed 2 %")
        XCTAssertGreaterThan(expected, 0.7 * 125_000, "(above the Beta × BDP floor, so the formula decides)")
        path.lose(bytes: 1_200, sentWithInflight: 50_000)
        XCTAssertEqual(bbr.inflightLongterm, expected, "BBR reacts once per probe")
    }

    func testLossOutsideProbingLowersTheShortTermBoundsByBetaPerRound() {
        let bbr = BBR(maxDatagramSize: 1200, randomSeed: 7)
        let path = BBRFluidPath(bbr, rate: 12.5e6, rtt: .milliseconds(10), acksPerRound: 10)
        while bbr.state != .probeBWCruise { path.ack() }
        XCTAssertFalse(bbr.bandwidthShortterm.isFinite)
        let maxBw = bbr.maxBandwidth
        path.rate = maxBw / 2  // the path now delivers half as much...
        for _ in 0..<11 { path.ack() }  // ...for a whole round, so bw_latest sees only the new rate
        XCTAssertFalse(bbr.bandwidthShortterm.isFinite, "no loss, no short-term bound")
        path.lose(bytes: 1_200, sentWithInflight: 100_000)
        for _ in 0..<11 { path.ack() }
        XCTAssertEqual(bbr.state, .probeBWCruise)
        XCTAssertEqual(bbr.bandwidthShortterm, 0.7 * maxBw, accuracy: 1, "bw_shortterm = max(bw_latest, 0.7 × bw)")
        XCTAssertEqual(bbr.bandwidth, 0.7 * maxBw, accuracy: 1)
        XCTAssertEqual(bbr.pacingRate!, 0.7 * maxBw * 0.99, accuracy: 1, "CRUISE paces at bw less 1 %")
        path.lose(bytes: 1_200, sentWithInflight: 100_000)
        for _ in 0..<11 { path.ack() }
        XCTAssertEqual(bbr.bandwidthShortterm, maxBw / 2, accuracy: 1, "second lossy round: max(bw_latest 0.5, 0.49)")
        XCTAssertEqual(bbr.maxBandwidth, maxBw, "the long-term max_bw is not touched by loss")
    }

    // MARK: ProbeRTT

    func testProbeRTTStartsFiveSecondsAfterTheLastMinRTTDecrease() {
        let bbr = BBR(maxDatagramSize: 1200, randomSeed: 3)
        let path = BBRFluidPath(bbr, rate: 5e6, rtt: .milliseconds(40), acksPerRound: 10)
        let start = path.now
        var lowerSampleAt: Timestamp?
        var enteredAt: Timestamp?
        var exitedAt: Timestamp?
        while path.now < start + .milliseconds(9_000) {
            if lowerSampleAt == nil && path.now >= start + .milliseconds(3_000) {
                path.ack(rttSample: .milliseconds(39))  // a new minimum postpones ProbeRTT
                lowerSampleAt = path.now
            } else {
                path.ack()
            }
            if bbr.state == .probeRTT {
                if enteredAt == nil { enteredAt = path.now }
                XCTAssertEqual(bbr.cwndGain, 0.5)
                XCTAssertLessThanOrEqual(
                    Double(bbr.congestionWindow), max(0.5 * bbr.bdp, 4 * 1200) + 1,
                    "ProbeRTT holds cwnd at half the BDP")
            } else if enteredAt != nil && exitedAt == nil {
                exitedAt = path.now
                XCTAssertEqual(bbr.state, .probeBWCruise, "ProbeRTT returns to cruising once the pipe was full")
            }
        }
        guard let lowerSampleAt, let enteredAt, let exitedAt else { return XCTFail("no ProbeRTT in 9 s") }
        let delay = enteredAt - lowerSampleAt
        XCTAssertGreaterThan(delay, .milliseconds(5_000), "ProbeRTT came \(delay) after the last new min RTT")
        XCTAssertLessThanOrEqual(delay, .milliseconds(5_000) + .milliseconds(4), "ProbeRTT is due 5 s after the last new min RTT")
        XCTAssertEqual(bbr.minRTT, .milliseconds(39))
        XCTAssertGreaterThanOrEqual(exitedAt - enteredAt, .milliseconds(200), "ProbeRTT lasts at least 200 ms")
        XCTAssertLessThan(exitedAt - enteredAt, .milliseconds(400))
    }

    // MARK: Loss recovery and pacing

    func testCongestionEventKeepsTheWindowAndPersistentCongestionCollapsesToFourPackets() {
        let bbr = BBR(maxDatagramSize: 1200, randomSeed: 7)
        let path = BBRFluidPath(bbr, rate: 12.5e6, rtt: .milliseconds(10), acksPerRound: 10)
        while bbr.state != .probeBWCruise { path.ack() }
        let cwnd = bbr.congestionWindow
        bbr.onCongestionEvent(lostPacketSentTime: path.now - .milliseconds(5), now: path.now)
        XCTAssertEqual(bbr.congestionWindow, cwnd, "BBR does not halve like Reno; its model reacts instead")
        bbr.onPersistentCongestion(now: path.now)
        XCTAssertEqual(bbr.congestionWindow, 4 * 1200, "persistent congestion: BBR.MinPipeCwnd")
        path.ack(sentAfter: path.now)
        XCTAssertGreaterThanOrEqual(bbr.congestionWindow, cwnd, "the saved window comes back when recovery ends")
    }

    func testPacingRateStartsFromTheInitialWindowAndFollowsGainTimesBandwidth() {
        let bbr = BBR(maxDatagramSize: 1200, randomSeed: 7)
        XCTAssertEqual(bbr.pacingRate!, 2.77 * 12_000 / 0.001, accuracy: 1, "no RTT yet: the initial window per 1 ms")
        XCTAssertEqual(bbr.congestionWindow, 12_000)
        let path = BBRFluidPath(bbr, rate: 100_000, rtt: .milliseconds(40), acksPerRound: 10)
        path.ack()
        XCTAssertEqual(bbr.pacingRate!, 2.77 * 12_000 / 0.040, accuracy: 1, "with SRTT: 2.77 × InitialCwnd / SRTT")
        path.rate = 12.5e6
        while bbr.state != .probeBWCruise { path.ack() }
        XCTAssertEqual(bbr.pacingRate!, bbr.bandwidth * 0.99, accuracy: 1)
        XCTAssertEqual(bbr.maxBandwidth, 12.5e6, accuracy: 1)
        XCTAssertEqual(bbr.minRTT, .milliseconds(40))
        XCTAssertEqual(bbr.name, "bbr")
    }

    // MARK: Packet-level bottleneck model

    func testStartupFindsTheRateOfADeepBufferWithoutLoss() {
        var scenario = BBRLinkScenario(rateBitsPerSecond: 50e6, rtt: .milliseconds(40), queueBDPs: 8)
        scenario.duration = .milliseconds(3_000)
        scenario.measureFrom = .milliseconds(1_000)
        let r = BBRBottleneckModel(scenario).run()
        print(
            "BBR 50 Mbit/s 40 ms 8-BDP queue: pipe full at \(r.pipeFullAt.map { "\(bbrMs($0)) ms" } ?? "never"), max_bw then "
                + "\(bbrMbps(r.maxBwWhenPipeFull * 8)) Mbit/s, drops before \(r.queueDropsBeforePipeFull)")
        XCTAssertNotNil(r.pipeFullAt, "Startup should end on a bandwidth plateau")
        XCTAssertEqual(r.queueDropsBeforePipeFull, 0, "an 8-BDP buffer holds Startup's queue: the exit was not loss-driven")
        XCTAssertEqual(r.maxBwWhenPipeFull * 8 / 50e6, 1, accuracy: 0.1, "max_bw at Startup exit is the link rate")
    }

    func testFiftyMbitFortyMsOneBDPQueue() {
        let r = BBRBottleneckModel(BBRLinkScenario(rateBitsPerSecond: 50e6, rtt: .milliseconds(40), queueBDPs: 1)).run()
        print("BBR (a) 50 Mbit/s 40 ms 1-BDP queue: " + r.summary)
        XCTAssertGreaterThanOrEqual(r.utilisation, 0.90, "utilisation after 5 s")
        XCTAssertLessThan(r.medianQueueDelay, .milliseconds(40), "median queueing delay must stay below one BDP's delay")
    }

    func testFiftyMbitFortyMsWithRandomLoss() {
        // Which packets the random loss hits decides how early a ProbeBW_UP is cut short, so the
        // figure is averaged over several loss patterns (seeds).
        func runs(_ loss: Double, seeds: ClosedRange<UInt64>) -> [BBRLinkResult] {
            seeds.map { seed in
                var scenario = BBRLinkScenario(rateBitsPerSecond: 50e6, rtt: .milliseconds(40), queueBDPs: 1)
                scenario.randomLoss = loss
                scenario.seed = seed
                return BBRBottleneckModel(scenario).run()
            }
        }
        func describe(_ rs: [BBRLinkResult]) -> String {
            let u = rs.map(\.utilisation)
            return "utilisation after 5 s mean \(bbrPercent(u.reduce(0, +) / Double(u.count)))%, min \(bbrPercent(u.min()!))%, "
                + "max \(bbrPercent(u.max()!))% over \(u.count) seeds; first run: \(rs[0].summary)"
        }
        let one = runs(0.01, seeds: 1...6)
        print("BBR (b) 50 Mbit/s 40 ms 1-BDP queue 1 % random loss: " + describe(one))
        let three = runs(0.03, seeds: 1...3)
        print("BBR (b) 50 Mbit/s 40 ms 1-BDP queue 3 % random loss: " + describe(three))
        let mean = one.map(\.utilisation).reduce(0, +) / Double(one.count)
        XCTAssertGreaterThanOrEqual(mean, 0.80, "BBRv3 is meant to tolerate 1 % random loss (loss below LossThresh)")
        XCTAssertGreaterThanOrEqual(one.map(\.utilisation).min()!, 0.70)
    }

    func testFiftyMbitSixHundredMsTimeToNinetyPercent() {
        var scenario = BBRLinkScenario(rateBitsPerSecond: 50e6, rtt: .milliseconds(600), queueBDPs: 1)
        scenario.duration = .milliseconds(20_000)
        let r = BBRBottleneckModel(scenario).run()
        print("BBR (c) 50 Mbit/s 600 ms 1-BDP queue: " + r.summary)
        guard let t = r.timeTo90Percent else { return XCTFail("never reached 90 % of the link rate") }
        // Startup needs about log2(BDP / initial window) ≈ 8.3 rounds of 600 ms plus the plateau rounds.
        XCTAssertLessThan(t, .milliseconds(10_000))
        // Each ProbeRTT costs 200 ms plus a 600 ms round at half the BDP, every 5 s.
        XCTAssertGreaterThanOrEqual(r.utilisation, 0.80)
    }
}

// MARK: - Synthetic ACK drivers

/// ACKs with hand-picked P.delivered values, for the round-counting rules.
private final class BBRDirectAcks {
    let bbr: BBR
    var now = Timestamp(nanoseconds: 1_000_000_000)
    var delivered = 0
    init(_ bbr: BBR) { self.bbr = bbr }

    func ack(priorDelivered: Int, bytes: Int = 1_200, withRateSample: Bool = true) {
        now = now + .milliseconds(1)
        delivered += bytes
        let rtt = Duration.milliseconds(40)
        var snap = DeliverySnapshot()
        snap.delivered = priorDelivered
        snap.bytesInFlight = 20_000
        let sample = RTTSample(latest: rtt, smoothed: rtt, minimum: rtt, variation: .zero)
        bbr.onPacketAcked(
            AckedPacketInfo(sentBytes: bytes, timeSent: now - rtt, delivery: snap), rtt: sample,
            bytesInFlight: 20_000, now: now)
        let rs = RateSample(
            deliveryRate: 1e6, delivered: delivered - priorDelivered, interval: rtt, isAppLimited: false,
            priorDelivered: priorDelivered, lost: 0, txInFlight: 20_000, rtt: rtt)
        bbr.onAckProcessed(
            AckSummary(
                now: now, ackedBytes: bytes, priorBytesInFlight: 20_000 + bytes, bytesInFlight: 20_000,
                rtt: sample, hasNewRTTSample: true, rateSample: withRateSample ? rs : nil))
    }
}

/// An idealised path: `acksPerRound` evenly spaced ACKs per RTT, each acknowledging rate × RTT /
/// acksPerRound bytes whose newest packet was sent one RTT earlier (so P.delivered is what was
/// delivered `acksPerRound` ACKs ago). Inflight defaults to min(cwnd, rate × RTT): no queue.
private final class BBRFluidPath {
    let bbr: BBR
    var now = Timestamp(nanoseconds: 1_000_000_000)
    var rate: Double
    var rtt: Duration
    let acksPerRound: Int
    private(set) var delivered = 0
    private(set) var lost = 0
    private var history: [Int]
    private var historyIndex = 0

    init(_ bbr: BBR, rate: Double, rtt: Duration, acksPerRound: Int) {
        self.bbr = bbr
        self.rate = rate
        self.rtt = rtt
        self.acksPerRound = acksPerRound
        history = Array(repeating: 0, count: acksPerRound)
    }

    func ack(inflight: Int? = nil, rttSample: Duration? = nil, lostSinceSend: Int = 0, sentAfter: Timestamp? = nil) {
        let step = rtt / UInt64(acksPerRound)
        now = now + step
        let bytes = max(1, Int(rate * step.seconds))
        let prior = history[historyIndex]
        delivered += bytes
        history[historyIndex] = delivered
        historyIndex = (historyIndex + 1) % acksPerRound
        let r = rttSample ?? rtt
        let inf = inflight ?? min(bbr.congestionWindow, Int(rate * rtt.seconds))
        var snap = DeliverySnapshot()
        snap.delivered = prior
        snap.bytesInFlight = inf
        snap.lost = lost - lostSinceSend
        let sample = RTTSample(latest: r, smoothed: r, minimum: r, variation: .zero)
        let timeSent = sentAfter.map { $0 + .microseconds(1) } ?? now - r
        bbr.onPacketAcked(
            AckedPacketInfo(sentBytes: bytes, timeSent: timeSent, delivery: snap), rtt: sample,
            bytesInFlight: inf, now: now)
        let rs = RateSample(
            deliveryRate: rate, delivered: delivered - prior, interval: r, isAppLimited: false,
            priorDelivered: prior, lost: lostSinceSend, txInFlight: inf, rtt: r)
        bbr.onAckProcessed(
            AckSummary(
                now: now, ackedBytes: bytes, priorBytesInFlight: inf + bytes, bytesInFlight: inf,
                rtt: sample, hasNewRTTSample: true, rateSample: rs))
    }

    /// One packet declared lost now (its own detection instant). `lostBeforeSend` is C.lost when it
    /// was sent (default: everything lost so far).
    func lose(bytes: Int, sentWithInflight: Int, lostBeforeSend: Int? = nil) {
        now = now + .microseconds(10)
        var snap = DeliverySnapshot()
        snap.delivered = delivered
        snap.bytesInFlight = sentWithInflight
        snap.lost = lostBeforeSend ?? lost
        lost += bytes
        bbr.onPacketLost(LostPacketInfo(sentBytes: bytes, timeSent: now - rtt, delivery: snap), bytesInFlight: sentWithInflight, now: now)
    }
}

// MARK: - Packet-level bottleneck model

/// A bottleneck link: rate, symmetric one-way propagation delays, a drop-tail queue, optional
/// random loss on the wire, and a QUIC-like receiver that acknowledges every second packet
/// (immediately on a gap, else after max_ack_delay).
private struct BBRLinkScenario {
    var rateBitsPerSecond: Double
    var rtt: Duration
    /// Drop-tail capacity (bytes queued plus the rest of the packet in service), in BDPs.
    var queueBDPs: Double
    var randomLoss = 0.0
    var duration = Duration.milliseconds(20_000)
    var measureFrom = Duration.milliseconds(5_000)
    var packetSize = 1_200
    var maxAckDelay = Duration.milliseconds(25)
    var seed: UInt64 = 0x5EED_BB12

    init(rateBitsPerSecond: Double, rtt: Duration, queueBDPs: Double) {
        self.rateBitsPerSecond = rateBitsPerSecond
        self.rtt = rtt
        self.queueBDPs = queueBDPs
    }
    var bytesPerSecond: Double { rateBitsPerSecond / 8 }
    var queueBytes: Int { Int(queueBDPs * bytesPerSecond * rtt.seconds) }
}

private struct BBRLinkResult {
    /// Bytes received after `measureFrom` over what the link could carry in that time.
    var utilisation = 0.0
    var medianQueueDelay = Duration.zero
    var p95QueueDelay = Duration.zero
    var queueDrops = 0
    var randomDrops = 0
    var packetsSent = 0
    /// End of the first 500 ms window that carried at least 90 % of the link rate.
    var timeTo90Percent: Duration?
    /// When Startup decided the pipe was full (BBR.full_bw_reached), and what it knew then.
    var pipeFullAt: Duration?
    var queueDropsBeforePipeFull = 0
    var maxBwWhenPipeFull = 0.0
    var timeInState: [BBRState: Double] = [:]
    var finalMaxBw = 0.0
    var finalMinRTT: Duration?

    var summary: String {
        let states = BBRState.allCases.compactMap { s -> String? in
            guard let t = timeInState[s], t > 0 else { return nil }
            return "\(s.rawValue) \(Int((t * 100).rounded()))%"
        }.joined(separator: ", ")
        return "utilisation after 5 s \(bbrPercent(utilisation))%, queueing delay p50 "
            + "\(bbrMs(medianQueueDelay)) ms p95 \(bbrMs(p95QueueDelay)) ms, drops queue \(queueDrops) random \(randomDrops) "
            + "of \(packetsSent), time to 90 % \(timeTo90Percent.map { "\(bbrMs($0)) ms" } ?? "never"), pipe full at "
            + "\(pipeFullAt.map { "\(bbrMs($0)) ms" } ?? "never"), max_bw \(bbrMbps(finalMaxBw * 8)) Mbit/s, "
            + "min_rtt \(finalMinRTT.map { bbrMs($0) } ?? "-") ms; time in states: \(states)"
    }
}

private func bbrPercent(_ x: Double) -> String { String(Double(Int((x * 1000).rounded())) / 10) }
private func bbrMs(_ d: Duration) -> String { String(Double(Int((d.milliseconds * 10).rounded())) / 10) }
private func bbrMbps(_ bps: Double) -> String { String(Double(Int((bps / 1e5).rounded())) / 10) }

/// xorshift64*, seeded: the random losses are the same on every run.
private struct BBRTestRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 1 : seed }
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }
    mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }
}

/// RFC 9002 §5 RTT estimation, as the connection does it.
private struct BBRTestRTTEstimator {
    var latest = Duration.zero, smoothed = Duration.zero, variation = Duration.zero, minimum = Duration.zero
    var hasSample = false

    mutating func update(latest l: Duration, ackDelay: Duration) {
        latest = l
        guard hasSample else {
            hasSample = true
            minimum = l
            smoothed = l
            variation = l / 2
            return
        }
        minimum = min(minimum, l)
        let adjusted = l >= minimum + ackDelay ? l - ackDelay : l
        let diff = smoothed > adjusted ? smoothed - adjusted : adjusted - smoothed
        variation = (variation * 3 + diff) / 4
        smoothed = (smoothed * 7 + adjusted) / 8
    }
    var sample: RTTSample { RTTSample(latest: latest, smoothed: smoothed, minimum: minimum, variation: variation) }
    /// RFC 9002 §6.1.2: 9/8 × max(smoothed, latest), at least 1 ms.
    var lossDelay: Duration { max(max(smoothed, latest) * 9 / 8, .milliseconds(1)) }
    var probeTimeout: Duration { smoothed + max(variation * 4, .milliseconds(1)) + .milliseconds(25) }
}

/// Drives one BBR sender through a `BBRLinkScenario`: paced by the controller's rate through the
/// connection's `Pacer`, limited by cwnd, with a `DeliveryRateEstimator` and RFC 9002 RTT and
/// loss detection (packet and time thresholds, PTO probes) feeding the controller in the same
/// order as Connection+Recovery.swift.
private final class BBRBottleneckModel {
    private struct Packet {
        var size: Int
        var sent: Timestamp
        var snapshot: DeliverySnapshot
        var state: UInt8  // 0 in flight, 1 acknowledged, 2 lost
    }
    private struct Ack {
        var arrival: UInt64
        var first: Int  // range into `ackedNumbers`
        var count: Int
        var largest: Int
        var ackDelay: Duration
    }

    let scenario: BBRLinkScenario
    let bbr: BBR
    private var estimator = DeliveryRateEstimator()
    private var rtt = BBRTestRTTEstimator()
    private var pacer: Pacer
    private var random: BBRTestRandom
    private var packets: [Packet] = []
    private var bytesInFlight = 0
    private var largestAcked = -1
    private var firstUnresolved = 0
    private var lossTime: UInt64?
    private var lastSendTime: UInt64 = 0
    private var ptoCount = 0
    // Bottleneck and receiver.
    private let bytesPerNs: Double
    private let oneWay: UInt64
    private var linkFreeAt: UInt64 = 0
    private var pending: [Int] = []
    private var pendingDeadline: UInt64 = 0
    private var lastPendingArrival: UInt64 = 0
    private var lastReceived = -1
    private var acks: [Ack] = []
    private var ackedNumbers: [Int] = []
    private var ackHead = 0
    private var newlyAcked: [Int] = []
    // Measurements.
    private var binBytes: [Int]
    private static let bin: UInt64 = 100_000_000
    private var queueDelays: [UInt64] = []
    private var result = BBRLinkResult()

    init(_ scenario: BBRLinkScenario) {
        self.scenario = scenario
        bbr = BBR(maxDatagramSize: scenario.packetSize, randomSeed: scenario.seed)
        pacer = Pacer(maxDatagramSize: scenario.packetSize)
        random = BBRTestRandom(seed: scenario.seed)
        bytesPerNs = scenario.bytesPerSecond / 1e9
        oneWay = scenario.rtt.nanoseconds / 2
        binBytes = Array(repeating: 0, count: Int(scenario.duration.nanoseconds / Self.bin) + 1)
        packets.reserveCapacity(Int(scenario.bytesPerSecond * scenario.duration.seconds) / scenario.packetSize + 1_000)
    }

    func run() -> BBRLinkResult {
        let end = scenario.duration.nanoseconds
        var now: UInt64 = 0
        var lastState = bbr.state
        var lastStateTime: UInt64 = 0
        while true {
            var tSend = UInt64.max
            if bytesInFlight < bbr.congestionWindow {
                let rate = Pacer.rate(
                    congestionWindow: bbr.congestionWindow, smoothedRTT: rtt.smoothed,
                    controllerRate: bbr.pacingRate)
                tSend = pacer.delay(for: scenario.packetSize, rate: rate, now: Timestamp(nanoseconds: now))?.nanoseconds ?? now
            }
            let tAck = ackHead < acks.count ? acks[ackHead].arrival : .max
            let tDelayedAck = pending.isEmpty ? UInt64.max : pendingDeadline
            let tLoss = lossTime ?? .max
            let tPTO =
                bytesInFlight > 0 && rtt.hasSample
                ? lastSendTime + rtt.probeTimeout.nanoseconds << UInt64(min(ptoCount, 10)) : .max
            let t = min(tSend, tAck, tDelayedAck, tLoss, tPTO)
            if t >= end { break }
            now = max(now, t)
            if t == tAck {
                processAck(now: now)
            } else if t == tDelayedAck {
                emitAck(at: now)
            } else if t == tLoss {
                detectLosses(now: now)
            } else if t == tPTO {
                ptoCount += 1
                send(now: now)  // RFC 9002 §6.2.4: a probe may exceed the window
            } else {
                send(now: now)
            }
            if bbr.state != lastState {
                result.timeInState[lastState, default: 0] += Double(now - lastStateTime) / Double(end)
                lastState = bbr.state
                lastStateTime = now
            }
            if result.pipeFullAt == nil && bbr.fullBandwidthReached {
                result.pipeFullAt = Duration(nanoseconds: now)
                result.queueDropsBeforePipeFull = result.queueDrops
                result.maxBwWhenPipeFull = bbr.maxBandwidth
            }
        }
        result.timeInState[lastState, default: 0] += Double(end - lastStateTime) / Double(end)
        return finish()
    }

    private func finish() -> BBRLinkResult {
        let s = scenario
        let fromBin = Int(s.measureFrom.nanoseconds / Self.bin)
        let toBin = Int(s.duration.nanoseconds / Self.bin)
        let received = binBytes[fromBin..<toBin].reduce(0, +)
        result.utilisation = Double(received) / (s.bytesPerSecond * (s.duration - s.measureFrom).seconds)
        let sorted = queueDelays.sorted()
        if !sorted.isEmpty {
            result.medianQueueDelay = Duration(nanoseconds: sorted[sorted.count / 2])
            result.p95QueueDelay = Duration(nanoseconds: sorted[sorted.count * 95 / 100])
        }
        // First 500 ms window (5 bins) carrying 90 % of the link rate.
        let target = 0.9 * s.bytesPerSecond * 0.5
        var window = 0
        for i in 0..<toBin {
            window += binBytes[i]
            if i >= 5 { window -= binBytes[i - 5] }
            if i >= 4 && Double(window) >= target {
                result.timeTo90Percent = Duration(nanoseconds: UInt64(i + 1) * Self.bin)
                break
            }
        }
        result.packetsSent = packets.count
        result.finalMaxBw = bbr.maxBandwidth
        result.finalMinRTT = bbr.minRTT
        return result
    }

    // MARK: Sender

    private func send(now: UInt64) {
        let size = scenario.packetSize
        let ts = Timestamp(nanoseconds: now)
        let pn = packets.count
        let snapshot = estimator.onPacketSent(bytes: size, bytesInFlight: bytesInFlight, now: ts)
        bytesInFlight += size
        bbr.onPacketSent(bytes: size, bytesInFlight: bytesInFlight, now: ts)
        pacer.onSent(bytes: size)
        packets.append(Packet(size: size, sent: ts, snapshot: snapshot, state: 0))
        lastSendTime = now
        traverseBottleneck(pn, size: size, now: now)
    }

    private func processAck(now: UInt64) {
        let ack = acks[ackHead]
        ackHead += 1
        let ts = Timestamp(nanoseconds: now)
        newlyAcked.removeAll(keepingCapacity: true)
        for i in ack.first..<(ack.first + ack.count) where packets[ackedNumbers[i]].state == 0 {
            newlyAcked.append(ackedNumbers[i])
        }
        largestAcked = max(largestAcked, ack.largest)
        guard !newlyAcked.isEmpty else { return }
        var hasNewRTT = false
        if packets[ack.largest].state == 0 {
            rtt.update(latest: ts - packets[ack.largest].sent, ackDelay: min(ack.ackDelay, scenario.maxAckDelay))
            hasNewRTT = true
        }
        let priorInFlight = bytesInFlight
        var ackedBytes = 0
        for pn in newlyAcked {
            packets[pn].state = 1
            let p = packets[pn]
            bytesInFlight -= p.size
            ackedBytes += p.size
            estimator.onPacketAcked(p.snapshot, bytes: p.size, timeSent: p.sent, now: ts)
            bbr.onPacketAcked(
                AckedPacketInfo(sentBytes: p.size, timeSent: p.sent, delivery: p.snapshot), rtt: rtt.sample,
                bytesInFlight: bytesInFlight, now: ts)
        }
        let sample = estimator.generateSample(minRTT: rtt.minimum)
        bbr.onAckProcessed(
            AckSummary(
                now: ts, ackedBytes: ackedBytes, priorBytesInFlight: priorInFlight,
                bytesInFlight: bytesInFlight, rtt: rtt.sample, hasNewRTTSample: hasNewRTT,
                rateSample: sample))
        ptoCount = 0
        detectLosses(now: now)
    }

    /// RFC 9002 §6.1: packet threshold 3, time threshold 9/8 RTT.
    private func detectLosses(now: UInt64) {
        lossTime = nil
        guard largestAcked >= 0 else { return }
        let ts = Timestamp(nanoseconds: now)
        let delay = rtt.lossDelay
        var newestLost: Timestamp?
        var pn = firstUnresolved
        while pn < largestAcked {
            if packets[pn].state == 0 {
                let p = packets[pn]
                if p.sent + delay <= ts || largestAcked >= pn + 3 {
                    packets[pn].state = 2
                    bytesInFlight -= p.size
                    newestLost = max(newestLost ?? p.sent, p.sent)
                    estimator.onPacketLost(bytes: p.size)
                    bbr.onPacketLost(
                        LostPacketInfo(sentBytes: p.size, timeSent: p.sent, delivery: p.snapshot),
                        bytesInFlight: bytesInFlight, now: ts)
                } else {
                    let t = (p.sent + delay).nanoseconds
                    lossTime = min(lossTime ?? t, t)
                }
            }
            pn += 1
        }
        while firstUnresolved < packets.count && packets[firstUnresolved].state != 0 { firstUnresolved += 1 }
        if let newestLost { bbr.onCongestionEvent(lostPacketSentTime: newestLost, now: ts) }
    }

    // MARK: Network and receiver

    private func traverseBottleneck(_ pn: Int, size: Int, now: UInt64) {
        let backlog = linkFreeAt > now ? Double(linkFreeAt - now) * bytesPerNs : 0
        if backlog + Double(size) > Double(scenario.queueBytes) {
            result.queueDrops += 1
            return
        }
        let start = max(now, linkFreeAt)
        linkFreeAt = start + UInt64((Double(size) / bytesPerNs).rounded())
        if now >= scenario.measureFrom.nanoseconds { queueDelays.append(start - now) }
        if scenario.randomLoss > 0 && random.uniform() < scenario.randomLoss {
            result.randomDrops += 1
            return
        }
        receive(pn, size: size, arrival: linkFreeAt + oneWay)
    }

    private func receive(_ pn: Int, size: Int, arrival: UInt64) {
        // The delayed ACK for an earlier lone packet fires before this one arrives.
        if !pending.isEmpty && arrival > pendingDeadline { emitAck(at: pendingDeadline) }
        let gap = pn != lastReceived + 1
        lastReceived = pn
        pending.append(pn)
        if pending.count == 1 { pendingDeadline = arrival + scenario.maxAckDelay.nanoseconds }
        lastPendingArrival = arrival
        let bin = Int(arrival / Self.bin)
        if bin < binBytes.count { binBytes[bin] += size }
        // RFC 9000 §13.2.1/§13.2.2: every second packet, or at once when a gap appears.
        if pending.count >= 2 || gap { emitAck(at: arrival) }
    }

    private func emitAck(at t: UInt64) {
        let first = ackedNumbers.count
        ackedNumbers.append(contentsOf: pending)
        acks.append(
            Ack(
                arrival: t + oneWay, first: first, count: pending.count, largest: pending.last!,
                ackDelay: Duration(nanoseconds: t - min(t, lastPendingArrival))))
        pending.removeAll(keepingCapacity: true)
    }
}
