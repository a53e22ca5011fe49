// Reorder buffer scenarios: in order, out of order, duplicates, a gap given up after the hold
// time, a 600 ms fibre/satellite spread, a VoIP call sharing the tunnel with a download that
// lost a packet, a full buffer, packets declared lost, hold-time adaptation.
import Bonding
import Congestion
import XCTest

/// Drives a `ReorderBuffer` and records what it hands on.
struct ReorderHarness {
    var buffer: ReorderBuffer
    var delivered: [ReorderBuffer.ReleasedPacket] = []
    /// Next lane sequence per lane, as a sender would number them.
    private var laneCounters: [UInt16: UInt16] = [:]
    private var nextSequence: UInt32

    init(configuration: ReorderBuffer.Configuration = .init(), hold: Duration? = nil, firstSequence: UInt32 = 1) {
        buffer = ReorderBuffer(configuration: configuration)
        if let hold { buffer.setHoldTime(hold) }
        nextSequence = firstSequence
    }

    /// Numbers a packet of `lane` the way `TunnelSequencer` does.
    mutating func send(lane: UInt16) -> TunnelHeader {
        let laneSeq = laneCounters[lane, default: 0]
        laneCounters[lane] = laneSeq &+ 1
        defer { nextSequence &+= 1 }
        return TunnelHeader(sequence: TunnelSequence(nextSequence), lane: lane, laneSequence: laneSeq)
    }

    @discardableResult
    mutating func receive(_ header: TunnelHeader, at time: Timestamp) -> ReorderBuffer.InsertOutcome {
        let outcome = buffer.insert(header, handle: Int(header.sequence.rawValue), now: time)
        drain(at: time)
        return outcome
    }

    mutating func drain(at time: Timestamp) {
        while let p = buffer.poll(now: time) { delivered.append(p) }
    }

    /// Delivered tunnel sequence numbers of `lane` (all lanes when nil), in delivery order.
    func sequences(lane: UInt16? = nil) -> [UInt32] {
        delivered.filter { lane == nil || $0.header.lane == lane }.map(\.header.sequence.rawValue)
    }
}

final class ReorderBufferTests: XCTestCase {
    let download: UInt16 = 100
    let voip: UInt16 = 200
    let dns: UInt16 = 300

    func testInOrderPacketsLeaveAtOnce() {
        var h = ReorderHarness(hold: ms(50))
        for i in 0..<5 {
            let p = h.send(lane: download)
            XCTAssertEqual(h.receive(p, at: at(Double(i))), .ready)
        }
        XCTAssertEqual(h.sequences(), [1, 2, 3, 4, 5])
        XCTAssertTrue(h.delivered.allSatisfy { $0.heldFor == .zero })
        XCTAssertNil(h.buffer.nextDeadline, "nothing held, nothing to wake up for")
        XCTAssertEqual(h.buffer.statistics.released, 5)
        XCTAssertEqual(h.buffer.statistics.held, 0)
    }

    func testOutOfOrderPacketsOfAFlowAreReleasedInOrderWhenTheGapFills() {
        var h = ReorderHarness(hold: ms(100))
        let p1 = h.send(lane: download)
        let p2 = h.send(lane: download)
        let p3 = h.send(lane: download)
        XCTAssertEqual(h.receive(p3, at: at(0)), .held)
        XCTAssertEqual(h.receive(p2, at: at(1)), .held)
        XCTAssertEqual(h.buffer.nextDeadline, at(100), "the oldest held packet expires first")
        XCTAssertEqual(h.receive(p1, at: at(7)), .ready)
        XCTAssertEqual(h.sequences(), [1, 2, 3])
        XCTAssertEqual(h.delivered.map(\.heldFor), [.zero, ms(6), ms(7)])
        XCTAssertEqual(h.buffer.statistics.gapsSkipped, 0)
        XCTAssertNil(h.buffer.nextDeadline)
    }

    func testDuplicatesAreDroppedWhetherHeldOrAlreadyDelivered() {
        var h = ReorderHarness(hold: ms(100))
        let p1 = h.send(lane: download)
        let p2 = h.send(lane: download)
        XCTAssertEqual(h.receive(p2, at: at(0)), .held)
        XCTAssertEqual(h.receive(p2, at: at(1)), .duplicate, "copy of a held packet")
        XCTAssertEqual(h.receive(p1, at: at(2)), .ready)
        var reinjected = p1
        reinjected.isReinjected = true
        XCTAssertEqual(h.receive(reinjected, at: at(3)), .duplicate, "copy of a delivered packet")
        XCTAssertEqual(h.sequences(), [1, 2])
        XCTAssertEqual(h.buffer.statistics.duplicatesDropped, 2)
    }

    func testAGapIsSkippedWhenTheHoldTimeRunsOutAndTheStragglerIsThenLate() {
        var h = ReorderHarness(hold: ms(50))
        let p1 = h.send(lane: download)
        let p2 = h.send(lane: download)
        let p3 = h.send(lane: download)
        h.receive(p1, at: at(0))
        XCTAssertEqual(h.receive(p3, at: at(10)), .held)
        XCTAssertEqual(h.buffer.nextDeadline, at(60))
        h.drain(at: at(59.999))
        XCTAssertEqual(h.sequences(), [1], "still waiting for #2")
        h.drain(at: at(60))
        XCTAssertEqual(h.sequences(), [1, 3], "#2 given up after exactly the hold time")
        XCTAssertEqual(h.delivered.last?.heldFor, ms(50))
        XCTAssertEqual(h.buffer.statistics.gapsSkipped, 1)
        XCTAssertEqual(h.buffer.statistics.expiryReleases, 1)
        XCTAssertEqual(h.receive(p2, at: at(70)), .late, "its flow has moved on: delivering it would reorder")
        XCTAssertEqual(h.buffer.statistics.lateDropped, 1)
        XCTAssertEqual(h.sequences(), [1, 3])
    }

    /// Fibre 10 ms and satellite 610 ms one way: 600 ms of spread. A download spreads over both
    /// paths; a VoIP call and a DNS exchange use the fibre only. Only the download waits, and
    /// only until its satellite packets land — not for the whole hold time.
    func testSixHundredMillisecondSpreadHoldsOnlyTheFlowThatUsesTheSlowPath() {
        var h = ReorderHarness()
        h.buffer.updateHoldTime(paths: [
            .init(oneWayDelay: ms(10), jitter: ms(1)), .init(oneWayDelay: ms(610), jitter: ms(5)),
        ])
        XCTAssertEqual(h.buffer.holdTime, ms(620), "spread 600 + 2×5 jitter + 10 margin")

        // Every 10 ms: a download packet on the satellite, then one on the fibre, then a VoIP
        // packet on the fibre; a DNS query at 95 ms on the fibre.
        var arrivals: [(TunnelHeader, Timestamp)] = []
        for tick in 0..<20 {
            let sent = Double(tick * 10)
            arrivals.append((h.send(lane: download), at(sent + 610)))
            arrivals.append((h.send(lane: download), at(sent + 10)))
            arrivals.append((h.send(lane: voip), at(sent + 10)))
            if tick == 9 { arrivals.append((h.send(lane: dns), at(sent + 5 + 10))) }
        }
        for (header, time) in arrivals.sorted(by: { $0.1 < $1.1 }) { h.receive(header, at: time) }
        h.drain(at: at(10_000))

        let voipPackets = h.delivered.filter { $0.header.lane == voip }
        XCTAssertEqual(voipPackets.count, 20)
        XCTAssertTrue(voipPackets.allSatisfy { $0.heldFor == .zero }, "the VoIP flow is never held by the download")
        XCTAssertEqual(h.delivered.first { $0.header.lane == dns }?.heldFor, .zero)

        let downloadPackets = h.delivered.filter { $0.header.lane == download }
        XCTAssertEqual(downloadPackets.count, 40, "nothing of the download lost")
        XCTAssertEqual(downloadPackets.map(\.header.laneSequence), (0..<40).map { UInt16($0) }, "download in order")
        let longest = downloadPackets.map(\.heldFor).max() ?? .zero
        XCTAssertEqual(longest, ms(600), "a fibre packet waits exactly until its satellite predecessor lands")
        XCTAssertLessThan(longest, h.buffer.holdTime)
        XCTAssertEqual(h.buffer.statistics.gapsSkipped, 0)
        XCTAssertEqual(h.buffer.statistics.expiryReleases, 0, "no gap waited for the full hold time")
    }

    func testAVoIPCallIsNeverHeldBehindAGapInADownload() {
        var h = ReorderHarness(hold: ms(300))
        let d1 = h.send(lane: download)
        _ = h.send(lane: download)  // lost for good
        var time = 0.0
        h.receive(d1, at: at(time))
        for _ in 0..<10 {
            time += 20
            h.receive(h.send(lane: download), at: at(time))
            XCTAssertEqual(h.receive(h.send(lane: voip), at: at(time)), .ready, "VoIP at \(time) ms")
        }
        XCTAssertEqual(h.delivered.filter { $0.header.lane == download }.count, 1, "the download waits for its gap")
        XCTAssertEqual(h.delivered.filter { $0.header.lane == voip }.count, 10)
        h.drain(at: at(20 + 300))
        XCTAssertEqual(h.delivered.filter { $0.header.lane == download }.count, 11, "gap skipped after the hold")
        XCTAssertEqual(h.buffer.statistics.gapsSkipped, 1)
    }

    func testAFullBufferReleasesItsOldestPacketAndSkipsTheGapBeforeIt() {
        var config = ReorderBuffer.Configuration()
        config.capacity = 4
        var h = ReorderHarness(configuration: config, hold: ms(500))
        _ = h.send(lane: download)  // missing
        let held = (0..<4).map { _ in h.send(lane: download) }
        _ = h.send(lane: voip)  // missing
        let voipHeld = h.send(lane: voip)
        for (i, p) in held.enumerated() { XCTAssertEqual(h.receive(p, at: at(Double(i))), .held) }
        XCTAssertEqual(h.buffer.statistics.held, 4)
        // A fifth packet to hold: the oldest held (download #2) is released, with the run behind it.
        XCTAssertEqual(h.receive(voipHeld, at: at(10)), .held)
        XCTAssertEqual(h.sequences(), [2, 3, 4, 5])
        XCTAssertEqual(h.buffer.statistics.capacityReleases, 1)
        XCTAssertEqual(h.buffer.statistics.held, 1)
        XCTAssertLessThanOrEqual(h.buffer.statistics.held, config.capacity)
    }

    func testAPacketDeclaredLostNoLongerHoldsItsFlow() {
        var h = ReorderHarness(hold: ms(500))
        let p1 = h.send(lane: download)
        let p2 = h.send(lane: download)
        let p3 = h.send(lane: download)
        h.receive(p1, at: at(0))
        h.receive(p3, at: at(1))
        XCTAssertEqual(h.sequences(), [1])
        h.buffer.declareLost(p2, now: at(2))
        h.drain(at: at(2))
        XCTAssertEqual(h.sequences(), [1, 3], "released at the declaration, not after 500 ms")
        XCTAssertEqual(h.receive(p2, at: at(3)), .late)
        XCTAssertEqual(h.buffer.statistics.declaredLost, 1)
    }

    func testALossDeclaredAheadOfTheGapIsRememberedAndGivesWayToTheRealPacket() {
        var h = ReorderHarness(hold: ms(500))
        let p1 = h.send(lane: download)
        let p2 = h.send(lane: download)
        let p3 = h.send(lane: download)
        let p4 = h.send(lane: download)
        h.buffer.declareLost(p2, now: at(0))  // #1 is still missing: remembered
        h.receive(p4, at: at(1))
        XCTAssertEqual(h.receive(p1, at: at(2)), .ready)
        XCTAssertEqual(h.sequences(), [1], "#3 missing, not declared")
        h.receive(p3, at: at(3))
        XCTAssertEqual(h.sequences(), [1, 3, 4], "#2 skipped silently as declared")

        // The declared packet arrives after all (a reinjected copy) before its lane passed it.
        var g = ReorderHarness(hold: ms(500))
        let q1 = g.send(lane: dns)
        let q2 = g.send(lane: dns)
        let q3 = g.send(lane: dns)
        g.buffer.declareLost(q2, now: at(0))
        g.receive(q3, at: at(1))
        XCTAssertEqual(g.receive(q2, at: at(2)), .held, "the packet replaces its lost-marker")
        g.receive(q1, at: at(3))
        XCTAssertEqual(g.sequences(), [1, 2, 3])
        XCTAssertEqual(g.buffer.statistics.held, 0)
    }

    func testHoldTimeFollowsThePathSpreadWithinItsBounds() {
        let config = ReorderBuffer.Configuration()
        func hold(_ paths: [ReorderBuffer.PathDelay]) -> Duration? { ReorderBuffer.holdTime(for: paths, configuration: config) }
        XCTAssertEqual(hold([.init(oneWayDelay: ms(5)), .init(oneWayDelay: ms(20), jitter: ms(15))]), ms(55))
        XCTAssertEqual(hold([.init(oneWayDelay: ms(5))]), ms(10), "one path: the margin")
        XCTAssertEqual(hold([.init(oneWayDelay: ms(5)), .init(oneWayDelay: ms(3000))]), ms(1000), "clamped to 1 s")
        XCTAssertNil(hold([]))
        var tight = config
        tight.holdMargin = .zero
        XCTAssertEqual(ReorderBuffer.holdTime(for: [.init(oneWayDelay: ms(5))], configuration: tight), ms(2), "minimum hold")

        let fromSnapshots = [
            PathSnapshot(id: 0, congestionWindow: 1, smoothedRTT: ms(20), rttVariation: ms(1)),
            PathSnapshot(id: 1, congestionWindow: 1, smoothedRTT: ms(1200), rttVariation: ms(10)),
        ].map(ReorderBuffer.PathDelay.init)
        XCTAssertEqual(hold(fromSnapshots), ms(620), "600 - 10 one way + 2×10 jitter + 10 margin")

        var buffer = ReorderBuffer()
        XCTAssertEqual(buffer.holdTime, config.initialHold)
        buffer.updateHoldTime(paths: [])
        XCTAssertEqual(buffer.holdTime, config.initialHold, "no paths: unchanged")
    }

    func testAFloorLengthensAShortHoldAndLeavesALongerOne() {
        // Two fibres of like delay: spread 0 + 10 ms margin. With losses repaired (ARQ), the
        // receiver asks for at least the repair's round trip (TunnelReceiver: 30 ms here).
        var buffer = ReorderBuffer()
        let fibres: [ReorderBuffer.PathDelay] = [.init(oneWayDelay: ms(5)), .init(oneWayDelay: ms(6))]
        buffer.updateHoldTime(paths: fibres)
        XCTAssertEqual(buffer.holdTime, ms(11))
        buffer.updateHoldTime(paths: fibres, atLeast: ms(30))
        XCTAssertEqual(buffer.holdTime, ms(30))
        buffer.updateHoldTime(paths: [.init(oneWayDelay: ms(5)), .init(oneWayDelay: ms(300))], atLeast: ms(30))
        XCTAssertEqual(buffer.holdTime, ms(305), "the spread's hold is longer than the floor")
    }

    func testAShorterHoldTimeAppliesToPacketsAlreadyHeld() {
        var h = ReorderHarness(hold: ms(600))
        _ = h.send(lane: download)
        let p2 = h.send(lane: download)
        h.receive(p2, at: at(0))
        XCTAssertEqual(h.buffer.nextDeadline, at(600))
        h.buffer.updateHoldTime(paths: [.init(oneWayDelay: ms(10)), .init(oneWayDelay: ms(40))])
        XCTAssertEqual(h.buffer.nextDeadline, at(40))
        h.drain(at: at(40))
        XCTAssertEqual(h.sequences(), [2])
    }

    func testInsertRefusesWhenReadyPacketsAreNotCollected() {
        var config = ReorderBuffer.Configuration()
        config.capacity = 2
        config.readyReserve = 1
        var buffer = ReorderBuffer(configuration: config)
        for i in 0..<3 {
            let outcome = buffer.insert(
                TunnelHeader(sequence: TunnelSequence(UInt32(i)), lane: 1, laneSequence: UInt16(i)), handle: i, now: at(0))
            XCTAssertEqual(outcome, .ready)
        }
        XCTAssertEqual(buffer.insert(TunnelHeader(sequence: TunnelSequence(3), lane: 1, laneSequence: 3), handle: 3, now: at(0)), .rejected)
        XCTAssertEqual(buffer.statistics.rejected, 1)
        XCTAssertEqual(buffer.poll(now: at(0))?.handle, 0)
        XCTAssertEqual(
            buffer.insert(TunnelHeader(sequence: TunnelSequence(3), lane: 1, laneSequence: 3), handle: 3, now: at(0)), .ready,
            "a refused packet was not marked as seen")
    }

    func testSequenceNumbersWrapWithinALane() {
        var h = ReorderHarness(hold: ms(100), firstSequence: UInt32.max - 2)
        let p = (0..<6).map { _ in h.send(lane: download) }
        for i in [1, 0, 3, 2, 5, 4] { h.receive(p[i], at: at(Double(i))) }
        XCTAssertEqual(h.sequences(), [UInt32.max - 2, UInt32.max - 1, UInt32.max, 0, 1, 2])
    }

    func testALaneIdleForBillionsOfPacketsIsNotMistakenForLate() {
        var h = ReorderHarness(hold: ms(100))
        h.receive(TunnelHeader(sequence: TunnelSequence(0), lane: 7, laneSequence: 0), at: at(0))
        // Other lanes carry traffic numbered past 2^30; a sweep of every lane follows.
        for i in 0..<UInt32(TunnelFrame.laneCount + 1) {
            h.receive(
                TunnelHeader(sequence: TunnelSequence(0x5000_0000 + i), lane: 8, laneSequence: UInt16(truncatingIfNeeded: i)), at: at(1))
        }
        // Lane 7 speaks again, 2^31 + 16 numbers later: serial arithmetic alone would call it old.
        let outcome = h.receive(TunnelHeader(sequence: TunnelSequence(0x8000_0010), lane: 7, laneSequence: 1), at: at(2))
        XCTAssertEqual(outcome, .ready)
        XCTAssertEqual(h.sequences(lane: 7), [0, 0x8000_0010])
    }

    func testHoldTimeStatisticsAreRecordedPerReleasedPacket() {
        var h = ReorderHarness(hold: ms(100))
        for _ in 0..<98 { h.receive(h.send(lane: voip), at: at(0)) }
        _ = h.send(lane: download)
        h.receive(h.send(lane: download), at: at(0))
        h.receive(h.send(lane: download), at: at(0))
        h.drain(at: at(100))
        XCTAssertEqual(h.buffer.holdTimes.count, 100)
        XCTAssertEqual(h.buffer.holdTimes.percentile(0.5), .zero)
        XCTAssertEqual(h.buffer.holdTimes.percentile(0.99), ms(100))
        XCTAssertEqual(h.buffer.holdTimes.maximum, ms(100))
    }

    func testLatePacketsFollowThePolicy() {
        for policy in [ReorderBuffer.LateArrivalPolicy.drop, .deliverReinjected, .deliver] {
            var config = ReorderBuffer.Configuration()
            config.lateArrivals = policy
            var h = ReorderHarness(configuration: config, hold: ms(20))
            let p1 = h.send(lane: download)
            let p2 = h.send(lane: download)
            let p3 = h.send(lane: download)
            let p4 = h.send(lane: download)
            h.receive(p1, at: at(0))
            h.receive(p4, at: at(1))
            h.drain(at: at(21))  // #2 and #3 given up
            var reinjected = p2
            reinjected.isReinjected = true
            let outcomes = [h.receive(reinjected, at: at(30)), h.receive(p3, at: at(31))]
            switch policy {
            case .drop: XCTAssertEqual(outcomes, [.late, .late])
            case .deliverReinjected: XCTAssertEqual(outcomes, [.readyLate, .late])
            case .deliver: XCTAssertEqual(outcomes, [.readyLate, .readyLate])
            }
            let late = h.delivered.filter(\.isLate)
            XCTAssertEqual(UInt64(late.count), h.buffer.statistics.lateDelivered, "\(policy)")
            XCTAssertTrue(late.allSatisfy { $0.heldFor == .zero })
            XCTAssertEqual(
                h.receive(reinjected, at: at(40)), policy == .drop ? .late : .duplicate,
                "a late packet handed on is remembered as seen")
            XCTAssertEqual(h.receive(h.send(lane: download), at: at(50)), .ready, "the lane goes on from #4")
        }
    }

    func testLatencyHistogramPercentilesAreWithinOneBucket() {
        var histogram = LatencyHistogram()
        XCTAssertEqual(histogram.percentile(0.5), .zero, "empty")
        for i in 1...1000 { histogram.record(.microseconds(UInt64(i) * 1000)) }  // 1 ... 1000 ms
        XCTAssertEqual(histogram.count, 1000)
        XCTAssertEqual(histogram.maximum, ms(1000))
        let p50 = histogram.percentile(0.5).milliseconds
        let p99 = histogram.percentile(0.99).milliseconds
        XCTAssertEqual(p50, 500, accuracy: 500 * 0.125)
        XCTAssertGreaterThanOrEqual(p50, 500, "a percentile is an upper edge")
        XCTAssertEqual(p99, 990, accuracy: 990 * 0.125)
        XCTAssertEqual(histogram.percentile(1), ms(1000), "never above the maximum")
        XCTAssertEqual(histogram.mean.milliseconds, 500.5, accuracy: 0.01)
        histogram.record(.seconds(10_000))
        XCTAssertEqual(histogram.count, 1001, "huge values land in the last bucket")
        histogram.reset()
        XCTAssertEqual(histogram.count, 0)
    }

    func testDuplicateWindowSlidesAndForgetsOnlyWhatIsTooOld() {
        var window = DuplicateWindow(width: 128)
        XCTAssertEqual(window.insert(TunnelSequence(1000)), .new)
        XCTAssertEqual(window.insert(TunnelSequence(1000)), .duplicate)
        XCTAssertEqual(window.insert(TunnelSequence(900)), .new, "behind, but inside the window")
        XCTAssertEqual(window.insert(TunnelSequence(872)), .tooOld)
        XCTAssertEqual(window.insert(TunnelSequence(1100)), .new)
        XCTAssertEqual(window.check(TunnelSequence(1000)), .duplicate, "still remembered 100 later")
        XCTAssertEqual(window.check(TunnelSequence(1050)), .new, "the slide cleared the numbers it passed")
        XCTAssertEqual(window.insert(TunnelSequence(5000)), .new)
        XCTAssertEqual(window.check(TunnelSequence(4990)), .new, "a long jump clears everything")
        XCTAssertEqual(window.check(TunnelSequence(1100)), .tooOld)
        XCTAssertEqual(window.insert(TunnelSequence(UInt32.max)), .tooOld, "2^32-1 is far behind 5000")
    }
}
