// The named scenarios: every name the issue asks for, the parameters chosen for each, and the
// summed link rates (nominal and time-averaged available) that goodput is measured against.
import Congestion
import NetSim
import XCTest

final class ScenarioTests: XCTestCase {
    func testEveryScenarioTheIssueNamesExists() {
        XCTAssertEqual(
            Scenario.names,
            [
                "equal", "mptcp-10-10", "mptcp-10-10-1-25", "mptcp-15-5", "mptcp-15-5-1-25", "mptcp-15-5-25-1",
                "fibre-satellite", "lte-jitter", "failover", "backup", "rate-change", "mixed-flows",
            ])
        XCTAssertNil(Scenario.named("no-such-scenario"))
        XCTAssertEqual(Scenario.named("failover")?.duration, .seconds(15))
    }

    func testSummedLinkRates() {
        let expected: [String: (nominal: Double, available: Double)] = [
            "equal": (100, 100),
            "mptcp-10-10": (20, 20), "mptcp-10-10-1-25": (20, 20),
            "mptcp-15-5": (20, 20), "mptcp-15-5-1-25": (20, 20), "mptcp-15-5-25-1": (20, 20),
            "fibre-satellite": (150, 150), "mixed-flows": (150, 150),
            "lte-jitter": (80, 80),
            // wan0 down for 5 of 15 s.
            "failover": (100, (100 * 10 + 50 * 5) / 15.0),
            // Mains for 10 s, then only the 20 Mbit/s backup for 10 s.
            "backup": (100, (100 * 10 + 20 * 10) / 20.0),
            // 100 for 5 s, then 50 + 5 for 10 s.
            "rate-change": (100, (100 * 5 + 55 * 10) / 15.0),
        ]
        for scenario in Scenario.all {
            guard let e = expected[scenario.name] else { return XCTFail("no expectation for \(scenario.name)") }
            XCTAssertEqual(scenario.nominalSumLinkMbps, e.nominal, accuracy: 1e-9, scenario.name)
            XCTAssertEqual(scenario.availableSumLinkMbps, e.available, accuracy: 1e-9, scenario.name)
        }
        let backup = Scenario.backup
        XCTAssertEqual(backup.availableLinkMbps(at: seconds(9.999)), 100, "the backup carries nothing while a main is up")
        XCTAssertEqual(backup.availableLinkMbps(at: seconds(10)), 20)
        XCTAssertEqual(Scenario.rateChange.averageAvailableLinkMbps(from: seconds(5), to: seconds(15)), 55, accuracy: 1e-9)
    }

    func testKernelMPTCPPairsFollowSimultFlows() {
        // (rate1, rate2, one-way delay1, delay2, waiting room in bytes: netem limit × 1500 B minus the
        // bytes serving out the delay).
        let expected: [(String, Double, Double, UInt64, UInt64, Int, Int)] = [
            ("mptcp-10-10", 10, 10, 0, 0, 30_000, 30_000),
            ("mptcp-10-10-1-25", 10, 10, 1, 25, 30_000 - 1_250, 75_000 - 31_250),
            ("mptcp-15-5", 15, 5, 0, 0, 45_000, 30_000),
            ("mptcp-15-5-1-25", 15, 5, 1, 25, 60_000 - 1_875, 45_000 - 15_625),
            ("mptcp-15-5-25-1", 15, 5, 25, 1, 75_000 - 46_875, 45_000 - 625),
        ]
        for (name, r1, r2, d1, d2, q1, q2) in expected {
            let s = Scenario.named(name)!
            XCTAssertEqual(s.paths.count, 2)
            XCTAssertEqual(s.paths[0].up.rateBitsPerSecond, LinkModel.mbps(r1), name)
            XCTAssertEqual(s.paths[1].up.rateBitsPerSecond, LinkModel.mbps(r2), name)
            XCTAssertEqual(s.paths[0].up.delay, .milliseconds(d1), name)
            XCTAssertEqual(s.paths[1].up.delay, .milliseconds(d2), name)
            XCTAssertEqual(s.paths[0].up.queueCapacityBytes, q1, name)
            XCTAssertEqual(s.paths[1].up.queueCapacityBytes, q2, name)
            XCTAssertEqual(s.paths[0].up, s.paths[0].down, "netem shapes both sides alike")
        }
    }

    func testDelaysAreHalfTheRoundTripAndQueuesOneBDP() {
        let fs = Scenario.fibreSatellite
        XCTAssertEqual(fs.paths.map(\.name), ["fibre", "satellite"])
        XCTAssertEqual(fs.paths[0].up.delay, .milliseconds(5))
        XCTAssertEqual(fs.paths[1].up.delay, .milliseconds(300), "600 ms geostationary round trip")
        XCTAssertEqual(fs.paths[0].up.queueCapacityBytes, 125_000, "100 Mbit/s × 10 ms")
        XCTAssertEqual(fs.paths[1].up.queueCapacityBytes, 3_750_000, "50 Mbit/s × 600 ms")
        XCTAssertEqual(Scenario.mixedFlows.paths, fs.paths)
        let lte = Scenario.lteJitter.paths[1].up
        XCTAssertEqual(lte.jitter.amplitude, .microseconds(7_500), "±15 ms on the round trip")
        XCTAssertEqual(lte.lossProbability, 0.01)
        XCTAssertEqual(Scenario.lteJitter.paths[0].up.jitter, .none)
        XCTAssertTrue(Scenario.all.allSatisfy { $0.paths.allSatisfy { $0.up.overheadBytes == 28 } })
    }

    func testEventsHitBothDirections() {
        let failover = Scenario.failover
        for link in [failover.paths[0].up, failover.paths[0].down] {
            XCTAssertTrue(link.isUp(at: seconds(4.999)))
            XCTAssertFalse(link.isUp(at: seconds(5)))
            XCTAssertTrue(link.isUp(at: seconds(10)))
        }
        XCTAssertTrue(failover.paths[1].up.outages.isEmpty)
        let backup = Scenario.backup
        XCTAssertEqual(backup.paths.map(\.isBackup), [false, false, true])
        XCTAssertFalse(backup.paths[1].down.isUp(at: seconds(19)))
        XCTAssertEqual(Scenario.rateChange.paths[1].down.rate(at: seconds(6)), 5_000_000)
        XCTAssertEqual(Scenario.rateChange.events.map(\.time), [seconds(5)])
    }

    func testFailoverCutsTrafficOnWan0OnlyDuringTheOutage() throws {
        let router = RecordingEndpoint()
        let vps = RecordingEndpoint()
        let sim = Scenario.failover.makeSimulator(router: router, vps: vps, seed: 1)
        sim.every(.milliseconds(10), until: Scenario.failover.endTime) { _ in
            router.send(1000, path: 0)
            router.send(1000, path: 1)
        }
        try sim.run(until: Scenario.failover.endTime)
        let onWan0 = vps.received.filter { $0.path == 0 }.map(\.time)
        XCTAssertFalse(onWan0.contains { $0 >= seconds(5) && $0 < seconds(10) })
        XCTAssertTrue(onWan0.contains { $0 > seconds(10) })
        XCTAssertEqual(vps.received.filter { $0.path == 1 }.count, 1500, "wan1 delivers everything")
    }

    func testEveryScenarioRuns() throws {
        for scenario in Scenario.all {
            let router = RecordingEndpoint()
            let vps = RecordingEndpoint()
            let sim = scenario.makeSimulator(router: router, vps: vps, seed: 1)
            for path in scenario.paths.indices { router.send(1200, path: path) }
            try sim.run(until: seconds(1))
            XCTAssertEqual(vps.received.count, scenario.paths.count, scenario.name)
        }
    }
}
