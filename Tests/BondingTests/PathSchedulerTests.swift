// Path schedulers: the backup rule for every scheduler, window and pacing respected, and each
// algorithm's choice — aggregate's split in proportion to capacity over a fluid model of two
// links, min-RTT, redundant, weighted shares, round robin, ECF's and BLEST's waiting rule.
import Bonding
import Congestion
import XCTest

/// A fluid model of the paths: each is a drop-free bottleneck of `rate` bytes/s with a FIFO
/// queue and a fixed propagation RTT; a packet is acknowledged one RTT after it has been
/// serialised; the window is fixed. The source is saturating or sends at a fixed rate.
struct FluidModel {
    struct Link {
        var rate: Double  // bytes per second
        var rtt: Double  // seconds
        var window: Int
        var isBackup = false
        var bytesInFlight = 0
        var linkFreeAt = 0.0
        var acks: [(time: Double, bytes: Int)] = []
        var carried = 0
    }

    var links: [Link]
    var now = 0.0
    let packetSize = 1200

    init(_ links: [Link]) { self.links = links }

    /// A link with a window of `bdpMultiple` × its bandwidth-delay product.
    static func link(mbps: Double, rttMs: Double, bdpMultiple: Double = 2) -> Link {
        let rate = mbps * 1e6 / 8
        return Link(rate: rate, rtt: rttMs / 1000, window: Int(rate * rttMs / 1000 * bdpMultiple))
    }

    func snapshots() -> [PathSnapshot] {
        links.enumerated().map { i, l in
            let queueing = max(0, l.linkFreeAt - now)
            return PathSnapshot(
                id: i, isBackup: l.isBackup, congestionWindow: l.window, bytesInFlight: l.bytesInFlight,
                smoothedRTT: .seconds(l.rtt + queueing), minRTT: .seconds(l.rtt), deliveryRate: l.rate)
        }
    }

    mutating func deliverAcks(upTo t: Double) {
        for i in links.indices {
            while let first = links[i].acks.first, first.time <= t {
                links[i].bytesInFlight -= first.bytes
                links[i].acks.removeFirst()
            }
        }
    }

    var nextAck: Double? { links.compactMap { $0.acks.first?.time }.min() }

    /// Runs for `duration` seconds; `offeredMbps` nil means a saturating source.
    mutating func run(_ scheduler: PathScheduler, seconds duration: Double, offeredMbps: Double? = nil) {
        var nextPacket = 0.0
        let interval = offeredMbps.map { Double(packetSize) * 8 / ($0 * 1e6) } ?? 0
        while now < duration {
            deliverAcks(upTo: now)
            guard now >= nextPacket else {
                now = min(nextPacket, nextAck ?? nextPacket)
                continue
            }
            let decision = scheduler.schedule(
                SchedulingRequest(size: packetSize), paths: snapshots(),
                now: Timestamp(nanoseconds: UInt64(now * 1e9)))
            switch decision {
            case .send(let set):
                for i in set {
                    links[i].bytesInFlight += packetSize
                    links[i].linkFreeAt = max(links[i].linkFreeAt, now) + Double(packetSize) / links[i].rate
                    links[i].acks.append((links[i].linkFreeAt + links[i].rtt, packetSize))
                    links[i].carried += packetSize
                }
                nextPacket = offeredMbps == nil ? now : nextPacket + interval
            case .wait(let until):
                let candidates = [until.map { Double($0.nanoseconds) / 1e9 }, nextAck].compactMap { $0 }
                guard let t = candidates.min(), t > now else { return }
                now = t
            }
        }
    }

    /// Rate of the bytes that left link `i`'s queue by the end (queued bytes do not count).
    func mbps(_ i: Int, over seconds: Double) -> Double {
        let backlog = max(0, links[i].linkFreeAt - now) * links[i].rate
        return (Double(links[i].carried) - backlog) * 8 / seconds / 1e6
    }
}

final class PathSchedulerTests: XCTestCase {
    let now = Timestamp(nanoseconds: 1_000_000_000)

    func path(
        _ id: Int, rtt: UInt64, window: Int = 100_000, inFlight: Int = 0, backup: Bool = false, usable: Bool = true,
        rate: Double = 0, pacedUntil: Timestamp? = nil, weight: Int = 1, rttVar: UInt64 = 0
    ) -> PathSnapshot {
        PathSnapshot(
            id: id, isUsable: usable, isBackup: backup, congestionWindow: window, bytesInFlight: inFlight,
            smoothedRTT: ms(rtt), minRTT: ms(rtt), rttVariation: ms(rttVar), deliveryRate: rate,
            nextSendTime: pacedUntil, weight: weight)
    }

    func testSchedulersAreFoundByName() {
        for kind in SchedulerKind.allCases {
            XCTAssertEqual(SchedulerKind.makeScheduler(named: kind.rawValue)?.kind, kind)
        }
        XCTAssertEqual(SchedulerKind.makeScheduler(named: "MinRTT")?.kind, .minrtt)
        XCTAssertNil(SchedulerKind.makeScheduler(named: "fastest"))
        XCTAssertEqual(SchedulerKind.default, .aggregate)
        XCTAssertEqual(
            SchedulerKind.allCases.map(\.rawValue), ["aggregate", "minrtt", "roundrobin", "weighted", "blest", "ecf", "redundant"])
    }

    /// Random snapshots: no scheduler ever sends on a backup path while a non-backup path is
    /// usable (even a full one), and every scheduler falls back to backups when none is.
    func testNoSchedulerUsesABackupPathWhileAMainPathIsUsable() {
        var rng = Xoshiro256(seed: 9)
        for kind in SchedulerKind.allCases {
            let scheduler = kind.makeScheduler()
            var backupUsedWhenAlone = 0
            for _ in 0..<3000 {
                let paths = (0..<Int.random(in: 2...5, using: &rng)).map { i in
                    path(
                        i, rtt: UInt64.random(in: 5...700, using: &rng), window: Int.random(in: 2000...200_000, using: &rng),
                        inFlight: Int.random(in: 0...200_000, using: &rng), backup: Bool.random(using: &rng),
                        usable: Int.random(in: 0..<4, using: &rng) > 0, rate: Double.random(in: 0...1e7, using: &rng),
                        weight: Int.random(in: 0...4, using: &rng))
                }
                let mainUsable = paths.contains { $0.isUsable && !$0.isBackup }
                let packet = SchedulingRequest(
                    size: 1200, trafficClass: Bool.random(using: &rng) ? .bulk : .interactive,
                    queuedBytes: Int.random(in: 1200...1_000_000, using: &rng))
                guard case .send(let set) = scheduler.schedule(packet, paths: paths, now: now) else { continue }
                XCTAssertFalse(set.isEmpty)
                for i in set {
                    XCTAssertTrue(paths[i].isUsable, "\(kind) chose an unusable path")
                    XCTAssertTrue(paths[i].hasWindow(for: 1200), "\(kind) sent beyond the window")
                    if mainUsable { XCTAssertFalse(paths[i].isBackup, "\(kind) used a backup while a main path was usable") }
                    if paths[i].isBackup { backupUsedWhenAlone += 1 }
                }
            }
            XCTAssertGreaterThan(backupUsedWhenAlone, 0, "\(kind) never fell back to a backup path")
        }
    }

    func testAFullMainPathMakesTheSchedulerWaitRatherThanUseTheBackup() {
        let paths = [path(0, rtt: 10, window: 10_000, inFlight: 10_000), path(1, rtt: 5, backup: true)]
        for kind in SchedulerKind.allCases {
            XCTAssertEqual(
                kind.makeScheduler().schedule(SchedulingRequest(size: 1200), paths: paths, now: now), .wait(until: nil), "\(kind)")
        }
        let bothMainsDown = [path(0, rtt: 10, usable: false), path(1, rtt: 50, backup: true), path(2, rtt: 10, usable: false)]
        for kind in SchedulerKind.allCases {
            XCTAssertEqual(
                kind.makeScheduler().schedule(SchedulingRequest(size: 1200), paths: bothMainsDown, now: now), .send(.single(1)), "\(kind)")
        }
    }

    func testMinRTTPicksTheLowestRTTPathWithRoom() {
        let s = MinRTTScheduler()
        let paths = [path(0, rtt: 40), path(1, rtt: 10), path(2, rtt: 25)]
        XCTAssertEqual(s.schedule(SchedulingRequest(size: 1200), paths: paths, now: now), .send(.single(1)))
        var full = paths
        full[1].bytesInFlight = full[1].congestionWindow - 1000  // 1200 does not fit
        XCTAssertEqual(s.schedule(SchedulingRequest(size: 1200), paths: full, now: now), .send(.single(2)))
        XCTAssertEqual(s.schedule(SchedulingRequest(size: 1000), paths: full, now: now), .send(.single(1)), "exactly fills the window")
        var paced = paths
        paced[1].nextSendTime = now + ms(1)
        XCTAssertEqual(s.schedule(SchedulingRequest(size: 1200), paths: paced, now: now), .send(.single(2)), "the pacer says not yet")
        let allPaced = paths.map { p -> PathSnapshot in
            var p = p
            p.nextSendTime = now + ms(UInt64(p.id + 2))
            return p
        }
        XCTAssertEqual(
            s.schedule(SchedulingRequest(size: 1200), paths: allPaced, now: now), .wait(until: now + ms(2)),
            "wait for the earliest pacer")
    }

    func testRedundantSendsOnEveryPathWithRoom() {
        let s = RedundantScheduler()
        let paths = [path(0, rtt: 40), path(1, rtt: 10), path(2, rtt: 600), path(3, rtt: 5, backup: true)]
        XCTAssertEqual(s.schedule(SchedulingRequest(size: 1200), paths: paths, now: now), .send(PathSet([0, 1, 2])))
        var oneFull = paths
        oneFull[2].bytesInFlight = oneFull[2].congestionWindow
        XCTAssertEqual(
            s.schedule(SchedulingRequest(size: 1200), paths: oneFull, now: now), .send(PathSet([0, 1])),
            "a full path skips the copy instead of queueing it")
    }

    func testRoundRobinTakesThePathsInTurn() {
        let s = RoundRobinScheduler()
        var paths = [path(0, rtt: 40), path(1, rtt: 10), path(2, rtt: 25)]
        var order: [Int] = []
        for _ in 0..<6 {
            guard case .send(let set) = s.schedule(SchedulingRequest(size: 1200), paths: paths, now: now) else { return XCTFail() }
            order.append(set.first!)
        }
        XCTAssertEqual(order, [0, 1, 2, 0, 1, 2])
        paths[1].bytesInFlight = paths[1].congestionWindow
        order = []
        for _ in 0..<4 {
            guard case .send(let set) = s.schedule(SchedulingRequest(size: 1200), paths: paths, now: now) else { return XCTFail() }
            order.append(set.first!)
        }
        XCTAssertEqual(order, [0, 2, 0, 2], "a full path is skipped")
    }

    /// Weights 3:1 and 1:2:5, paths never full: the byte shares match within 2 %.
    func testWeightedSplitsBytesByTheUserWeights() {
        for weights in [[3, 1], [1, 2, 5], [1, 1]] {
            let s = WeightedScheduler()
            let paths = weights.enumerated().map { i, w in path(i, rtt: UInt64(10 + 30 * i), weight: w) }
            var bytes = [Int](repeating: 0, count: weights.count)
            var rng = Xoshiro256(seed: 3)
            for _ in 0..<20_000 {
                let size = Int.random(in: 60...1400, using: &rng)
                guard case .send(let set) = s.schedule(SchedulingRequest(size: size), paths: paths, now: now) else { return XCTFail() }
                bytes[set.first!] += size
            }
            let total = Double(bytes.reduce(0, +))
            let weightSum = Double(weights.reduce(0, +))
            for (i, w) in weights.enumerated() {
                XCTAssertEqual(Double(bytes[i]) / total, Double(w) / weightSum, accuracy: 0.02, "weights \(weights), path \(i)")
            }
        }
    }

    /// Two paths of 100 and 50 Mbit/s with equal RTT over the fluid model: the aggregate
    /// scheduler carries both at capacity when the source saturates, and splits 2:1 when it offers
    /// less than the sum.
    func testAggregateSplitsInProportionToCapacity() {
        var saturated = FluidModel([FluidModel.link(mbps: 100, rttMs: 20), FluidModel.link(mbps: 50, rttMs: 20)])
        saturated.run(AggregateScheduler(), seconds: 2)
        let fast = saturated.mbps(0, over: 2)
        let slow = saturated.mbps(1, over: 2)
        XCTAssertEqual(fast / (fast + slow), 2.0 / 3.0, accuracy: 0.03, "share of the 100 Mbit/s path: \(fast) vs \(slow)")
        XCTAssertGreaterThan(fast + slow, 0.95 * 150, "the sum of the two links")

        var offered = FluidModel([FluidModel.link(mbps: 100, rttMs: 20), FluidModel.link(mbps: 50, rttMs: 20)])
        offered.run(AggregateScheduler(), seconds: 2, offeredMbps: 90)
        let a = offered.mbps(0, over: 2)
        let b = offered.mbps(1, over: 2)
        XCTAssertEqual(a / (a + b), 2.0 / 3.0, accuracy: 0.03, "90 Mbit/s offered split \(a) / \(b)")
        XCTAssertEqual(a + b, 90, accuracy: 2)
    }

    /// Fibre 100 Mbit/s 20 ms + satellite 50 Mbit/s 1200 ms RTT: aggregate fills both.
    func testAggregateAddsTheSatelliteCapacityToTheFibre() {
        var model = FluidModel([FluidModel.link(mbps: 100, rttMs: 20), FluidModel.link(mbps: 50, rttMs: 1200)])
        model.run(AggregateScheduler(), seconds: 6)
        // Discount the satellite's first RTT, when nothing can have been acknowledged yet.
        XCTAssertGreaterThan(model.mbps(0, over: 6), 95)
        XCTAssertGreaterThan(model.mbps(1, over: 6), 40)
    }

    func testAggregateKeepsInteractivePacketsOnTheFastPathAndLetsBulkOverflow() {
        let s = AggregateScheduler()
        // Fibre full for a moment, satellite with room.
        let paths = [
            path(0, rtt: 20, window: 250_000, inFlight: 250_000, rate: 12.5e6), path(1, rtt: 1200, window: 15_000_000, rate: 6.25e6),
        ]
        XCTAssertEqual(s.schedule(SchedulingRequest(size: 1200, trafficClass: .bulk), paths: paths, now: now), .send(.single(1)))
        XCTAssertEqual(
            s.schedule(SchedulingRequest(size: 200, trafficClass: .interactive), paths: paths, now: now), .wait(until: nil),
            "the VoIP packet waits a moment for the fibre instead of 600 ms on the satellite")
        var open = paths
        open[0].bytesInFlight = 100_000
        XCTAssertEqual(s.schedule(SchedulingRequest(size: 200, trafficClass: .interactive), paths: open, now: now), .send(.single(0)))
        // Two equal paths, one full: an interactive packet takes the other one.
        let equal = [path(0, rtt: 20, window: 10_000, inFlight: 10_000, rate: 1e6), path(1, rtt: 20, window: 10_000, rate: 1e6)]
        XCTAssertEqual(s.schedule(SchedulingRequest(size: 200, trafficClass: .interactive), paths: equal, now: now), .send(.single(1)))
    }

    func testAggregateKeepsASmallKnownBacklogOnTheLowDelayPath() {
        let s = AggregateScheduler()
        // Fibre (20 ms RTT, 100 Mbit/s) full for a moment, satellite (1200 ms) with room.
        let paths = [
            path(0, rtt: 20, window: 250_000, inFlight: 250_000, rate: 12.5e6, rttVar: 2),
            path(1, rtt: 1200, window: 15_000_000, rate: 6.25e6, rttVar: 10),
        ]
        // A light download (a few packets waiting): all of it reaches the far end sooner through
        // the fibre once it has room than this one packet through the satellite.
        XCTAssertEqual(
            s.schedule(SchedulingRequest(size: 1200, trafficClass: .bulk, queuedBytes: 20_000), paths: paths, now: now),
            .wait(until: nil))
        // A backlog the fibre needs longer than the satellite's delay to drain: the satellite adds its capacity.
        XCTAssertEqual(
            s.schedule(SchedulingRequest(size: 1200, trafficClass: .bulk, queuedBytes: 8_000_000), paths: paths, now: now),
            .send(.single(1)))
        // An unknown backlog counts as large (a saturating source): overflow as before.
        XCTAssertEqual(s.schedule(SchedulingRequest(size: 1200, trafficClass: .bulk), paths: paths, now: now), .send(.single(1)))
        // Paths of like delay (minimum RTTs within the RTT variation): no waiting on queueing noise.
        let alike = [
            path(0, rtt: 20, window: 10_000, inFlight: 10_000, rate: 2e6, rttVar: 4),
            path(1, rtt: 22, window: 10_000, rate: 1e6, rttVar: 4),
        ]
        XCTAssertEqual(
            s.schedule(SchedulingRequest(size: 1200, trafficClass: .bulk, queuedBytes: 1200), paths: alike, now: now),
            .send(.single(1)))
    }

    func testECFWaitsForTheFastPathWhenThatFinishesEarlier() {
        let fastFull = path(0, rtt: 10, window: 100_000, inFlight: 100_000, rttVar: 1)
        let slow = path(1, rtt: 600, window: 100_000, rttVar: 5)
        // A small backlog finishes sooner on the fibre once it has room again.
        XCTAssertEqual(
            ECFScheduler().schedule(SchedulingRequest(size: 1200, queuedBytes: 200_000), paths: [fastFull, slow], now: now),
            .wait(until: nil))
        // A backlog so large that the fast path alone would take longer than a satellite RTT.
        XCTAssertEqual(
            ECFScheduler().schedule(SchedulingRequest(size: 1200, queuedBytes: 8_000_000), paths: [fastFull, slow], now: now),
            .send(.single(1)))
        // Similar paths: the second one is used at once.
        let similar = path(1, rtt: 12, window: 100_000)
        XCTAssertEqual(
            ECFScheduler().schedule(SchedulingRequest(size: 1200, queuedBytes: 200_000), paths: [fastFull, similar], now: now),
            .send(.single(1)))
        // The fast path with room is always first.
        XCTAssertEqual(
            ECFScheduler().schedule(SchedulingRequest(size: 1200), paths: [path(0, rtt: 10), slow], now: now), .send(.single(0)))
    }

    func testBLESTSkipsTheSlowPathWhenItWouldBlockTheReceiveWindow() {
        let fastFull = path(0, rtt: 10, window: 120_000, inFlight: 120_000)
        let slow = path(1, rtt: 600, window: 1_000_000)
        // In 600 ms the fibre sends ~60 windows (7 MB): more than a 4 MB reorder window holds.
        XCTAssertEqual(
            BLESTScheduler(windowBytes: 4_000_000).schedule(SchedulingRequest(size: 1200), paths: [fastFull, slow], now: now),
            .wait(until: nil))
        XCTAssertEqual(
            BLESTScheduler(windowBytes: 64_000_000).schedule(SchedulingRequest(size: 1200), paths: [fastFull, slow], now: now),
            .send(.single(1)))
        XCTAssertEqual(
            BLESTScheduler().schedule(SchedulingRequest(size: 1200), paths: [path(0, rtt: 10), slow], now: now), .send(.single(0)))
    }

    func testEverySchedulerCarriesTwoEqualLinksNearTheirSum() {
        for kind in SchedulerKind.allCases where kind != .redundant {
            var model = FluidModel([FluidModel.link(mbps: 50, rttMs: 10), FluidModel.link(mbps: 50, rttMs: 10)])
            model.run(kind.makeScheduler(), seconds: 1)
            XCTAssertGreaterThan(model.mbps(0, over: 1) + model.mbps(1, over: 1), 90, "\(kind)")
        }
    }

    func testFlowClassifierTellsAVoIPCallFromADownload() {
        var classifier = FlowClassifier()
        var time = 0.0
        var voipClasses = Set<TrafficClass>()
        var downloadClasses: [TrafficClass] = []
        for i in 0..<2000 {  // 2 s: VoIP 50 packets/s of 200 bytes; download 10 MB/s
            time += 1
            if i % 20 == 0 { voipClasses.insert(classifier.classify(lane: 5, bytes: 200, now: at(time))) }
            for _ in 0..<8 { downloadClasses.append(classifier.classify(lane: 9, bytes: 1250, now: at(time))) }
        }
        XCTAssertEqual(voipClasses, [.interactive])
        XCTAssertEqual(downloadClasses.prefix(12).filter { $0 == .interactive }.count, 12, "a new flow starts interactive")
        XCTAssertEqual(downloadClasses.suffix(15_000).filter { $0 == .interactive }.count, 0, "a download stays bulk")
        // Quiet for a second: the bucket refills and the lane is interactive again.
        XCTAssertEqual(classifier.classify(lane: 9, bytes: 100, now: at(time + 1000)), .interactive)
    }
}
