// Reinjection: per-path rings of unacknowledged tunnel packets, acknowledgements by ticket or by
// sequence, bounded rings, and a dying path's packets re-queued in tunnel sequence order; then
// end to end with the reorder buffer: a path cut mid-transfer loses nothing that was handed to it.
import Bonding
import Congestion
import XCTest

final class ReinjectionTests: XCTestCase {
    func record(_ seq: UInt32, at time: Double = 0) -> ReinjectionLedger.Record {
        ReinjectionLedger.Record(sequence: TunnelSequence(seq), handle: Int(seq) + 1000, bytes: 1200, firstSent: at(time))
    }

    func testAFailedPathsUnacknowledgedPacketsAreQueuedInSequenceOrder() {
        var ledger = ReinjectionLedger()
        var tickets: [UInt32: ReinjectionLedger.Ticket] = [:]
        for seq in UInt32(1)...10 {
            let path = seq % 2 == 0 ? 2 : 1
            tickets[seq] = ledger.recordSent(record(seq), onPath: path).ticket
        }
        for seq: UInt32 in [2, 6] { XCTAssertEqual(ledger.acknowledged(tickets[seq]!)?.handle, Int(seq) + 1000) }
        XCTAssertEqual(ledger.lost(tickets[8]!)?.sequence, TunnelSequence(8))
        XCTAssertEqual(ledger.unacknowledged(onPath: 2), 2)

        XCTAssertEqual(ledger.pathFailed(id: 2), 2)
        XCTAssertEqual(ledger.pendingReinjections, 2)
        XCTAssertEqual(ledger.nextReinjection()?.sequence, TunnelSequence(4))
        XCTAssertEqual(ledger.nextReinjection()?.sequence, TunnelSequence(10))
        XCTAssertNil(ledger.nextReinjection())
        XCTAssertEqual(ledger.unacknowledged(onPath: 1), 5, "the surviving path is untouched")
        XCTAssertNil(ledger.acknowledged(tickets[4]!), "a failed path's tickets are stale")
        XCTAssertEqual(ledger.statistics.reinjected, 2)
        XCTAssertEqual(ledger.statistics.acknowledged, 2)
        XCTAssertEqual(ledger.statistics.lost, 1)
        XCTAssertEqual(ledger.statistics.pathFailures, 1)
        XCTAssertEqual(ledger.pathFailed(id: 2), 0, "an unknown path has nothing to give")
    }

    func testTwoFailuresMergeIntoOneSequenceOrder() {
        var ledger = ReinjectionLedger()
        for seq in UInt32(1)...9 { _ = ledger.recordSent(record(seq), onPath: Int(seq % 3)) }
        ledger.pathFailed(id: 2)  // 2, 5, 8
        XCTAssertEqual(ledger.nextReinjection()?.sequence, TunnelSequence(2))
        ledger.pathFailed(id: 1)  // 1, 4, 7
        var order: [UInt32] = []
        while let r = ledger.nextReinjection() { order.append(r.sequence.rawValue) }
        XCTAssertEqual(order, [1, 4, 5, 7, 8])
    }

    func testUrgentRecordsAreReinjectedFirst() {
        // Interactive packets (urgent) among bulk ones: the receiver holds their lane until they
        // come, so they leave first, each kind in sequence order, from a failure and from losses.
        var ledger = ReinjectionLedger()
        var tickets: [UInt32: ReinjectionLedger.Ticket] = [:]
        for seq in UInt32(1)...8 {
            var r = record(seq)
            r.isUrgent = seq % 3 == 0  // 3, 6
            tickets[seq] = ledger.recordSent(r, onPath: seq <= 6 ? 1 : 2).ticket
        }
        ledger.pathFailed(id: 1)
        XCTAssertEqual(ledger.pendingReinjections, 6)
        XCTAssertEqual(ledger.nextReinjection(urgentOnly: true)?.sequence, TunnelSequence(3))
        XCTAssertTrue(ledger.requeueForReinjection(tickets[7]!))
        var r9 = record(9)
        r9.isUrgent = true
        let t9 = ledger.recordSent(r9, onPath: 2).ticket!
        XCTAssertTrue(ledger.requeueForReinjection(t9))
        XCTAssertEqual(ledger.nextReinjection(urgentOnly: true)?.sequence, TunnelSequence(6))
        XCTAssertEqual(ledger.nextReinjection(urgentOnly: true)?.sequence, TunnelSequence(9))
        XCTAssertNil(ledger.nextReinjection(urgentOnly: true), "only bulk ones are left")
        var order: [UInt32] = []
        while let r = ledger.nextReinjection() { order.append(r.sequence.rawValue) }
        XCTAssertEqual(order, [1, 2, 4, 5, 7])
    }

    func testSequenceOrderHoldsAcrossTheWrap() {
        var ledger = ReinjectionLedger()
        for seq: UInt32 in [0, 1, UInt32.max - 1, UInt32.max] { _ = ledger.recordSent(record(seq), onPath: 3) }
        ledger.pathFailed(id: 3)
        var order: [UInt32] = []
        while let r = ledger.nextReinjection() { order.append(r.sequence.rawValue) }
        XCTAssertEqual(order, [UInt32.max - 1, UInt32.max, 0, 1])
    }

    func testAcknowledgementBySequenceAndDoubleAcknowledgement() {
        var ledger = ReinjectionLedger()
        let ticket = ledger.recordSent(record(5), onPath: 0).ticket!
        _ = ledger.recordSent(record(6), onPath: 0)
        XCTAssertEqual(ledger.acknowledged(sequence: TunnelSequence(6), onPath: 0)?.sequence, TunnelSequence(6))
        XCTAssertNil(ledger.acknowledged(sequence: TunnelSequence(6), onPath: 0), "already acknowledged")
        XCTAssertNil(ledger.acknowledged(sequence: TunnelSequence(5), onPath: 9), "wrong path")
        XCTAssertNotNil(ledger.acknowledged(ticket))
        XCTAssertNil(ledger.acknowledged(ticket), "a ticket acknowledges once")
        XCTAssertEqual(ledger.unacknowledged(onPath: 0), 0)
    }

    func testAFullRingForgetsItsOldestPacketAndHandsItBack() {
        var config = ReinjectionLedger.Configuration()
        config.capacityPerPath = 4
        var ledger = ReinjectionLedger(configuration: config)
        var tickets: [ReinjectionLedger.Ticket] = []
        for seq in UInt32(1)...4 { tickets.append(ledger.recordSent(record(seq), onPath: 7).ticket!) }
        _ = ledger.acknowledged(tickets[1])  // #2 acknowledged: the ring still spans #1...#4
        let fifth = ledger.recordSent(record(5), onPath: 7)
        XCTAssertEqual(fifth.evicted?.sequence, TunnelSequence(1), "the oldest unacknowledged is forgotten")
        XCTAssertNil(ledger.recordSent(record(6), onPath: 7).evicted, "#2's place was already free")
        XCTAssertEqual(ledger.statistics.evicted, 1)
        XCTAssertNil(ledger.acknowledged(tickets[0]), "a forgotten packet's ticket is stale")
        XCTAssertEqual(ledger.unacknowledged(onPath: 7), 4)
        ledger.pathFailed(id: 7)
        var order: [UInt32] = []
        while let r = ledger.nextReinjection() { order.append(r.sequence.rawValue) }
        XCTAssertEqual(order, [3, 4, 5, 6])
    }

    func testPathSlotsAreBoundedAndReusedAfterFailure() {
        var config = ReinjectionLedger.Configuration()
        config.maxPaths = 2
        var ledger = ReinjectionLedger(configuration: config)
        XCTAssertNotNil(ledger.recordSent(record(1), onPath: 10).ticket)
        XCTAssertNotNil(ledger.recordSent(record(2), onPath: 11).ticket)
        XCTAssertNil(ledger.recordSent(record(3), onPath: 12).ticket, "no third slot: not tracked")
        XCTAssertNil(ledger.recordSent(record(3), onPath: -1).ticket, "path IDs are non-negative")
        let stale = ledger.recordSent(record(4), onPath: 10).ticket!
        ledger.pathFailed(id: 10)
        let fresh = ledger.recordSent(record(5), onPath: 12).ticket!
        XCTAssertNil(ledger.acknowledged(stale), "the old path's ticket does not touch the slot's new path")
        XCTAssertEqual(ledger.acknowledged(fresh)?.sequence, TunnelSequence(5))
    }

    func testAFullReinjectionQueueDiscardsTheOldestAndSaysSo() {
        var config = ReinjectionLedger.Configuration()
        config.queueCapacity = 8
        var ledger = ReinjectionLedger(configuration: config)
        for seq in UInt32(1)...10 { _ = ledger.recordSent(record(seq), onPath: 1) }
        var discarded: [UInt32] = []
        let queued = ledger.pathFailed(id: 1) { discarded.append($0.sequence.rawValue) }
        XCTAssertEqual(queued, 10)
        XCTAssertEqual(discarded, [1, 2])
        XCTAssertEqual(ledger.pendingReinjections, 8)
        XCTAssertEqual(ledger.statistics.queueOverflow, 2)
        XCTAssertEqual(ledger.nextReinjection()?.sequence, TunnelSequence(3))
    }

    /// Two paths (10 ms and 40 ms one way), two flows spread over both. Path 2 is cut at 500 ms;
    /// the sender learns it 200 ms later, far beyond the receiver's hold time, and reinjects its
    /// unacknowledged packets on path 1 (some had arrived, only their acknowledgements were
    /// lost). Every packet handed to the connection arrives exactly once; the reinjected ones
    /// whose flow moved on arrive flagged late.
    func testAPathCutMidTransferLosesNothingHandedToTheConnection() {
        var ledger = ReinjectionLedger()
        var receiver = ReorderBuffer()
        receiver.updateHoldTime(paths: [.init(oneWayDelay: ms(10)), .init(oneWayDelay: ms(40))])
        var sequencer = TunnelSequencer()
        let delays: [Int: Double] = [1: 10, 2: 40]
        var arrivals: [(time: Double, header: TunnelHeader)] = []
        var tickets: [UInt32: (path: Int, ticket: ReinjectionLedger.Ticket)] = [:]
        let cut = 500.0
        let detected = 700.0
        var pathAlive = [1: true, 2: true]
        var sent = 0

        func send(_ header: TunnelHeader, on path: Int, at time: Double, reinjected: Bool) {
            var header = header
            header.isReinjected = reinjected
            let r = ReinjectionLedger.Record(
                sequence: header.sequence, handle: Int(header.sequence.rawValue), bytes: 1200, firstSent: at(time))
            tickets[header.sequence.rawValue] = (path, ledger.recordSent(r, onPath: path).ticket!)
            if path == 1 || time < cut { arrivals.append((time + delays[path]!, header)) }  // path 2 drops all after the cut
        }

        var headers: [UInt32: TunnelHeader] = [:]
        var time = 0.0
        while time < 1000 {
            // Acknowledgements: one RTT after sending, if the path delivered the packet and the
            // acknowledgement came back before the cut (path 2's return way dies too).
            for (seq, entry) in tickets where pathAlive[entry.path]! {
                if let a = arrivals.first(where: { $0.header.sequence.rawValue == seq }),
                    case let acked = a.time + delays[entry.path]!, acked <= time, entry.path == 1 || acked < cut
                {
                    _ = ledger.acknowledged(entry.ticket)
                    tickets[seq] = nil
                }
            }
            if time >= detected, pathAlive[2]! {
                pathAlive[2] = false
                XCTAssertGreaterThan(ledger.pathFailed(id: 2), 0)
            }
            while let r = ledger.nextReinjection() {
                send(headers[r.sequence.rawValue]!, on: 1, at: time, reinjected: true)
            }
            let lane: UInt16 = sent % 3 == 0 ? 11 : 22
            let header = sequencer.nextHeader(lane: lane)
            headers[header.sequence.rawValue] = header
            send(header, on: pathAlive[2]! && sent % 2 == 1 ? 2 : 1, at: time, reinjected: false)
            sent += 1
            time += 5
        }

        var delivered: [ReorderBuffer.ReleasedPacket] = []
        for a in arrivals.sorted(by: { $0.time < $1.time }) {
            while let d = receiver.nextDeadline, d < at(a.time) {
                while let p = receiver.poll(now: d) { delivered.append(p) }
            }
            _ = receiver.insert(a.header, handle: Int(a.header.sequence.rawValue), now: at(a.time))
            while let p = receiver.poll(now: at(a.time)) { delivered.append(p) }
        }
        while let p = receiver.poll(now: at(10_000)) { delivered.append(p) }

        let sequences = delivered.map(\.header.sequence.rawValue)
        XCTAssertEqual(Set(sequences).count, sequences.count, "no duplicate delivered")
        XCTAssertEqual(Set(sequences), Set((0..<UInt32(sent)).map { $0 }), "every packet handed to the connection arrives")
        XCTAssertGreaterThan(ledger.statistics.reinjected, 0)
        XCTAssertGreaterThan(receiver.statistics.lateDelivered, 0, "the cut's packets came after their flows moved on")
        XCTAssertGreaterThan(receiver.statistics.duplicatesDropped, 0, "packets delivered but never acknowledged came twice")
        for lane: UInt16 in [11, 22] {
            let inOrder = delivered.filter { $0.header.lane == lane && !$0.isLate }.map(\.header.sequence.rawValue)
            XCTAssertEqual(inOrder, inOrder.sorted(), "lane \(lane) in order apart from the late ones")
        }
    }
}

extension ReinjectionTests {
    /// A loss on a path that is failing (not yet declared dead) is the outage, not congestion:
    /// that one packet is queued for reinjection, in sequence order with the others.
    func testALossOnAFailingPathIsRequeuedInSequenceOrder() {
        var ledger = ReinjectionLedger()
        var tickets: [UInt32: ReinjectionLedger.Ticket] = [:]
        for seq in UInt32(1)...6 { tickets[seq] = ledger.recordSent(record(seq), onPath: 1).ticket }
        XCTAssertTrue(ledger.requeueForReinjection(tickets[5]!))
        XCTAssertTrue(ledger.requeueForReinjection(tickets[2]!))
        XCTAssertFalse(ledger.requeueForReinjection(tickets[2]!), "a ticket is used once")
        XCTAssertEqual(ledger.unacknowledged(onPath: 1), 4)
        XCTAssertEqual(ledger.nextReinjection()?.sequence, TunnelSequence(2))
        XCTAssertEqual(ledger.nextReinjection()?.sequence, TunnelSequence(5))
        XCTAssertNil(ledger.nextReinjection())
        XCTAssertEqual(ledger.statistics.reinjected, 2)
    }

    func testARequeueIntoAFullQueueLetsTheOldestGo() {
        var c = ReinjectionLedger.Configuration()
        c.queueCapacity = 2
        var ledger = ReinjectionLedger(configuration: c)
        var tickets: [UInt32: ReinjectionLedger.Ticket] = [:]
        for seq in UInt32(1)...3 { tickets[seq] = ledger.recordSent(record(seq), onPath: 1).ticket }
        var discarded: [UInt32] = []
        for seq in UInt32(1)...3 { ledger.requeueForReinjection(tickets[seq]!) { discarded.append($0.sequence.rawValue) } }
        XCTAssertEqual(discarded, [1], "its handle goes back to the caller")
        XCTAssertEqual(ledger.pendingReinjections, 2)
        XCTAssertEqual(ledger.statistics.queueOverflow, 1)
    }
}
