// The generator is xoshiro256** seeded by splitmix64, bit for bit, so runs repeat everywhere.
import NetSim
import XCTest

final class SimRandomTests: XCTestCase {
    func testMatchesTheReferenceAlgorithm() {
        // Values from an independent implementation of splitmix64 + xoshiro256**.
        var zero = SimRandom(seed: 0)
        XCTAssertEqual(
            [zero.next(), zero.next(), zero.next()],
            [0x99EC_5F36_CB75_F2B4, 0xBF6E_1F78_4956_452A, 0x1A5F_849D_4933_E6E0])
        var answer = SimRandom(seed: 42)
        XCTAssertEqual(
            [answer.next(), answer.next(), answer.next()],
            [0x1578_0B2E_0C2E_C716, 0x6104_D986_6D11_3A7E, 0xAE17_5332_39E4_99A1])
    }

    func testSameSeedSameSequenceAndDifferentSeedsDiffer() {
        var a = SimRandom(seed: 2024)
        var b = SimRandom(seed: 2024)
        var c = SimRandom(seed: 2025)
        let sa = (0..<100).map { _ in a.next() }
        XCTAssertEqual(sa, (0..<100).map { _ in b.next() })
        XCTAssertNotEqual(sa, (0..<100).map { _ in c.next() })
    }

    func testUnitIntervalAndBoundedIntegers() {
        var r = SimRandom(seed: 3)
        var sum = 0.0
        for _ in 0..<100_000 {
            let u = r.nextUnit()
            XCTAssertTrue(u >= 0 && u < 1)
            sum += u
        }
        XCTAssertEqual(sum / 100_000, 0.5, accuracy: 0.01)
        var seen = Set<UInt64>()
        for _ in 0..<1_000 {
            let v = r.nextInclusive(4)
            XCTAssertLessThanOrEqual(v, 4)
            seen.insert(v)
        }
        XCTAssertEqual(seen, [0, 1, 2, 3, 4], "both ends of an inclusive range are reachable")
    }

    func testDerivedSeedsAreDistinct() {
        let seeds = (0..<1_000).map { SimRandom.derive(99, UInt64($0)) }
        XCTAssertEqual(Set(seeds).count, seeds.count)
    }
}
