import Bonding
import XCTest
final class ZZProbe: XCTestCase {
    func testProbe() {
        var totals = [String: UInt64]()
        for seed in UInt64(1) ... 150 {
            var rng = Xoshiro256(seed: seed)
            let scenario = ReorderBufferPropertyTests.makeScenario(&rng, lossy: true)
            var config = ReorderBuffer.Configuration()
            config.capacity = [4, 32, 256, 8192][Int(seed % 4)]
            config.readyReserve = 2048
            var buffer = ReorderBuffer(configuration: config)
            buffer.setHoldTime(.milliseconds(UInt64.random(in: 1 ... 900, using: &rng)))
            let out = ReorderBufferPropertyTests.run(scenario, buffer: &buffer, rng: &rng, adaptHold: false)
            let s = buffer.statistics
            totals["delivered"] = totals["delivered", default: 0] + UInt64(out.delivered.count)
            totals["gaps"] = totals["gaps", default: 0] + s.gapsSkipped
            totals["late"] = totals["late", default: 0] + s.lateDropped
            totals["dup"] = totals["dup", default: 0] + s.duplicatesDropped
            totals["cap"] = totals["cap", default: 0] + s.capacityReleases
            totals["exp"] = totals["exp", default: 0] + s.expiryReleases
            totals["decl"] = totals["decl", default: 0] + s.declaredLost
            totals["reinj"] = totals["reinj", default: 0] + s.reinjectedAccepted
            totals["held>0"] = totals["held>0", default: 0] + UInt64(out.delivered.filter { $0.heldFor > .zero }.count)
        }
        print("PROBE", totals.sorted { $0.key < $1.key })
    }
}
