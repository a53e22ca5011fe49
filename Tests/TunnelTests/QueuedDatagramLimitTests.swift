// How many datagrams the sender lets a path hold inside QUIC: 16 (more is only a queue the
// scheduler cannot take back), or as many as the path's pacer and window let leave at once, up to
// a GSO send's 64 (what one wake-up hands a path is what its next sendmmsg carries).
import Congestion
import XCTest

@testable import Tunnel

final class QueuedDatagramLimitTests: XCTestCase {
    private let configuration = TunnelConfiguration()
    private var perDatagram: Int { configuration.framedWireBytes(inner: configuration.nominalInnerPacketBytes) }

    func testASmallAllowanceKeepsTheFloor() {
        XCTAssertEqual(configuration.queuedDatagramLimit(sendAllowance: 0), 16, "nothing may leave now")
        XCTAssertEqual(configuration.queuedDatagramLimit(sendAllowance: -5), 16, "a window overfull")
        XCTAssertEqual(configuration.queuedDatagramLimit(sendAllowance: 10 * 1472), 16, "the pacer's 10-packet burst")
    }

    func testALargeAllowanceFillsOneGSOSendAndNoMore() {
        XCTAssertEqual(configuration.queuedDatagramLimit(sendAllowance: 40 * perDatagram + 7), 40)
        XCTAssertEqual(configuration.queuedDatagramLimit(sendAllowance: 65_536), 65_536 / perDatagram)
        XCTAssertEqual(configuration.queuedDatagramLimit(sendAllowance: 10_000_000), 64, "never more than UDP_MAX_SEGMENTS")
    }

    func testARaisedFloorStillWins() {
        var c = TunnelConfiguration()
        c.maxQueuedDatagramsPerPath = 100
        XCTAssertEqual(c.queuedDatagramLimit(sendAllowance: 0), 100)
        XCTAssertEqual(c.queuedDatagramLimit(sendAllowance: 10_000_000), 100)
    }

    /// The pacer's allowance: its full burst at first, what is left after a send, refilled with
    /// time at the rate, never above the burst, and asking leaves the state alone.
    func testThePacersAllowance() {
        var pacer = Pacer(maxDatagramSize: 1472)
        let rate = 2e9 / 8  // 2 Gbit/s: a quantum of 100 µs is 25 000 bytes, more than 10 packets
        let t0 = Timestamp(nanoseconds: 1_000_000)
        XCTAssertEqual(pacer.allowance(rate: rate, now: t0), 25_000)
        XCTAssertNil(pacer.delay(for: 1472, rate: rate, now: t0))
        pacer.onSent(bytes: 20_000)
        XCTAssertEqual(pacer.allowance(rate: rate, now: t0), 5_000)
        XCTAssertEqual(pacer.allowance(rate: rate, now: t0), 5_000, "asking changes nothing")
        XCTAssertEqual(pacer.allowance(rate: rate, now: t0 + .microseconds(40)), 15_000, "40 µs at 250 MB/s")
        XCTAssertEqual(pacer.allowance(rate: rate, now: t0 + .seconds(1)), 25_000, "never more than the burst")
    }
}
