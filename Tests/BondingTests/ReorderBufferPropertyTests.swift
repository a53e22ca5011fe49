// Property tests of the reorder buffer on random traffic (seeded, repeatable): random flows over
// random paths (1–700 ms, jitter), losses, redundant copies, late reinjections, losses declared
// by the sender, small and large buffers. Whatever happens, the buffer never delivers a packet
// twice, never delivers a flow's packets out of order, never holds a packet beyond its bound,
// and never keeps a packet forever.
import Bonding
import Congestion
import XCTest

final class ReorderBufferPropertyTests: XCTestCase {
    enum Event {
        case arrival(TunnelHeader, handle: Int)
        case declaredLost(TunnelHeader)
    }

    struct Scenario {
        var events: [(time: Timestamp, event: Event)] = []
        var sent = 0
        var lost = Set<UInt32>()
        var pathDelays: [ReorderBuffer.PathDelay] = []
    }

    /// Random traffic: `lossy` adds losses, copies and declarations.
    static func makeScenario(_ rng: inout Xoshiro256, lossy: Bool) -> Scenario {
        var s = Scenario()
        let lanes = (0..<Int.random(in: 1...8, using: &rng)).map { _ in UInt16.random(in: 0..<4096, using: &rng) }
        let paths = (0..<Int.random(in: 1...4, using: &rng)).map { _ in
            (delay: Double.random(in: 1...700, using: &rng), jitter: Double.random(in: 0...30, using: &rng))
        }
        s.pathDelays = paths.map { .init(oneWayDelay: .milliseconds(UInt64($0.delay)), jitter: .milliseconds(UInt64($0.jitter / 2))) }
        let lossRate = lossy ? Double.random(in: 0...0.1, using: &rng) : 0
        let copyRate = lossy ? Double.random(in: 0...0.1, using: &rng) : 0
        var laneCounters = [UInt16: UInt16]()
        var time = 0.0
        var sequence = UInt32.random(in: 0...UInt32.max, using: &rng)  // wrap somewhere, maybe
        var handle = 0
        s.sent = Int.random(in: 200...1500, using: &rng)
        for _ in 0..<s.sent {
            time += Double.random(in: 0...3, using: &rng)
            // Skewed lane choice: the first lanes are busier.
            let lane = lanes[min(Int.random(in: 0..<lanes.count, using: &rng), Int.random(in: 0..<lanes.count, using: &rng))]
            let laneSeq = laneCounters[lane, default: 0]
            laneCounters[lane] = laneSeq &+ 1
            let header = TunnelHeader(sequence: TunnelSequence(sequence), lane: lane, laneSequence: laneSeq)
            sequence &+= 1
            func arrival(_ extra: Double = 0) -> Timestamp {
                let path = paths[Int.random(in: 0..<paths.count, using: &rng)]
                return at(time + extra + path.delay + Double.random(in: 0...path.jitter, using: &rng))
            }
            if Double.random(in: 0..<1, using: &rng) < lossRate {
                s.lost.insert(header.sequence.rawValue)
                let roll = Double.random(in: 0..<1, using: &rng)
                if roll < 0.3 {
                    s.events.append((at(time + Double.random(in: 0...800, using: &rng)), .declaredLost(header)))
                } else if roll < 0.5 {
                    var copy = header  // reinjected after its path died, up to 1.5 s later
                    copy.isReinjected = true
                    s.events.append((arrival(Double.random(in: 50...1500, using: &rng)), .arrival(copy, handle: handle)))
                    handle += 1
                }
                continue
            }
            s.events.append((arrival(), .arrival(header, handle: handle)))
            handle += 1
            if Double.random(in: 0..<1, using: &rng) < copyRate {
                s.events.append((arrival(), .arrival(header, handle: handle)))
                handle += 1
            }
        }
        s.events.sort { $0.time < $1.time }
        return s
    }

    struct Outcome {
        var delivered: [ReorderBuffer.ReleasedPacket] = []
        var wallHeld: [Duration] = []
        var maxHeld = 0
    }

    /// Feeds the events in time order, waking at every deadline, then drains.
    static func run(_ s: Scenario, buffer: inout ReorderBuffer, rng: inout Xoshiro256, adaptHold: Bool) -> Outcome {
        var out = Outcome()
        var arrivedAt = [Int: Timestamp]()
        func drain(_ now: Timestamp) {
            while let p = buffer.poll(now: now) {
                out.delivered.append(p)
                out.wallHeld.append(now - arrivedAt[p.handle]!)
            }
            out.maxHeld = max(out.maxHeld, buffer.statistics.held)
        }
        var i = 0
        while i < s.events.count {
            let (time, event) = s.events[i]
            if let deadline = buffer.nextDeadline, deadline < time {
                drain(deadline)
                if buffer.nextDeadline == deadline {
                    XCTFail("a deadline passed and nothing was released")
                    return out
                }
                continue
            }
            switch event {
            case .arrival(let header, let handle):
                arrivedAt[handle] = time
                _ = buffer.insert(header, handle: handle, now: time)
            case .declaredLost(let header):
                buffer.declareLost(header, now: time)
            }
            if adaptHold, Int.random(in: 0..<50, using: &rng) == 0 {
                // The path estimates move: a random subset of the paths with drifting delays.
                let paths = s.pathDelays.map {
                    ReorderBuffer.PathDelay(oneWayDelay: $0.oneWayDelay * UInt64.random(in: 1...3, using: &rng) / 2, jitter: $0.jitter)
                }
                buffer.updateHoldTime(paths: Array(paths.prefix(Int.random(in: 0...paths.count, using: &rng))))
            }
            drain(time)
            i += 1
        }
        while let deadline = buffer.nextDeadline {
            drain(deadline)
            if buffer.nextDeadline == deadline {
                XCTFail("a deadline passed and nothing was released")
                return out
            }
        }
        drain(at(1e9))
        return out
    }

    /// The properties every run must have.
    static func check(_ out: Outcome, _ buffer: ReorderBuffer, holdBound: Duration, capacity: Int, seed: UInt64) {
        var seen = Set<UInt32>()
        var lastInLane = [UInt16: ReorderBuffer.ReleasedPacket]()
        for p in out.delivered {
            XCTAssertTrue(seen.insert(p.header.sequence.rawValue).inserted, "seed \(seed): \(p.header) delivered twice")
            if p.isLate {
                // Out of order by policy: only reinjected copies, never held.
                XCTAssertTrue(p.header.isReinjected, "seed \(seed): \(p.header) delivered late but not reinjected")
                XCTAssertEqual(p.heldFor, .zero)
                continue
            }
            if let previous = lastInLane[p.header.lane] {
                XCTAssertTrue(
                    previous.header.sequence.precedes(p.header.sequence),
                    "seed \(seed): lane \(p.header.lane) delivered \(previous.header) before \(p.header)")
                XCTAssertLessThan(
                    p.header.laneSequence &- previous.header.laneSequence, 0x8000,
                    "seed \(seed): lane sequence went backwards")
            }
            lastInLane[p.header.lane] = p
            XCTAssertLessThanOrEqual(p.heldFor, holdBound, "seed \(seed): \(p.header) held \(p.heldFor)")
        }
        for held in out.wallHeld { XCTAssertLessThanOrEqual(held, holdBound, "seed \(seed): held \(held) by the clock") }
        XCTAssertLessThanOrEqual(out.maxHeld, capacity, "seed \(seed): more held than the capacity")
        let stats = buffer.statistics
        XCTAssertEqual(stats.held, 0, "seed \(seed): packets left behind")
        XCTAssertEqual(stats.ready, 0)
        XCTAssertEqual(stats.accepted, stats.released, "seed \(seed): every accepted packet leaves")
        XCTAssertEqual(UInt64(out.delivered.count), stats.released)
        XCTAssertEqual(UInt64(out.delivered.filter(\.isLate).count), stats.lateDelivered)
        if buffer.configuration.lateArrivals == .drop { XCTAssertEqual(stats.lateDelivered, 0) }
    }

    func testRandomTrafficNeverDuplicatesNeverReordersAFlowAndRespectsTheHoldBound() {
        for seed in UInt64(1)...150 {
            var rng = Xoshiro256(seed: seed)
            let scenario = Self.makeScenario(&rng, lossy: true)
            var config = ReorderBuffer.Configuration()
            config.capacity = [4, 32, 256, 8192][Int(seed % 4)]
            config.readyReserve = 2048
            config.lateArrivals = seed % 3 == 0 ? .drop : .deliverReinjected
            var buffer = ReorderBuffer(configuration: config)
            buffer.setHoldTime(.milliseconds(UInt64.random(in: 1...900, using: &rng)))
            let hold = buffer.holdTime
            let out = Self.run(scenario, buffer: &buffer, rng: &rng, adaptHold: false)
            Self.check(out, buffer, holdBound: hold, capacity: config.capacity, seed: seed)
            XCTAssertEqual(buffer.statistics.rejected, 0)
        }
    }

    func testAdaptiveHoldNeverExceedsTheMaximumHold() {
        for seed in UInt64(1000)...1080 {
            var rng = Xoshiro256(seed: seed)
            let scenario = Self.makeScenario(&rng, lossy: true)
            var config = ReorderBuffer.Configuration()
            config.maximumHold = .milliseconds(UInt64.random(in: 50...1000, using: &rng))
            // Half the runs also learn from late arrivals: the bound is still the maximum hold.
            config.learnsFromLateArrivals = seed % 2 == 1
            var buffer = ReorderBuffer(configuration: config)
            let out = Self.run(scenario, buffer: &buffer, rng: &rng, adaptHold: true)
            Self.check(out, buffer, holdBound: config.maximumHold, capacity: config.capacity, seed: seed)
        }
    }

    /// Nothing lost, hold time from the real path delays, room enough: every packet is delivered
    /// exactly once, every flow in full order, no gap skipped.
    func testWithoutLossEveryPacketIsDeliveredOnceAndInOrder() {
        for seed in UInt64(2000)...2060 {
            var rng = Xoshiro256(seed: seed)
            let scenario = Self.makeScenario(&rng, lossy: false)
            var buffer = ReorderBuffer()
            buffer.updateHoldTime(paths: scenario.pathDelays)
            let out = Self.run(scenario, buffer: &buffer, rng: &rng, adaptHold: false)
            Self.check(out, buffer, holdBound: buffer.holdTime, capacity: buffer.configuration.capacity, seed: seed)
            XCTAssertEqual(out.delivered.count, scenario.sent, "seed \(seed)")
            XCTAssertEqual(buffer.statistics.gapsSkipped, 0, "seed \(seed)")
            XCTAssertEqual(buffer.statistics.lateDropped, 0, "seed \(seed)")
            var perLane = [UInt16: UInt16]()
            for p in out.delivered {
                XCTAssertEqual(p.header.laneSequence, perLane[p.header.lane, default: 0], "seed \(seed): lane \(p.header.lane)")
                perLane[p.header.lane] = p.header.laneSequence &+ 1
            }
        }
    }
}
