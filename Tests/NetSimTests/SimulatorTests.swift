// The event loop with endpoints attached: a ping-pong over two paths, timers, traffic-source hooks,
// determinism per seed, and the guards against stale timers, livelock and runaway endpoints.
import Congestion
import NetSim
import XCTest

final class SimulatorTests: XCTestCase {
    func testPingPongOverTwoPathsProvesTheEndpointProtocol() throws {
        // Path 0: 10 Mbit/s, 10 ms each way. Path 1: 10 Mbit/s, 50 ms each way.
        let fast = LinkModel(rateBitsPerSecond: LinkModel.mbps(10), delay: .milliseconds(10))
        let slow = LinkModel(rateBitsPerSecond: LinkModel.mbps(10), delay: .milliseconds(50))
        let router = RecordingEndpoint()
        let vps = RecordingEndpoint()
        let sim = Simulator(
            topology: Topology(router: router, vps: vps, paths: [.symmetric(fast), .symmetric(slow)]), seed: 1)

        // The router pings on both paths every 100 ms from 100 ms to 1 s; the VPS echoes each ping
        // on the path it came in on.
        router.timers = [ms(100)]
        router.onTimeout = { router, now in
            let sequence = UInt32(now.nanoseconds / 1_000_000)
            router.send(100, path: 0, tag: sequence)
            router.send(100, path: 1, tag: sequence)
            if now < seconds(1) { router.timers.append(now + .milliseconds(100)) }
        }
        vps.onReceive = { vps, datagram, path, _ in vps.outbox.append(OutgoingDatagram(datagram, path: path)) }
        try sim.run(until: seconds(2))

        XCTAssertEqual(vps.received.count, 20, "10 pings on each path reached the VPS")
        XCTAssertEqual(router.received.count, 20, "and every one came back")
        // 100 B at 10 Mbit/s serialise in 80 µs each way.
        for echo in router.received {
            let sent = ms(UInt64(tag(of: echo.bytes)))
            let expected: Duration = echo.path == 0 ? .microseconds(20_160) : .microseconds(100_160)
            XCTAssertEqual(echo.time - sent, expected, "round trip on path \(echo.path)")
        }
        XCTAssertEqual(Set(vps.received.map(\.path)), [0, 1])
        XCTAssertEqual(sim.now, seconds(2), "run(until:) leaves the clock at the deadline")
        XCTAssertEqual(router.timeoutsHandled, (1...10).map { ms(UInt64($0) * 100) }, "timers fire exactly on time")
        XCTAssertEqual(sim.diagnostics.datagramsSent, 40)
        XCTAssertEqual(sim.diagnostics.datagramsDelivered, 40)
    }

    func testTheClockJumpsToTheNextEvent() throws {
        let (sim, router, _) = onePathSimulator(LinkModel())
        router.timers = [ms(123)]
        try sim.run(until: seconds(1000))
        XCTAssertEqual(router.timeoutsHandled, [ms(123)])
        XCTAssertEqual(sim.diagnostics.eventsProcessed, 1, "nothing happens between events")
        XCTAssertEqual(sim.now, seconds(1000))
        XCTAssertFalse(try sim.step(), "nothing is left to happen")
    }

    func testStepProcessesOneEventAtATime() throws {
        let (sim, router, vps) = onePathSimulator(LinkModel(delay: .milliseconds(5)))
        router.send(10)
        router.send(10)
        XCTAssertTrue(try sim.step())
        XCTAssertEqual(sim.now, ms(5))
        XCTAssertEqual(vps.received.count, 1)
        XCTAssertTrue(try sim.step())
        XCTAssertEqual(vps.received.count, 2)
        XCTAssertFalse(try sim.step())
    }

    func testRepeatingSourceRunsAtItsIntervalLikeA50PacketPerSecondVoIPFlow() throws {
        let (sim, router, vps) = onePathSimulator(LinkModel(rateBitsPerSecond: LinkModel.mbps(1), delay: .milliseconds(20)))
        var runs: [Timestamp] = []
        sim.every(.milliseconds(20), from: seconds(1), until: seconds(2)) { sim in
            runs.append(sim.now)
            router.send(160)
        }
        try sim.run(until: seconds(3))
        XCTAssertEqual(runs, (0...50).map { seconds(1) + .milliseconds(20) * UInt64($0) })
        XCTAssertEqual(vps.received.count, 51)
    }

    func testCancelledActionsStop() throws {
        let (sim, _, _) = onePathSimulator(LinkModel())
        var count = 0
        var source: ScheduledAction!
        source = sim.every(.milliseconds(1)) { _ in
            count += 1
            if count == 5 { source.cancel() }
        }
        let once = sim.schedule(at: ms(3)) { _ in XCTFail("a cancelled one-shot action must not run") }
        once.cancel()
        try sim.run(until: seconds(1))
        XCTAssertEqual(count, 5)
    }

    func testSameSeedGivesIdenticalRunsAndAnotherSeedDoesNot() throws {
        func trace(seed: UInt64) throws -> [SimulatorEvent] {
            let lossy = LinkModel(
                rateBitsPerSecond: LinkModel.mbps(20), delay: .milliseconds(15),
                jitter: Jitter(amplitude: .milliseconds(5), ordering: .reordering),
                lossProbability: 0.02, burstLoss: GilbertElliott(goodToBad: 0.01, badToGood: 0.3),
                queueCapacityBytes: 30_000, overheadBytes: 28)
            let router = RecordingEndpoint()
            let vps = RecordingEndpoint()
            let sim = Simulator(
                topology: Topology(router: router, vps: vps, paths: [.symmetric(lossy), .symmetric(lossy)]),
                seed: seed)
            var events: [SimulatorEvent] = []
            sim.observer = { events.append($0) }
            // Random sizes and paths from the simulator's own stream, both ways: ~30 Mbit/s per 20 Mbit/s link.
            sim.every(.microseconds(100), until: seconds(2)) { sim in
                router.send(100 + Int(sim.random.nextInclusive(1300)), path: Int(sim.random.nextInclusive(1)))
                vps.send(100 + Int(sim.random.nextInclusive(1300)), path: Int(sim.random.nextInclusive(1)))
            }
            try sim.run(until: seconds(3))
            return events
        }
        let first = try trace(seed: 42)
        let second = try trace(seed: 42)
        XCTAssertEqual(first.count, second.count)
        XCTAssertTrue(first == second, "the same seed must replay the same run event for event")
        XCTAssertTrue(
            first.contains {
                if case .dropped(_, _, .burstLoss, _) = $0 { return true }
                return false
            })
        XCTAssertTrue(
            first.contains {
                if case .dropped(_, _, .queueFull, _) = $0 { return true }
                return false
            })
        XCTAssertFalse(try trace(seed: 43) == first, "another seed gives another run")
    }

    func testObserverAgreesWithLinkStatistics() throws {
        let model = LinkModel(
            rateBitsPerSecond: LinkModel.mbps(5), delay: .milliseconds(10), lossProbability: 0.05,
            queueCapacityBytes: 10_000)
        let (sim, router, _) = onePathSimulator(model)
        var delivered = 0
        var dropped = 0
        sim.observer = { event in
            switch event {
            case .delivered: delivered += 1
            case .dropped: dropped += 1
            case .sent: break
            }
        }
        sim.every(.milliseconds(1), until: seconds(1)) { _ in router.send(1000) }
        try sim.run(until: seconds(2))
        let stats = sim.link(LinkID(path: 0, direction: .up)).statistics
        XCTAssertEqual(stats.delivered.packets, delivered)
        XCTAssertEqual(stats.droppedTotal.packets, dropped)
        XCTAssertEqual(stats.offered.packets, 1001)
        XCTAssertEqual(stats.offered.packets, stats.delivered.packets + stats.droppedTotal.packets)
    }

    // MARK: Guards

    /// An endpoint whose timer is always in the past.
    final class StaleTimerEndpoint: SimulatedEndpoint {
        var fired = 0
        func receive(_ datagram: [UInt8], path: Int, now: Timestamp) {}
        func poll(now: Timestamp) -> OutgoingDatagram? { nil }
        var nextTimeout: Timestamp? { .zero }
        func handleTimeout(now: Timestamp) { fired += 1 }
    }

    func testATimeoutInThePastFiresOnceAndTheRunMovesOn() throws {
        let stale = StaleTimerEndpoint()
        let sim = Simulator(
            topology: Topology(router: stale, vps: RecordingEndpoint(), paths: [.symmetric(LinkModel())]),
            seed: 1)
        try sim.run(until: ms(5))
        XCTAssertEqual(stale.fired, 1, "fired once at the start, then left alone while nothing else happens")
        var ticks = 0
        sim.every(.milliseconds(10), until: seconds(1)) { _ in ticks += 1 }
        try sim.run(until: seconds(2))
        XCTAssertEqual(ticks, 100)
        XCTAssertEqual(stale.fired, 1 + ticks, "at most once per instant at which something else happened")
        XCTAssertEqual(sim.now, seconds(2))
        XCTAssertEqual(sim.diagnostics.staleTimeouts, stale.fired - 1, "the first fire, at time zero, was on time")
    }

    func testEndpointsBouncingADatagramForeverAtOneInstantIsReportedAsLivelock() {
        // Unlimited rate and zero delay: each echo arrives at the instant it was sent.
        let (sim, router, vps) = onePathSimulator(LinkModel())
        vps.onReceive = { vps, d, path, _ in vps.outbox.append(OutgoingDatagram(d, path: path)) }
        router.onReceive = { router, d, path, _ in router.outbox.append(OutgoingDatagram(d, path: path)) }
        sim.maxEventsPerInstant = 1_000
        router.send(10)
        XCTAssertThrowsError(try sim.run(until: seconds(1))) { error in
            XCTAssertEqual(error as? SimulatorError, .livelock(at: .zero, events: 1_001))
        }
    }

    /// An endpoint that always has another datagram.
    final class FloodingEndpoint: SimulatedEndpoint {
        func receive(_ datagram: [UInt8], path: Int, now: Timestamp) {}
        func poll(now: Timestamp) -> OutgoingDatagram? { OutgoingDatagram([1], path: 0) }
        var nextTimeout: Timestamp? { nil }
        func handleTimeout(now: Timestamp) {}
    }

    func testAnEndpointThatNeverStopsSendingIsReported() {
        let sim = Simulator(
            topology: Topology(
                router: FloodingEndpoint(), vps: RecordingEndpoint(),
                paths: [.symmetric(LinkModel())]), seed: 1)
        sim.maxDatagramsPerPoll = 100
        XCTAssertThrowsError(try sim.run(until: seconds(1))) { error in
            XCTAssertEqual(error as? SimulatorError, .runawayEndpoint(.router, at: .zero, datagrams: 101))
        }
    }

    func testDatagramsForAMissingPathAreCountedNotRouted() throws {
        let (sim, router, vps) = onePathSimulator(LinkModel())
        router.send(10, path: 3)
        try sim.run(until: seconds(1))
        XCTAssertEqual(sim.diagnostics.unroutableDatagrams, 1)
        XCTAssertTrue(vps.received.isEmpty)
    }

    func testEachLinkDrawsFromItsOwnStream() throws {
        // Path 0's losses must not change when path 1 carries traffic too.
        func path0Losses(alsoUsePath1: Bool) throws -> Int {
            let lossy = LinkModel(lossProbability: 0.1)
            let router = RecordingEndpoint()
            let sim = Simulator(
                topology: Topology(
                    router: router, vps: RecordingEndpoint(),
                    paths: [.symmetric(lossy), .symmetric(lossy)]), seed: 8)
            sim.every(.milliseconds(1), until: seconds(1)) { _ in
                router.send(10, path: 0)
                if alsoUsePath1 { router.send(10, path: 1) }
            }
            try sim.run(until: seconds(2))
            return sim.link(LinkID(path: 0, direction: .up)).statistics.dropped(.randomLoss).packets
        }
        XCTAssertEqual(try path0Losses(alsoUsePath1: false), try path0Losses(alsoUsePath1: true))
    }
}
