// How many datagrams the sender lets a path hold inside QUIC: 16 for a slow path (more is only a
// queue the scheduler cannot take back), up to a GSO send's 64 for a fast one (what one wake-up
// hands a path is what its next sendmmsg carries).
import XCTest

@testable import Tunnel

final class QueuedDatagramLimitTests: XCTestCase {
    private let configuration = TunnelConfiguration()
    private func limit(mbps: Double) -> Int { configuration.queuedDatagramLimit(deliveryRate: mbps * 1e6 / 8) }

    func testSlowAndUnmeasuredPathsKeepTheFloor() {
        XCTAssertEqual(configuration.queuedDatagramLimit(deliveryRate: 0), 16, "no rate sample yet")
        XCTAssertEqual(limit(mbps: 50), 16)
        XCTAssertEqual(limit(mbps: 100), 16, "1 ms of 100 Mbit/s is 10 packets")
        XCTAssertEqual(configuration.queuedDatagramLimit(deliveryRate: .nan), 16)
        XCTAssertEqual(configuration.queuedDatagramLimit(deliveryRate: .infinity), 16)
    }

    func testAFastPathMayQueueAMillisecondUpToOneGSOSend() {
        let perDatagram = Double(configuration.framedWireBytes(inner: configuration.nominalInnerPacketBytes))
        XCTAssertEqual(limit(mbps: 400), Int(400e6 / 8 * 0.001 / perDatagram), "40 packets of 1 ms at 400 Mbit/s")
        XCTAssertGreaterThan(limit(mbps: 400), 16)
        XCTAssertEqual(limit(mbps: 1000), 64)
        XCTAssertEqual(limit(mbps: 10_000), 64, "never more than UDP_MAX_SEGMENTS")
    }

    func testARaisedFloorStillWins() {
        var c = TunnelConfiguration()
        c.maxQueuedDatagramsPerPath = 100
        XCTAssertEqual(c.queuedDatagramLimit(deliveryRate: 0), 100)
        XCTAssertEqual(c.queuedDatagramLimit(deliveryRate: 10e9 / 8), 100)
    }
}
