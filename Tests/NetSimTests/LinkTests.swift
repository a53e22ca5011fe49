// One link at a time: rate, exact delay, drop-tail queue, random and burst loss, outages, rate
// changes, jitter, and the statistics a link keeps.
import Congestion
import NetSim
import XCTest

final class LinkTests: XCTestCase {
    // MARK: Rate and delay

    func testSaturated10MbitLinkCarries12Point5MegabytesIn10Seconds() throws {
        // A source offering 20 Mbit/s (1250 B every 0.5 ms) into a 10 Mbit/s link.
        let model = LinkModel(rateBitsPerSecond: LinkModel.mbps(10), delay: .milliseconds(10), queueCapacityBytes: 100_000)
        let (sim, router, vps) = onePathSimulator(model)
        sim.every(.microseconds(500), until: seconds(10)) { _ in router.send(1250) }
        try sim.run(until: seconds(10) + .milliseconds(10))
        let delivered = vps.receivedBytes
        XCTAssertEqual(
            Double(delivered), 12_500_000, accuracy: 1250,
            "10 Mbit/s for 10 s is 12.5 MB, give or take the packet in service")
        XCTAssertEqual(delivered, 12_500_000, "serialisation starts at t=0 and never idles: exactly 10000 packets")
        let stats = sim.link(LinkID(path: 0, direction: .up)).statistics
        XCTAssertGreaterThan(stats.dropped(.queueFull).packets, 0, "the excess offered load is dropped at the tail")
        XCTAssertEqual(stats.utilisation(from: seconds(1), to: seconds(9)), 1.0, accuracy: 1e-9)
        XCTAssertEqual(stats.deliveredBitsPerSecond(from: seconds(1), to: seconds(9)), 10e6, accuracy: 10e6 * 0.001)
    }

    func testDelayIsSerialisationPlusPropagationExactly() {
        let link = Link(model: LinkModel(rateBitsPerSecond: LinkModel.mbps(10), delay: .milliseconds(20)), seed: 1)
        // 1250 B at 10 Mbit/s serialises in exactly 1 ms.
        XCTAssertEqual(link.offer(bytes: 1250, at: ms(100)), .accepted(arrival: ms(121)))
        // A second packet at the same instant waits 1 ms for the transmitter.
        XCTAssertEqual(link.offer(bytes: 1250, at: ms(100)), .accepted(arrival: ms(122)))
        // One that arrives after the transmitter is idle does not wait.
        XCTAssertEqual(link.offer(bytes: 1250, at: ms(200)), .accepted(arrival: ms(221)))
        let q = link.statistics.queueingDelay
        XCTAssertEqual(q.count, 3)
        XCTAssertEqual(q.minimum, .zero)
        XCTAssertEqual(q.maximum, .milliseconds(1))
        XCTAssertEqual(q.p50, .zero, "two of three packets found the link idle")
    }

    func testUnlimitedRateAddsOnlyPropagationDelay() {
        let link = Link(model: LinkModel(rateBitsPerSecond: 0, delay: .milliseconds(7)), seed: 1)
        for _ in 0..<10 { XCTAssertEqual(link.offer(bytes: 1500, at: ms(1)), .accepted(arrival: ms(8))) }
        XCTAssertEqual(link.statistics.queueingDelay.maximum, .zero)
    }

    func testOverheadBytesCountOnTheWire() {
        let link = Link(model: LinkModel(rateBitsPerSecond: LinkModel.mbps(8), overheadBytes: 28), seed: 1)
        // (972 + 28) bytes = 8000 bits at 8 Mbit/s = 1 ms.
        XCTAssertEqual(link.offer(bytes: 972, at: .zero), .accepted(arrival: ms(1)))
        XCTAssertEqual(link.statistics.offered, .init(packets: 1, bytes: 972), "statistics count datagram bytes")
    }

    // MARK: Drop-tail queue

    func testDropTailDropsWhatDoesNotFitAndCountsIt() {
        // 1000 B at 8 Mbit/s = 1 ms each; room for 5 waiting packets.
        let link = Link(model: LinkModel(rateBitsPerSecond: LinkModel.mbps(8), queueCapacityBytes: 5_000), seed: 1)
        let verdicts = (0..<10).map { _ in link.offer(bytes: 1000, at: .zero) }
        XCTAssertEqual(
            verdicts.prefix(6), (1...6).map { LinkVerdict.accepted(arrival: ms(UInt64($0))) }[...],
            "one in service plus five waiting")
        XCTAssertEqual(Array(verdicts.suffix(4)), Array(repeating: .dropped(.queueFull), count: 4))
        XCTAssertEqual(link.statistics.dropped(.queueFull), .init(packets: 4, bytes: 4000))
        XCTAssertEqual(link.statistics.maxQueuedBytes, 5_000)
        XCTAssertEqual(link.queuedBytes(at: .zero), 5_000)
        // 2.5 ms later two waiting packets have gone into service: room for two more, not three.
        XCTAssertEqual(link.queuedBytes(at: us(2_500)), 3_000)
        XCTAssertEqual(link.offer(bytes: 1000, at: us(2_500)), .accepted(arrival: ms(7)))
        XCTAssertEqual(link.offer(bytes: 1000, at: us(2_500)), .accepted(arrival: ms(8)))
        XCTAssertEqual(link.offer(bytes: 1000, at: us(2_500)), .dropped(.queueFull))
    }

    func testZeroCapacityQueuePassesTrafficSlowerThanTheRate() {
        let link = Link(model: LinkModel(rateBitsPerSecond: LinkModel.mbps(8), queueCapacityBytes: 0), seed: 1)
        XCTAssertEqual(link.offer(bytes: 1000, at: .zero), .accepted(arrival: ms(1)))
        XCTAssertEqual(link.offer(bytes: 1000, at: us(500)), .dropped(.queueFull), "transmitter busy, no waiting room")
        XCTAssertEqual(link.offer(bytes: 1000, at: ms(1)), .accepted(arrival: ms(2)))
    }

    // MARK: Loss

    func testRandomLossRateOverOneHundredThousandPacketsIsRepeatable() {
        func lostCount(seed: UInt64) -> Int {
            let link = Link(model: LinkModel(lossProbability: 0.01), seed: seed)
            return (0..<100_000).reduce(0) { n, _ in link.offer(bytes: 100, at: .zero) == .dropped(.randomLoss) ? n + 1 : n }
        }
        let first = lostCount(seed: 12345)
        let second = lostCount(seed: 12345)
        XCTAssertEqual(first, second, "the same seed must lose the same packets")
        XCTAssertEqual(first, 1047, "loss count observed with seed 12345 (expected ≈ 1000 ± 32)")
        XCTAssertEqual(Double(first), 1000, accuracy: 4 * (100_000 * 0.01 * 0.99).squareRoot())
        XCTAssertNotEqual(lostCount(seed: 54321), first, "another seed draws another pattern")
    }

    func testGilbertElliottMeanLossAndBurstLength() {
        // p = 1 %, r = 25 %: bad 1/26 of the time, bursts of 4 packets on average.
        let model = GilbertElliott(goodToBad: 0.01, badToGood: 0.25)
        XCTAssertEqual(model.meanLossRate, 0.01 / 0.26, accuracy: 1e-12)
        XCTAssertEqual(model.meanBadRunLength, 4)
        let link = Link(model: LinkModel(burstLoss: model), seed: 777)
        let n = 400_000
        var lost = 0
        var bursts = 0
        var previousLost = false
        for _ in 0..<n {
            let isLost = link.offer(bytes: 100, at: .zero) == .dropped(.burstLoss)
            if isLost {
                lost += 1
                if !previousLost { bursts += 1 }
            }
            previousLost = isLost
        }
        XCTAssertEqual(Double(lost) / Double(n), model.meanLossRate, accuracy: 0.003)
        XCTAssertEqual(Double(lost) / Double(bursts), 4, accuracy: 0.2, "mean burst length is 1/r")
        XCTAssertEqual(lost, 15_897, "burst-loss count observed with seed 777")
        XCTAssertEqual(link.statistics.dropped(.burstLoss).packets, lost)
        XCTAssertEqual(link.statistics.dropped(.randomLoss).packets, 0)
    }

    func testLostPacketsStillOccupyTheTransmitter() {
        let link = Link(model: LinkModel(rateBitsPerSecond: LinkModel.mbps(8), lossProbability: 1), seed: 1)
        XCTAssertEqual(link.offer(bytes: 1000, at: .zero), .dropped(.randomLoss))
        XCTAssertEqual(link.transmitterBusyUntil, ms(1), "radio loss happens after the packet used its airtime")
    }

    // MARK: Outages

    func testOutageDropsEverythingOfferedOrInFlightDuringTheWindow() throws {
        // 1000 B every 1 ms (8 Mbit/s) into a 10 Mbit/s link with 50 ms delay; cut from 1 s to 2 s.
        var model = LinkModel(rateBitsPerSecond: LinkModel.mbps(10), delay: .milliseconds(50))
        model.addOutage(Outage(from: seconds(1), to: seconds(2)))
        let (sim, router, vps) = onePathSimulator(model)
        sim.every(.milliseconds(1), until: seconds(3) - .milliseconds(1)) { sim in
            router.send(1000, tag: UInt32(sim.now.nanoseconds / 1_000_000))
        }
        try sim.run(until: seconds(4))
        let arrivals = vps.received
        XCTAssertFalse(
            arrivals.contains { $0.time >= seconds(1) && $0.time < seconds(2) },
            "nothing reaches the far end while the link is cut")
        let sentTimes = Set(arrivals.map { tag(of: $0.bytes) })
        // A packet sent at t ms arrives at t + 0.8 + 50 ms: those sent from 950 ms on were in flight at 1 s.
        XCTAssertTrue(sentTimes.contains(949))
        XCTAssertFalse(sentTimes.contains { $0 >= 950 && $0 < 2000 }, "in-flight and offered packets are lost")
        XCTAssertTrue(sentTimes.contains(2000), "the first packet after the outage goes through")
        let firstAfter = arrivals.first { tag(of: $0.bytes) == 2000 }!
        XCTAssertEqual(firstAfter.time, ms(2050) + .microseconds(800))
        let stats = sim.link(LinkID(path: 0, direction: .up)).statistics
        XCTAssertEqual(stats.dropped(.outage).packets, 50 + 1000)
        XCTAssertEqual(stats.offered.packets, stats.delivered.packets + stats.droppedTotal.packets)
    }

    func testOutageEmptiesTheQueue() {
        var model = LinkModel(rateBitsPerSecond: LinkModel.mbps(8), queueCapacityBytes: 100_000)
        model.addOutage(Outage(from: ms(10), to: ms(20)))
        let link = Link(model: model, seed: 1)
        // 50 packets of 1 ms each at t=0: the queue holds 49 ms of work when the cut comes at 10 ms.
        for _ in 0..<50 { _ = link.offer(bytes: 1000, at: .zero) }
        XCTAssertEqual(link.offer(bytes: 1000, at: ms(15)), .dropped(.outage))
        XCTAssertEqual(
            link.offer(bytes: 1000, at: ms(20)), .accepted(arrival: ms(21)),
            "after the outage the link is idle: no queue left over")
        XCTAssertEqual(
            link.statistics.utilisation(from: .zero, to: ms(20)), 0.5, accuracy: 1e-9,
            "busy time cut short by the outage is not counted")
        // The 40 packets that were still queued or in service at 10 ms are lost when they would arrive.
        let delivered = (1...50).filter { link.complete(bytes: 1000, enteredAt: .zero, at: ms(UInt64($0))) }.count
        XCTAssertEqual(delivered, 9, "packets arriving at 1...9 ms made it; from 10 ms on they are lost")
    }

    func testPermanentOutage() {
        let link = Link(model: LinkModel(outages: [Outage(from: seconds(1))]), seed: 1)
        XCTAssertTrue(link.isUp(at: ms(999)))
        XCTAssertFalse(link.isUp(at: seconds(1000)))
        XCTAssertEqual(link.offer(bytes: 10, at: seconds(5)), .dropped(.outage))
    }

    // MARK: Rate changes

    func testRateChangeTakesEffectAtItsTime() throws {
        var model = LinkModel(rateBitsPerSecond: LinkModel.mbps(10), queueCapacityBytes: 50_000)
        model.addRateChange(RateChange(at: seconds(5), rateBitsPerSecond: LinkModel.mbps(2)))
        let (sim, router, _) = onePathSimulator(model)
        sim.every(.microseconds(500), until: seconds(10)) { _ in router.send(1250) }
        try sim.run(until: seconds(10))
        let stats = sim.link(LinkID(path: 0, direction: .up)).statistics
        XCTAssertEqual(stats.deliveredBitsPerSecond(from: seconds(1), to: seconds(5)), 10e6, accuracy: 10e6 * 0.001)
        XCTAssertEqual(stats.deliveredBitsPerSecond(from: seconds(6), to: seconds(10)), 2e6, accuracy: 2e6 * 0.01)
        XCTAssertEqual(stats.deliveredBytes(from: .zero, to: seconds(5)), 6_250_000, accuracy: 1250)
        XCTAssertEqual(stats.deliveredBytes(from: seconds(5), to: seconds(10)), 1_250_000, accuracy: 1250)
    }

    func testPacketSpanningARateChangeIsSerialisedAtBothRates() {
        var model = LinkModel(rateBitsPerSecond: LinkModel.mbps(10))
        model.addRateChange(RateChange(at: ms(10), rateBitsPerSecond: LinkModel.mbps(2)))
        let link = Link(model: model, seed: 1)
        // 10000 bits from 9.5 ms: 5000 bits at 10 Mbit/s (0.5 ms), 5000 bits at 2 Mbit/s (2.5 ms).
        XCTAssertEqual(link.offer(bytes: 1250, at: us(9_500)), .accepted(arrival: us(12_500)))
        XCTAssertEqual(link.rate(at: ms(9)), 10_000_000)
        XCTAssertEqual(link.rate(at: ms(10)), 2_000_000)
    }

    func testRateChangeAddedWhileRunningAppliesToLaterPackets() {
        let link = Link(model: LinkModel(rateBitsPerSecond: LinkModel.mbps(8)), seed: 1)
        XCTAssertEqual(link.offer(bytes: 1000, at: .zero), .accepted(arrival: ms(1)))
        link.addRateChange(RateChange(at: ms(5), rateBitsPerSecond: LinkModel.mbps(1)))
        XCTAssertEqual(link.offer(bytes: 1000, at: ms(5)), .accepted(arrival: ms(13)))
    }

    // MARK: Jitter

    func testSymmetricJitterStaysWithinItsBoundsAndMayReorder() {
        let jitter = Jitter(amplitude: .milliseconds(5), ordering: .reordering)
        let link = Link(model: LinkModel(delay: .milliseconds(20), jitter: jitter), seed: 9)
        var delays: [UInt64] = []
        var arrivals: [Timestamp] = []
        for i in 0..<10_000 {
            let sent = us(UInt64(i) * 100)
            guard case .accepted(let arrival) = link.offer(bytes: 100, at: sent) else { return XCTFail("no loss configured") }
            delays.append((arrival - sent).nanoseconds)
            arrivals.append(arrival)
        }
        XCTAssertGreaterThanOrEqual(delays.min()!, 15_000_000)
        XCTAssertLessThanOrEqual(delays.max()!, 25_000_000)
        XCTAssertLessThan(delays.min()!, 15_100_000, "the whole range is used")
        XCTAssertGreaterThan(delays.max()!, 24_900_000, "the whole range is used")
        let mean = Double(delays.reduce(0, +)) / Double(delays.count)
        XCTAssertEqual(mean, 20e6, accuracy: 0.1e6)
        XCTAssertTrue(zip(arrivals, arrivals.dropFirst()).contains { $0 > $1 }, "per-packet jitter reorders")
    }

    func testOrderPreservingJitterNeverReorders() {
        let link = Link(model: LinkModel(delay: .milliseconds(20), jitter: Jitter(amplitude: .milliseconds(5))), seed: 9)
        var previous = Timestamp.zero
        for i in 0..<10_000 {
            let sent = us(UInt64(i) * 100)
            guard case .accepted(let arrival) = link.offer(bytes: 100, at: sent) else { return XCTFail() }
            XCTAssertGreaterThanOrEqual(arrival, previous, "preserved order is the default")
            XCTAssertGreaterThanOrEqual(arrival - sent, .milliseconds(15))
            XCTAssertLessThanOrEqual(arrival - sent, .milliseconds(25))
            previous = arrival
        }
    }

    func testPositiveJitterOnlyAddsDelay() {
        let jitter = Jitter(amplitude: .milliseconds(4), distribution: .positive, ordering: .reordering)
        let link = Link(model: LinkModel(delay: .milliseconds(10), jitter: jitter), seed: 5)
        for i in 0..<5_000 {
            let sent = ms(UInt64(i))
            guard case .accepted(let arrival) = link.offer(bytes: 100, at: sent) else { return XCTFail() }
            XCTAssertTrue((arrival - sent) >= .milliseconds(10) && (arrival - sent) <= .milliseconds(14))
        }
    }

    func testJitterLargerThanTheDelayNeverMakesItNegative() {
        let link = Link(
            model: LinkModel(delay: .milliseconds(1), jitter: Jitter(amplitude: .milliseconds(5), ordering: .reordering)), seed: 5)
        for i in 0..<1_000 {
            guard case .accepted(let arrival) = link.offer(bytes: 100, at: ms(UInt64(i))) else { return XCTFail() }
            XCTAssertGreaterThanOrEqual(arrival, ms(UInt64(i)))
        }
    }

    func testJitterHoldTimeKeepsTheOffsetForThatLong() {
        let jitter = Jitter(amplitude: .milliseconds(5), ordering: .reordering, holdTime: .milliseconds(10))
        let link = Link(model: LinkModel(delay: .milliseconds(20), jitter: jitter), seed: 3)
        var changes = 0
        var previousDelay: Duration?
        for i in 0..<1_000 {
            let sent = ms(UInt64(i))
            guard case .accepted(let arrival) = link.offer(bytes: 100, at: sent) else { return XCTFail() }
            if let p = previousDelay, p != arrival - sent { changes += 1 }
            previousDelay = arrival - sent
        }
        XCTAssertLessThanOrEqual(changes, 100, "one new offset per 10 ms at most")
        XCTAssertGreaterThan(changes, 80, "and a new one (almost) every 10 ms")
    }

    // MARK: Statistics

    func testHistogramQuantiles() {
        var h = DelayHistogram(bucketWidth: .milliseconds(1), range: .milliseconds(100))
        for _ in 0..<50 { h.record(.zero) }
        for i in 1...49 { h.record(.milliseconds(UInt64(i))) }
        h.record(.seconds(2))
        XCTAssertEqual(h.count, 100)
        XCTAssertEqual(h.p50, .zero, "half the samples are exactly zero")
        XCTAssertEqual(h.quantile(0.51), .milliseconds(1))
        XCTAssertEqual(h.quantile(0.99), .milliseconds(49))
        XCTAssertEqual(h.quantile(1.0), .seconds(2), "beyond the range the exact maximum is reported")
        var g = DelayHistogram(bucketWidth: .milliseconds(1), range: .milliseconds(100))
        g.record(.microseconds(1_500))
        XCTAssertEqual(g.p50, .microseconds(1_500), "a quantile never exceeds the largest sample")
        h.merge(g)
        XCTAssertEqual(h.count, 101)
        XCTAssertEqual(DelayHistogram().p99, .zero, "an empty histogram reads zero")
    }

    func testUtilisationOfAHalfLoadedLink() throws {
        let (sim, router, _) = onePathSimulator(LinkModel(rateBitsPerSecond: LinkModel.mbps(10)))
        sim.every(.milliseconds(2)) { _ in router.send(1250) }  // 5 Mbit/s
        try sim.run(until: seconds(2))
        let stats = sim.link(LinkID(path: 0, direction: .up)).statistics
        XCTAssertEqual(stats.utilisation(from: seconds(0.5), to: seconds(1.5)), 0.5, accuracy: 1e-9)
        XCTAssertEqual(stats.queueingDelay.maximum, .zero, "an underloaded link never queues")
    }
}
