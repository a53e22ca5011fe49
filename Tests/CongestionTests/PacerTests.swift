// The pacer: a burst allowance of a few packets at ordinary rates and of one send quantum (100 µs
// at the rate, at most 64 KB) at high ones; once it is spent, a wait for the next quantum's tokens,
// so a fast path wakes its sender once per quantum rather than once per packet.
import XCTest

@testable import Congestion

final class PacerTests: XCTestCase {
    private let size = 1472
    private let start = Timestamp(nanoseconds: 1_000_000_000)

    /// How many packets leave back to back from a pacer idle long enough to fill its allowance.
    private func burst(rate: Double) -> Int {
        var pacer = Pacer(maxDatagramSize: size)
        _ = pacer.delay(for: size, rate: rate, now: start)
        let now = start + .seconds(1)
        var sent = 0
        while pacer.delay(for: size, rate: rate, now: now) == nil, sent < 1000 {
            pacer.onSent(bytes: size)
            sent += 1
        }
        return sent
    }

    /// After the allowance is spent at `now`: how long the pacer says to wait, and how many
    /// packets may then leave at once.
    private func nextBatch(rate: Double) -> (wait: Double, packets: Int) {
        var pacer = Pacer(maxDatagramSize: size)
        while pacer.delay(for: size, rate: rate, now: start) == nil { pacer.onSent(bytes: size) }
        let at = pacer.delay(for: size, rate: rate, now: start)!
        var packets = 0
        while pacer.delay(for: size, rate: rate, now: at) == nil, packets < 1000 {
            pacer.onSent(bytes: size)
            packets += 1
        }
        return ((at - start).seconds, packets)
    }

    func testAtOrdinaryRatesTheBurstIsTenPackets() {
        XCTAssertEqual(burst(rate: 50e6 / 8), 10)
        XCTAssertEqual(burst(rate: 1e9 / 8), 10)  // 100 µs is 12 500 bytes: less than 10 packets
    }

    func testAtHighRatesTheBurstIs100MicrosecondsUpTo64KB() {
        // 2 Gbit/s: 100 µs is 25 000 bytes, 16 packets of 1472.
        XCTAssertEqual(burst(rate: 2e9 / 8), 16)
        // 10 Gbit/s: 100 µs would be 125 KB; the allowance stops at 64 KB, 44 packets.
        XCTAssertEqual(burst(rate: 10e9 / 8), 44)
    }

    func testAtLowRatesItWaitsForOnePacket() {
        // 100 Mbit/s: a quantum (1250 bytes) is less than a packet; the wait is one packet's time.
        let rate = 100e6 / 8
        let b = nextBatch(rate: rate)
        XCTAssertEqual(b.packets, 1)
        XCTAssertLessThanOrEqual(b.wait, Double(size) / rate + 1e-6)
    }

    func testAtHighRatesItWaitsForAQuantumAndThenSendsIt() {
        // 2 Gbit/s: not a wake-up every 6 µs for one packet but one every ~94 µs for 16.
        let rate = 2e9 / 8
        let b = nextBatch(rate: rate)
        XCTAssertEqual(b.packets, 16)
        // The tokens a quantum needs beyond the 1448 bytes the burst left (25 000 − 16 × 1472).
        XCTAssertEqual(b.wait, (25_000 - 1448) / rate, accuracy: 1e-6)
    }

    func testTheAverageRateIsKept() {
        // 10 000 packets at 2 Gbit/s take 10 000 packet times, whatever the batching.
        let rate = 2e9 / 8
        var pacer = Pacer(maxDatagramSize: size)
        var now = start
        _ = pacer.delay(for: size, rate: rate, now: now)
        for _ in 0..<10_000 {
            if let t = pacer.delay(for: size, rate: rate, now: now) { now = t }
            pacer.onSent(bytes: size)
        }
        let expected = 10_000 * Double(size) / rate
        XCTAssertEqual((now - start).seconds, expected, accuracy: expected * 0.01)
    }
}
