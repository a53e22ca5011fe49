import Congestion
// Copa (NSDI 2018): the rules of §2.1 (standing RTT, target rate, velocity, slow start) and §2.2
// (competitive mode) checked one by one, then Copa driven through a packet-level model of a
// drop-tail bottleneck, alone, against itself and against NewReno.
import XCTest

final class CopaTests: XCTestCase {
    private let mss = 1200

    // MARK: Feeding ACKs by hand

    /// One ACK of `bytes` at `ms` with RTT sample `rttMs`; the smoothed RTT is fixed so the
    /// windows (srtt/2, one RTT, five RTTs) are known.
    private func ack(
        _ copa: Copa, atMs ms: Double, rttMs: Double, srttMs: Double = 100, bytes: Int = 1200,
        inFlight: Int? = nil
    ) {
        let now = Timestamp(nanoseconds: UInt64(ms * 1e6))
        let rtt = RTTSample(
            latest: .seconds(rttMs / 1000), smoothed: .seconds(srttMs / 1000),
            minimum: .seconds(rttMs / 1000), variation: .zero)
        let prior = inFlight ?? copa.congestionWindow
        copa.onAckProcessed(
            AckSummary(
                now: now, ackedBytes: bytes, priorBytesInFlight: prior,
                bytesInFlight: max(0, prior - bytes), rtt: rtt, hasNewRTTSample: true,
                rateSample: nil))
    }

    /// One ACK per millisecond over [fromMs, toMs) with the RTT `rttMs(t)`.
    private func ackEveryMs(_ copa: Copa, from fromMs: Int, to toMs: Int, rttMs: (Int) -> Double) {
        for t in fromMs..<toMs { ack(copa, atMs: Double(t), rttMs: rttMs(t)) }
    }

    /// A Copa that left slow start on a 50 ms queue (RTTmin 100 ms) at t ≈ 56 ms and whose
    /// window has been falling since.
    private func copaPastSlowStart() -> Copa {
        let copa = Copa(maxDatagramSize: mss)
        ackEveryMs(copa, from: 0, to: 101) { $0 == 0 ? 100 : 150 }
        XCTAssertFalse(copa.inSlowStart, "a 50 ms queue must end slow start")
        return copa
    }

    // MARK: §2.1 standing RTT and RTTmin

    func testStandingRTTIsTheLeastRTTOfTheLastHalfSmoothedRTT() {
        // srtt = 100 ms: a sample stays standing for srtt/2 = 50 ms, give or take one of the
        // filter's eight sub-windows (6.25 ms).
        let copa = Copa(maxDatagramSize: mss)
        ack(copa, atMs: 0, rttMs: 60)
        ackEveryMs(copa, from: 1, to: 46) { _ in 80 }
        XCTAssertEqual(copa.standingRTT?.milliseconds ?? 0, 60, accuracy: 0.001, "a sample 45 ms old is within srtt/2")
        ackEveryMs(copa, from: 46, to: 58) { _ in 80 }
        XCTAssertEqual(copa.standingRTT?.milliseconds ?? 0, 80, accuracy: 0.001, "a sample 57 ms old is outside srtt/2")
        XCTAssertEqual(copa.minRTT?.milliseconds ?? 0, 60, accuracy: 0.001, "RTTmin keeps the 60 ms sample for 10 s")
        XCTAssertEqual(copa.queueingDelay.milliseconds, 20, accuracy: 0.001, "d_q = RTTstanding − RTTmin")
        ack(copa, atMs: 58, rttMs: 70)
        XCTAssertEqual(copa.standingRTT?.milliseconds ?? 0, 70, accuracy: 0.001, "a lower sample is standing at once")
    }

    func testMinRTTForgetsSamplesOlderThanTenSeconds() {
        let copa = Copa(maxDatagramSize: mss)
        ack(copa, atMs: 0, rttMs: 50)
        var t = 100.0
        while t <= 12_000 {
            ack(copa, atMs: t, rttMs: 90)
            t += 100
        }
        XCTAssertEqual(copa.minRTT?.milliseconds ?? 0, 90, accuracy: 0.001, "a 12 s old minimum must have expired")
    }

    func testPacingRateIsTwiceWindowOverStandingRTT() {
        let copa = Copa(maxDatagramSize: mss)
        XCTAssertNil(copa.pacingRate, "no rate before an RTT sample")
        ack(copa, atMs: 0, rttMs: 40, srttMs: 40)
        let expected = 2 * Double(copa.congestionWindow) / 0.040
        XCTAssertEqual(copa.pacingRate ?? 0, expected, accuracy: 1)
    }

    // MARK: §2.1 slow start and the target rate

    func testSlowStartDoublesTheWindowPerRTTWhileTheQueueIsEmpty() {
        let copa = Copa(maxDatagramSize: mss)
        let initial = copa.congestionWindow
        var t = 0.0
        for round in 1...4 {
            // A window's worth of ACKs per round trip, RTT at its minimum (d_q = 0: λt = ∞).
            let start = copa.congestionWindow
            for _ in 0..<(start / mss) {
                ack(copa, atMs: t, rttMs: 100)
                t += 100.0 / Double(start / mss)
            }
            XCTAssertEqual(copa.congestionWindow, 2 * start, "round \(round): slow start doubles the window")
        }
        XCTAssertTrue(copa.inSlowStart)
        XCTAssertEqual(copa.congestionWindow, 16 * initial)
    }

    func testWindowMovesByVelocityOverDeltaTimesWindowPerPacket() {
        let copa = copaPastSlowStart()
        XCTAssertEqual(copa.velocity, 1)
        // Above target (d_q = 50 ms): one packet's ACK removes v/(δ·cwnd) packets.
        let before = Double(copa.congestionWindow)
        ack(copa, atMs: 101, rttMs: 150)
        let expectedDrop = Double(mss) * Double(mss) * 1 / (0.5 * before)
        XCTAssertEqual(
            before - Double(copa.congestionWindow), expectedDrop, accuracy: 1.0,
            "cwnd −= v/(δ·cwnd) packets above the target rate")
        // Below target (d_q = 0): the same amount is added.
        let w = Double(copa.congestionWindow)
        ack(copa, atMs: 102, rttMs: 100)
        XCTAssertEqual(
            Double(copa.congestionWindow) - w, Double(mss) * Double(mss) / (0.5 * w), accuracy: 1.0,
            "cwnd += v/(δ·cwnd) packets below the target rate")
    }

    func testEveryAckMovesTheWindowTowardTheTargetRate() {
        // λ ≤ λt ⇔ (cwnd/mss)/RTTstanding ≤ 1/(δ·d_q). Pick d_q so that the target window is five
        // packets below the current one: the window must come down to it, then hover around it.
        // (Within five RTTs of the start: a queue that never drains longer reads as a buffer-filler.)
        let copa = copaPastSlowStart()
        let start = Double(copa.congestionWindow) / Double(mss)
        let target = start - 5
        let rttMin = 0.100
        let queueing = rttMin / (target * 0.5 - 1)  // from target·δ·d_q = RTTmin + d_q
        let rttMs = (rttMin + queueing) * 1000
        var wrongWay = 0
        var below = 0
        var above = 0
        for t in 101..<450 {
            let before = Double(copa.congestionWindow) / Double(mss)
            ack(copa, atMs: Double(t), rttMs: rttMs)
            // The standing RTT needs srtt/2 to see the new queue; judge the ACKs after that.
            guard t > 160 else { continue }
            let after = Double(copa.congestionWindow) / Double(mss)
            let lambda = before / (copa.standingRTT?.seconds ?? 1)
            let lambdaTarget = 1 / (copa.delta * copa.queueingDelay.seconds)
            // congestionWindow is whole bytes: within a few bytes of the target the side is unknown.
            guard abs(lambda - lambdaTarget) > 1e-4 * lambdaTarget else { continue }
            if lambda <= lambdaTarget {
                below += 1
                if after < before { wrongWay += 1 }
            } else {
                above += 1
                if after > before { wrongWay += 1 }
            }
        }
        XCTAssertFalse(copa.isCompetitive)
        XCTAssertEqual(wrongWay, 0, "each ACK moves cwnd up when λ ≤ λt and down otherwise")
        XCTAssertGreaterThan(below, 0, "the window must reach the target from above")
        XCTAssertGreaterThan(above, 0)
        XCTAssertEqual(
            Double(copa.congestionWindow) / Double(mss), target, accuracy: 1.5,
            "cwnd/RTTstanding settles at 1/(δ·d_q)")
    }

    // MARK: §2.1 velocity

    func testVelocityDoublesOnlyAfterTheDirectionHeldForThreeRTTs() {
        // Round ends every 100 ms (srtt). Round [0,100) went down (slow start exit on a queue);
        // from 101 ms the queue is empty so the window only grows.
        let copa = copaPastSlowStart()
        var seen: [Double] = []
        for t in 101..<800 {
            ack(copa, atMs: Double(t), rttMs: 100)
            if t % 100 == 50 { seen.append(copa.velocity) }
        }
        // After the round ends at 100 (down), 200 (up, first), 300, 400 (up, held 3 RTTs),
        // 500 (4th: double), 600, 700.
        XCTAssertEqual(seen, [1, 1, 1, 1, 2, 4, 8], "v stays 1 for three RTTs in one direction, then doubles per RTT")
    }

    func testVelocityResetsToOneWhenTheDirectionTurnsAndTheRuleStartsOver() {
        // Grow for seven rounds (v reaches 16), then a 20 ms queue turns the window down; the
        // competitive switch that follows turns it up again. At each round end (every 100 ms)
        // the window's move over the round must give v by the rule: 1 on a turn, and after n
        // rounds in one direction 2^(n−3) once n > 3.
        let copa = copaPastSlowStart()
        var previousWindow = copa.congestionWindow
        var direction = -1
        var rounds = 1  // round [0, 100) went down
        var expected = 1.0
        var turnsAfterDoubling = 0
        var doublingsAfterTurn = 0
        for t in 101..<2_200 {
            if t % 100 == 0 {
                // Copa closes the round on this ACK before it moves the window: judge the round by
                // the window the previous ACK left.
                let moved = copa.congestionWindow > previousWindow ? 1 : (copa.congestionWindow < previousWindow ? -1 : direction)
                if moved == direction {
                    rounds += 1
                    if rounds > 3 {
                        expected *= 2
                        if turnsAfterDoubling > 0 { doublingsAfterTurn += 1 }
                    }
                } else {
                    if expected >= 8 { turnsAfterDoubling += 1 }
                    direction = moved
                    rounds = 1
                    expected = 1
                }
                previousWindow = copa.congestionWindow
            }
            ack(copa, atMs: Double(t), rttMs: t < 800 ? 100 : 120)
            if t % 100 == 0 {
                XCTAssertEqual(copa.velocity, expected, "round ending at \(t) ms: \(rounds) round(s) \(direction > 0 ? "up" : "down")")
            }
        }
        XCTAssertGreaterThan(turnsAfterDoubling, 0, "the scenario must turn the window while v > 1")
        XCTAssertGreaterThan(doublingsAfterTurn, 0, "and hold the new direction long enough to double again")
    }

    // MARK: §2.2 competitive mode

    func testNonDrainingQueueSwitchesToCompetitiveModeAndEmptyingQueueSwitchesBack() {
        let copa = copaPastSlowStart()
        // The queue swings between 50 and 100 ms and never comes near empty: 50 > 10 % of 100.
        var t = 101
        while t < 700 {
            ack(copa, atMs: Double(t), rttMs: t % 40 < 20 ? 150 : 200)
            t += 1
        }
        XCTAssertTrue(copa.isCompetitive, "no drain in five RTTs means a buffer-filler is present")
        // 1/δ grows by one per loss-free RTT.
        let before = 1 / copa.delta
        while t < 1_000 {
            ack(copa, atMs: Double(t), rttMs: t % 40 < 20 ? 150 : 200)
            t += 1
        }
        XCTAssertEqual(1 / copa.delta, before + 3, accuracy: 0.001, "1/δ += 1 per RTT without loss")
        // A loss halves 1/δ, at most once per round trip of losses.
        let grown = 1 / copa.delta
        copa.onCongestionEvent(lostPacketSentTime: Timestamp(nanoseconds: 950_000_000), now: Timestamp(nanoseconds: 1_000_000_000))
        XCTAssertEqual(1 / copa.delta, max(2, grown / 2), accuracy: 0.001, "loss halves 1/δ")
        copa.onCongestionEvent(lostPacketSentTime: Timestamp(nanoseconds: 990_000_000), now: Timestamp(nanoseconds: 1_000_500_000))
        XCTAssertEqual(1 / copa.delta, max(2, grown / 2), accuracy: 0.001, "a loss sent before the last reduction is the same event")
        // The queue empties once: back to the default mode with δ = 0.5.
        ack(copa, atMs: Double(t), rttMs: 101)
        XCTAssertFalse(copa.isCompetitive, "a nearly empty queue means only Copa-like flows share the bottleneck")
        XCTAssertEqual(copa.delta, 0.5)
    }

    func testDrainingQueueStaysInDefaultMode() {
        let copa = copaPastSlowStart()
        // The queue swings between 0 and 50 ms: it empties every 40 ms.
        ackEveryMs(copa, from: 101, to: 2_000) { $0 % 40 < 5 ? 100 : 150 }
        XCTAssertFalse(copa.isCompetitive)
        XCTAssertEqual(copa.delta, 0.5)
    }

    func testDefaultModeIgnoresLossAndPersistentCongestionCollapsesTheWindow() {
        let copa = copaPastSlowStart()
        let w = copa.congestionWindow
        copa.onCongestionEvent(lostPacketSentTime: Timestamp(nanoseconds: 90_000_000), now: Timestamp(nanoseconds: 101_000_000))
        XCTAssertEqual(copa.congestionWindow, w, "the default mode reacts to delay, not loss")
        XCTAssertEqual(copa.delta, 0.5)
        copa.onPersistentCongestion(now: Timestamp(nanoseconds: 102_000_000))
        XCTAssertEqual(copa.congestionWindow, 2 * mss, "RFC 9002 §7.6.2: minimum window")
        XCTAssertEqual(copa.velocity, 1)
    }

    func testNameAndInitialWindow() {
        let copa = Copa()
        XCTAssertEqual(copa.name, "copa")
        XCTAssertEqual(copa.congestionWindow, 12_000, "RFC 9002 §7.2 initial window for 1200-byte datagrams")
    }

    // MARK: Bottleneck model

    /// (a) Copa alone on 50 Mbit/s, 40 ms, a 1-BDP drop-tail queue.
    func testCopaAloneFillsTheLinkWithASmallQueue() {
        var model = CopaBottleneckModel(rateBitsPerSecond: 50e6, baseRTT: .milliseconds(40), queueBDPs: 1, seed: 1)
        model.addFlow(Copa(maxDatagramSize: mss))
        let result = model.run(seconds: 20, measureFrom: 5)
        let bdpMs = 40.0
        let packetMs = Double(mss * 8) / 50e6 * 1000
        print(
            String(
                format:
                    "Copa alone: utilisation %.1f %%, queueing delay p50 %.2f ms (%.1f packets; 1/δ = 2) p95 %.2f ms (1 BDP = %.0f ms), drops %d, competitive %.1f %% of ACKs",
                result.utilisation * 100, result.queueDelayP50Ms, result.queueDelayP50Ms / packetMs, result.queueDelayP95Ms, bdpMs,
                result.drops, result.competitiveFraction[0] * 100))
        XCTAssertGreaterThanOrEqual(result.utilisation, 0.90, "Copa must keep the link busy")
        XCTAssertLessThan(result.queueDelayP50Ms, 0.25 * bdpMs, "Copa keeps the queue far below the buffer")
        XCTAssertLessThan(result.competitiveFraction[0], 0.1, "alone, Copa drains its own queue and stays in the default mode")
    }

    /// Non-congestive loss (1 %, seeded) does not move Copa's default mode, which steers by delay.
    func testCopaKeepsTheLinkBusyUnderRandomLoss() {
        var model = CopaBottleneckModel(rateBitsPerSecond: 50e6, baseRTT: .milliseconds(40), queueBDPs: 1, randomLoss: 0.01, seed: 4)
        model.addFlow(Copa(maxDatagramSize: mss))
        let result = model.run(seconds: 20, measureFrom: 5)
        print(
            String(
                format: "Copa alone, 1 %% random loss: utilisation %.1f %%, queueing delay p50 %.2f ms, drops %d",
                result.utilisation * 100, result.queueDelayP50Ms, result.drops))
        XCTAssertGreaterThanOrEqual(result.utilisation, 0.90, "random loss must not throttle a delay-based controller")
    }

    /// (b) Two Copa flows, the second starting 1 s later.
    func testTwoCopaFlowsShareTheLinkFairly() {
        var model = CopaBottleneckModel(rateBitsPerSecond: 50e6, baseRTT: .milliseconds(40), queueBDPs: 1, seed: 2)
        model.addFlow(Copa(maxDatagramSize: mss))
        model.addFlow(Copa(maxDatagramSize: mss), start: .seconds(1))
        let result = model.run(seconds: 20, measureFrom: 5)
        let x = result.throughputs
        let jain = (x[0] + x[1]) * (x[0] + x[1]) / (2 * (x[0] * x[0] + x[1] * x[1]))
        print(
            String(
                format: "Two Copa flows: %.2f and %.2f Mbit/s, Jain %.4f, utilisation %.1f %%, queueing delay p50 %.2f ms",
                x[0] * 8e-6, x[1] * 8e-6, jain, result.utilisation * 100, result.queueDelayP50Ms))
        XCTAssertGreaterThanOrEqual(jain, 0.95, "two Copa flows must converge to fair shares")
        XCTAssertGreaterThanOrEqual(result.utilisation, 0.90)
    }

    /// (c) Copa against NewReno: Copa must notice the buffer-filler and hold its own.
    func testCopaCompetesWithNewReno() {
        var model = CopaBottleneckModel(rateBitsPerSecond: 50e6, baseRTT: .milliseconds(40), queueBDPs: 1, seed: 3)
        model.addFlow(Copa(maxDatagramSize: mss))
        model.addFlow(NewReno(maxDatagramSize: mss))
        let result = model.run(seconds: 20, measureFrom: 5)
        let x = result.throughputs
        let copaShare = x[0] / (result.rateBytesPerSecond)
        print(
            String(
                format:
                    "Copa vs NewReno: %.2f vs %.2f Mbit/s, Copa/NewReno %.2f, Copa share of link %.1f %%, competitive %.1f %% of ACKs, max 1/δ %.0f, utilisation %.1f %%",
                x[0] * 8e-6, x[1] * 8e-6, x[0] / x[1], copaShare * 100, result.competitiveFraction[0] * 100,
                result.maxInverseDelta[0], result.utilisation * 100))
        XCTAssertGreaterThan(result.competitiveFraction[0], 0.5, "Copa must spend most of the run in competitive mode")
        XCTAssertGreaterThanOrEqual(copaShare, 0.25, "Copa must not be starved by a buffer-filler")
    }
}

// MARK: - A packet-level drop-tail bottleneck

/// xorshift64* (Vigna): a small seeded generator so runs are reproducible.
private struct CopaXorShift {
    var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }
    mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }
}

private struct CopaModelResult {
    var utilisation: Double
    var throughputs: [Double]
    var rateBytesPerSecond: Double
    var queueDelayP50Ms: Double
    var queueDelayP95Ms: Double
    var drops: Int
    var competitiveFraction: [Double]
    var maxInverseDelta: [Double]
}

/// Flows of full-sized packets from one sender host through one FIFO link (rate, drop-tail queue
/// in bytes, optional random loss) with the whole propagation delay after the link; the receiver
/// acknowledges every packet at once. Each sender does RFC 9002 RTT estimation and packet/time
/// threshold loss detection and calls its controller as the QUIC connection does.
private struct CopaBottleneckModel {
    let rate: Double  // bytes per second
    let baseRTT: Duration
    let queueCapacity: Double  // bytes
    let randomLoss: Double
    var rng: CopaXorShift
    let mss = 1200

    final class Flow {
        let controller: CongestionController
        let start: Timestamp
        var pacer: Pacer
        var delivery = DeliveryRateEstimator()
        var latest = Duration.zero, smoothed = Duration.zero, minimum = Duration.zero, variation = Duration.zero
        var hasRTT = false
        var nextPN: UInt64 = 0
        var lowestOutstanding: UInt64 = 0
        var largestAcked: UInt64?
        var sent: [UInt64: (bytes: Int, time: Timestamp, snapshot: DeliverySnapshot)] = [:]
        var bytesInFlight = 0
        var lastProgress = Timestamp.zero
        var deliveredInWindow = 0.0
        var acksMeasured = 0, acksCompetitive = 0
        var maxInverseDelta = 0.0
        init(_ c: CongestionController, start: Timestamp, mss: Int) {
            controller = c
            self.start = start
            pacer = Pacer(maxDatagramSize: mss)
        }
        var rttSample: RTTSample { RTTSample(latest: latest, smoothed: smoothed, minimum: minimum, variation: variation) }
        var pto: Duration { hasRTT ? smoothed + max(variation * 4, .milliseconds(1)) : .milliseconds(1000) }
    }

    var flows: [Flow] = []
    /// The link is busy until this time (ns); its backlog at t is (busyUntil − t)·rate.
    private var busyUntil: UInt64 = 0
    /// ACKs on their way back, in arrival order (FIFO link, equal return delay).
    private var acks: [(time: UInt64, flow: Int, pn: UInt64)] = []
    private var ackHead = 0
    private var queueDelays: [Double] = []
    private var drops = 0

    init(rateBitsPerSecond: Double, baseRTT: Duration, queueBDPs: Double, randomLoss: Double = 0, seed: UInt64) {
        rate = rateBitsPerSecond / 8
        self.baseRTT = baseRTT
        queueCapacity = queueBDPs * rate * baseRTT.seconds
        self.randomLoss = randomLoss
        rng = CopaXorShift(seed: seed)
    }

    mutating func addFlow(_ c: CongestionController, start: Duration = .zero) {
        flows.append(Flow(c, start: Timestamp.zero + start, mss: mss))
    }

    /// When `f` may send next, or nil while its window is full.
    private func sendTime(_ f: Flow, now: Timestamp) -> Timestamp? {
        if now < f.start { return f.start }
        guard f.bytesInFlight + mss <= f.controller.congestionWindow else { return nil }
        let r = Pacer.rate(
            congestionWindow: f.controller.congestionWindow, smoothedRTT: f.hasRTT ? f.smoothed : .milliseconds(100),
            controllerRate: f.controller.pacingRate)
        return f.pacer.delay(for: mss, rate: r, now: now) ?? now
    }

    mutating func run(seconds: Double, measureFrom warmup: Double) -> CopaModelResult {
        let end = Timestamp.zero + .seconds(seconds)
        let measureStart = Timestamp.zero + .seconds(warmup)
        var now = Timestamp.zero
        var wake: [Timestamp?] = flows.map { sendTime($0, now: .zero) }
        while now < end {
            // The next event: an ACK arriving, a flow allowed to send, or a probe timeout.
            var next = end
            var kind = 0
            var who = -1
            if ackHead < acks.count, acks[ackHead].time < next.nanoseconds {
                next = Timestamp(nanoseconds: acks[ackHead].time)
                kind = 1
            }
            for (i, f) in flows.enumerated() {
                if let w = wake[i], w < next {
                    next = w
                    kind = 2
                    who = i
                }
                if f.bytesInFlight > 0, f.lastProgress + f.pto * 3 < next {
                    next = f.lastProgress + f.pto * 3
                    kind = 3
                    who = i
                }
            }
            now = next
            switch kind {
            case 1:
                let a = acks[ackHead]
                ackHead += 1
                onAck(flows[a.flow], pn: a.pn, now: now, measuring: now >= measureStart)
                wake[a.flow] = sendTime(flows[a.flow], now: now)
            case 2:
                let f = flows[who]
                // The pacer may still hold the packet back by a rounding step.
                if let t = sendTime(f, now: now), t > now {
                    wake[who] = t
                    continue
                }
                if f.bytesInFlight + mss <= f.controller.congestionWindow, now >= f.start {
                    send(who, now: now, measureStart: measureStart, end: end)
                }
                wake[who] = sendTime(f, now: now)
            case 3:
                onProbeTimeout(flows[who], now: now)
                wake[who] = sendTime(flows[who], now: now)
            default:
                break
            }
            if ackHead > 4096 {
                acks.removeFirst(ackHead)
                ackHead = 0
            }
        }
        let span = end - measureStart
        let throughputs = flows.map { $0.deliveredInWindow / span.seconds }
        let sorted = queueDelays.sorted()
        func pct(_ p: Double) -> Double { sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(p * Double(sorted.count)))] }
        return CopaModelResult(
            utilisation: throughputs.reduce(0, +) / rate, throughputs: throughputs, rateBytesPerSecond: rate,
            queueDelayP50Ms: pct(0.5) * 1000, queueDelayP95Ms: pct(0.95) * 1000, drops: drops,
            competitiveFraction: flows.map { $0.acksMeasured == 0 ? 0 : Double($0.acksCompetitive) / Double($0.acksMeasured) },
            maxInverseDelta: flows.map { $0.maxInverseDelta })
    }

    private mutating func send(_ i: Int, now: Timestamp, measureStart: Timestamp, end: Timestamp) {
        let f = flows[i]
        let pn = f.nextPN
        f.nextPN += 1
        let snapshot = f.delivery.onPacketSent(bytes: mss, bytesInFlight: f.bytesInFlight, now: now)
        f.bytesInFlight += mss
        f.controller.onPacketSent(bytes: mss, bytesInFlight: f.bytesInFlight, now: now)
        f.pacer.onSent(bytes: mss)
        f.sent[pn] = (mss, now, snapshot)
        if f.bytesInFlight == mss { f.lastProgress = now }

        // The bottleneck: random loss, then drop-tail on the bytes still waiting.
        if randomLoss > 0, rng.uniform() < randomLoss {
            drops += 1
            return
        }
        let t = now.nanoseconds
        let backlogSeconds = busyUntil > t ? Double(busyUntil - t) / 1e9 : 0
        guard backlogSeconds * rate + Double(mss) <= queueCapacity else {
            drops += 1
            return
        }
        let departure = max(t, busyUntil) + UInt64(Double(mss) / rate * 1e9)
        busyUntil = departure
        if now >= measureStart { queueDelays.append(backlogSeconds) }
        if departure >= measureStart.nanoseconds && departure <= end.nanoseconds { f.deliveredInWindow += Double(mss) }
        acks.append((departure + baseRTT.nanoseconds, i, pn))
    }

    /// RFC 9002 §5.3 RTT estimation, then the controller calls in the connection's order.
    private func onAck(_ f: Flow, pn: UInt64, now: Timestamp, measuring: Bool) {
        guard let p = f.sent.removeValue(forKey: pn) else { return }  // already declared lost
        f.latest = now - p.time
        if !f.hasRTT {
            f.hasRTT = true
            f.minimum = f.latest
            f.smoothed = f.latest
            f.variation = f.latest / 2
        } else {
            f.minimum = min(f.minimum, f.latest)
            let diff = f.smoothed > f.latest ? f.smoothed - f.latest : f.latest - f.smoothed
            f.variation = Duration(nanoseconds: (3 * f.variation.nanoseconds + diff.nanoseconds) / 4)
            f.smoothed = Duration(nanoseconds: (7 * f.smoothed.nanoseconds + f.latest.nanoseconds) / 8)
        }
        f.lastProgress = now
        let prior = f.bytesInFlight
        f.bytesInFlight -= p.bytes
        f.delivery.onPacketAcked(p.snapshot, bytes: p.bytes, timeSent: p.time, now: now)
        f.controller.onPacketAcked(
            AckedPacketInfo(sentBytes: p.bytes, timeSent: p.time, delivery: p.snapshot),
            rtt: f.rttSample, bytesInFlight: f.bytesInFlight, now: now)
        let sample = f.delivery.generateSample(minRTT: f.minimum)
        f.controller.onAckProcessed(
            AckSummary(
                now: now, ackedBytes: p.bytes, priorBytesInFlight: prior,
                bytesInFlight: f.bytesInFlight, rtt: f.rttSample, hasNewRTTSample: true,
                rateSample: sample))
        if let copa = f.controller as? Copa, measuring {
            f.acksMeasured += 1
            if copa.isCompetitive { f.acksCompetitive += 1 }
            f.maxInverseDelta = max(f.maxInverseDelta, 1 / copa.delta)
        }
        f.largestAcked = max(f.largestAcked ?? 0, pn)
        detectLoss(f, now: now)
    }

    /// RFC 9002 §6.1: lost once three later packets were acknowledged or 9/8 RTT has passed.
    private func detectLoss(_ f: Flow, now: Timestamp) {
        guard let largest = f.largestAcked else { return }
        let lossDelay = max(f.smoothed, f.latest) * 9 / 8
        var newestLost: Timestamp?
        var pn = f.lowestOutstanding
        while pn < largest {
            if let p = f.sent[pn] {
                guard largest >= pn + 3 || p.time + lossDelay <= now else { break }
                f.sent[pn] = nil
                declareLost(f, p.bytes, p.time, p.snapshot, now: now)
                newestLost = p.time
            }
            pn += 1
        }
        while f.lowestOutstanding < f.nextPN, f.sent[f.lowestOutstanding] == nil { f.lowestOutstanding += 1 }
        if let t = newestLost { f.controller.onCongestionEvent(lostPacketSentTime: t, now: now) }
    }

    private func declareLost(_ f: Flow, _ bytes: Int, _ time: Timestamp, _ snapshot: DeliverySnapshot, now: Timestamp) {
        f.bytesInFlight -= bytes
        f.delivery.onPacketLost(bytes: bytes)
        f.controller.onPacketLost(
            LostPacketInfo(sentBytes: bytes, timeSent: time, delivery: snapshot),
            bytesInFlight: f.bytesInFlight, now: now)
    }

    /// A simplification of RFC 9002 §6.2: after three probe timeouts without an ACK everything
    /// outstanding is lost (as probes would have shown); spanning more than that is persistent
    /// congestion (§7.6).
    private func onProbeTimeout(_ f: Flow, now: Timestamp) {
        var oldest: Timestamp?
        var newest: Timestamp?
        for pn in f.lowestOutstanding..<f.nextPN {
            guard let p = f.sent.removeValue(forKey: pn) else { continue }
            declareLost(f, p.bytes, p.time, p.snapshot, now: now)
            oldest = oldest ?? p.time
            newest = p.time
        }
        f.lowestOutstanding = f.nextPN
        f.lastProgress = now
        guard let first = oldest, let last = newest else { return }
        f.controller.onCongestionEvent(lostPacketSentTime: last, now: now)
        if last - first > f.pto * 3 { f.controller.onPersistentCongestion(now: now) }
    }
}
