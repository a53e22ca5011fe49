import Congestion
import QUIC
// The real multipath QUIC connection driven through the simulated WAN links.
import XCTest

@testable import NetSim

final class QUICOverSimulatorTests: XCTestCase {
    func testRouterOpensEveryWANPathAndDatagramsCrossThem() throws {
        let scenario = Scenario.equal
        let router = try SimulatedRouter(pathCount: scenario.paths.count, configuration: SimulatedQUICConfiguration(), now: .zero)
        let vps = try SimulatedVPS(pathCount: scenario.paths.count, configuration: SimulatedQUICConfiguration())
        let sim = scenario.makeSimulator(router: router, vps: vps, seed: 7)
        try sim.run(until: .zero + .seconds(1))
        XCTAssertTrue(router.connection.isMultipathEnabled)
        XCTAssertEqual(router.connection.allPathStatistics.filter { $0.state == .active }.count, 2, "both WAN paths validated")
        var received = 0
        vps.onEvent = { _ in
            while let e = vps.connection?.pollEvent() { if case .datagramReceived = e { received += 1 } }
        }
        // A source inside the simulation: 20 datagrams per path every 10 ms for 100 ms.
        var sent = 0
        _ = sim.every(.milliseconds(10), from: .zero + .seconds(1), until: .zero + .milliseconds(1095)) { _ in
            for i in 0..<40 {
                try? router.connection.sendDatagram([UInt8](repeating: UInt8(i % 256), count: 1000), onPath: UInt32(i % 2))
                sent += 1
            }
        }
        try sim.run(until: .zero + .seconds(2))
        XCTAssertEqual(sent, 400)
        XCTAssertEqual(received, 400, "every datagram crosses the lossless 2 x 50 Mbit/s links")
        XCTAssertGreaterThan(sim.paths[0].up.statistics.delivered.packets, 200, "path 0 carried its half")
        XCTAssertGreaterThan(sim.paths[1].up.statistics.delivered.packets, 200, "path 1 carried its half")
    }
}
