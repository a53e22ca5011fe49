// The link syntax shared by tquic-sim, tquic-netem and the lab: what each option means in the
// LinkModel, the defaults, the canonical form, and the error a user sees for each mistake.
import Congestion
import NetSim
import XCTest

final class LinkSpecificationTests: XCTestCase {
    func parse(_ text: String) throws -> LinkSpecification { try LinkSpecification(parsing: text) }

    func error(_ text: String, option: String = "--link") -> String {
        do {
            _ = try LinkSpecification(parsing: text, option: option)
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    // MARK: Rate and delay

    func testFibreIs100MbitWithOneWayDelayAndTheDefaultQueueOfOneRoundTrip() throws {
        let spec = try parse("fibre=100mbit,10ms")
        XCTAssertEqual(spec.name, "fibre")
        XCTAssertEqual(spec.model.rateBitsPerSecond, 100_000_000)
        XCTAssertEqual(spec.model.delay, .milliseconds(10), "DELAY is one-way, as LinkModel.delay")
        XCTAssertEqual(spec.model.queueCapacityBytes, 250_000, "one BDP of 2 × 10 ms at 100 Mbit/s")
        XCTAssertEqual(spec.model.overheadBytes, 0)
        XCTAssertEqual(spec.model.jitter, .none)
        XCTAssertEqual(spec.model.lossProbability, 0)
        XCTAssertNil(spec.model.burstLoss)
    }

    func testUnitsAreDecimalAsInTcAndCaseInsensitive() throws {
        XCTAssertEqual(try parse("a=1.5Mbit,0").model.rateBitsPerSecond, 1_500_000)
        XCTAssertEqual(try parse("a=64kbit,0").model.rateBitsPerSecond, 64_000)
        XCTAssertEqual(try parse("a=1gbit,0").model.rateBitsPerSecond, 1_000_000_000)
        XCTAssertEqual(try parse("a=9600bit,0").model.rateBitsPerSecond, 9600)
        XCTAssertEqual(try parse("a=unlimited,0").model.rateBitsPerSecond, 0)
        XCTAssertEqual(try parse("a=1mbit,250us").model.delay, .microseconds(250))
        XCTAssertEqual(try parse("a=1mbit,0.3s").model.delay, .milliseconds(300))
        XCTAssertEqual(try parse("a=1mbit,7.5ms").model.delay, .microseconds(7_500))
    }

    func testTheDefaultQueueHoldsAtLeastTenFullPacketsAndIsUnboundedWithoutARate() throws {
        XCTAssertEqual(try parse("a=1mbit,1ms").model.queueCapacityBytes, 15_000)
        XCTAssertNil(try parse("a=unlimited,1ms").model.queueCapacityBytes)
    }

    func testTheNameIsOptional() throws {
        let spec = try parse("30mbit,40ms")
        XCTAssertNil(spec.name)
        XCTAssertEqual(spec.model.rateBitsPerSecond, 30_000_000)
    }

    // MARK: Options

    func testLteWithJitterLossAndQueue() throws {
        let m = try parse("lte=30mbit,40ms,jitter=15ms,loss=1%,queue=50ms").model
        XCTAssertEqual(m.jitter, Jitter(amplitude: .milliseconds(15)), "uniform ±15 ms, order kept, a draw per packet")
        XCTAssertEqual(m.lossProbability, 0.01, accuracy: 1e-12)
        XCTAssertEqual(m.queueCapacityBytes, 187_500, "50 ms at 30 Mbit/s")
    }

    func testJitterModifiers() throws {
        let m = try parse("a=10mbit,20ms,jitter=5ms,jitter-hold=10ms,jitter-dist=positive,reorder").model
        XCTAssertEqual(
            m.jitter,
            Jitter(
                amplitude: .milliseconds(5), distribution: .positive, ordering: .reordering,
                holdTime: .milliseconds(10)))
    }

    func testQueueUnits() throws {
        XCTAssertEqual(try parse("a=10mbit,0,queue=65536").model.queueCapacityBytes, 65_536)
        XCTAssertEqual(try parse("a=10mbit,0,queue=64kb").model.queueCapacityBytes, 64_000)
        XCTAssertEqual(try parse("a=10mbit,0,queue=64KiB").model.queueCapacityBytes, 65_536)
        XCTAssertEqual(try parse("a=10mbit,0,queue=1mib").model.queueCapacityBytes, 1_048_576)
        XCTAssertEqual(try parse("a=10mbit,0,queue=40pkt").model.queueCapacityBytes, 60_000)
        XCTAssertEqual(try parse("a=10mbit,0,queue=0").model.queueCapacityBytes, 0)
        XCTAssertNil(try parse("a=10mbit,0,queue=unlimited").model.queueCapacityBytes)
    }

    func testBurstGivesAGilbertModelWithThatMeanLossAndBurstLength() throws {
        let ge = try XCTUnwrap(try parse("a=10mbit,0,burst=2%:5").model.burstLoss)
        XCTAssertEqual(ge.meanLossRate, 0.02, accuracy: 1e-12)
        XCTAssertEqual(ge.meanBadRunLength, 5, accuracy: 1e-12)
        XCTAssertEqual(ge.lossInBad, 1)
        XCTAssertEqual(ge.lossInGood, 0)
    }

    func testGeGivesTheFourGilbertElliottParameters() throws {
        XCTAssertEqual(try parse("a=10mbit,0,ge=1%/30%").model.burstLoss, GilbertElliott(goodToBad: 0.01, badToGood: 0.3))
        XCTAssertEqual(
            try parse("a=10mbit,0,ge=1%/30%/50%/0.5%").model.burstLoss,
            GilbertElliott(goodToBad: 0.01, badToGood: 0.3, lossInBad: 0.5, lossInGood: 0.005))
    }

    func testOutagesAndRateChangesAreRepeatableAndCountFromTheStart() throws {
        let m = try parse("lte=50mbit,20ms,outage=5s-10s,outage=20s-,rate@3s=5mbit,rate@1500ms=20mbit").model
        XCTAssertEqual(m.outages, [Outage(from: .zero + .seconds(5), to: .zero + .seconds(10)), Outage(from: .zero + .seconds(20))])
        XCTAssertEqual(
            m.rateChanges,
            [
                RateChange(at: .zero + .milliseconds(1500), rateBitsPerSecond: 20_000_000),
                RateChange(at: .zero + .seconds(3), rateBitsPerSecond: 5_000_000),
            ])
        XCTAssertTrue(m.isUp(at: .zero + .seconds(4)))
        XCTAssertFalse(m.isUp(at: .zero + .seconds(5)))
        XCTAssertFalse(m.isUp(at: .zero + .seconds(100)))
    }

    func testCorruptEcnOverheadAndBackup() throws {
        let spec = try parse("sat=50mbit,300ms,corrupt=0.1%,ecn=5ms,overhead=8,backup")
        XCTAssertEqual(spec.model.corruptionProbability, 0.001, accuracy: 1e-12)
        XCTAssertEqual(spec.model.ecnMarkingThreshold, .milliseconds(5))
        XCTAssertEqual(spec.model.overheadBytes, 8)
        XCTAssertTrue(spec.isBackup)
        XCTAssertEqual(
            spec.model(perPacketOverhead: LinkModel.ipv4UDPOverhead).overheadBytes, 36,
            "the simulator adds the IPv4 + UDP header its datagrams lack")
    }

    // MARK: Canonical form

    func testTheCanonicalFormParsesBackToTheSameModel() throws {
        for text in [
            "fibre=100mbit,5ms", "lte=30mbit,20ms,jitter=7500us,jitter-hold=10ms,loss=1%,queue=187500b",
            "x=1.5mbit,0,jitter=1ms,jitter-dist=positive,reorder,ge=1%/30%/50%,corrupt=0.5%,outage=1s-2s,outage=3s-,rate@2s=unlimited,ecn=2ms,overhead=4,backup",
            "unlimited,0",
        ] {
            let spec = try parse(text)
            let again = try parse(spec.description)
            XCTAssertEqual(again, spec, "\(text) → \(spec.description)")
        }
        XCTAssertEqual(
            try parse("lte=30mbit,40ms,jitter=15ms,loss=1%").description,
            "lte=30mbit,40ms,jitter=15ms,loss=1%,queue=300000b")
    }

    // MARK: Errors a user sees

    func testAMisspelledOptionNamesTheLinkTheKnownOptionsAndTheLikelyOne() {
        XCTAssertEqual(
            error("lte=30mbit,40ms,jiter=15ms"),
            "--link lte: `jiter` is not a link option (known: jitter, jitter-hold, jitter-dist, reorder, loss, burst, ge, queue, corrupt, outage, rate@T, ecn, overhead, backup); did you mean `jitter`?"
        )
    }

    func testMissingDelay() {
        XCTAssertEqual(
            error("lte=30mbit"), "--link lte: `lte=30mbit` needs [NAME=]RATE,DELAY[,OPTION...], e.g. lte=30mbit,40ms,jitter=15ms,loss=1%")
        XCTAssertEqual(
            error("lte=30mbit,loss=1%"),
            "--link lte: `lte=30mbit,loss=1%` needs [NAME=]RATE,DELAY[,OPTION...], e.g. lte=30mbit,40ms,jitter=15ms,loss=1%")
    }

    func testBadValues() {
        XCTAssertEqual(error("a=30mbps,1ms"), "--link a: rate `30mbps` is ambiguous (tc reads mbps as bytes per second): write 30mbit")
        XCTAssertEqual(error("a=30,1ms"), "--link a: rate `30`: a number and one of bit, kbit, mbit, gbit (×1000 steps), or unlimited")
        XCTAssertEqual(error("a=0mbit,1ms"), "--link a: rate `0mbit` is out of range (1bit to 1000000gbit; `unlimited` for no limit)")
        XCTAssertEqual(error("a=1mbit,10"), "--link a: delay `10`: a number and one of ns, us, ms, s (e.g. 40ms)")
        XCTAssertEqual(error("a=1mbit,-5ms"), "--link a: delay `-5ms`: a number and one of ns, us, ms, s (e.g. 40ms)")
        XCTAssertEqual(error("a=1mbit,1ms,loss=0.01"), "--link a: loss=0.01: a percentage from 0% to 100% (e.g. loss=1%)")
        XCTAssertEqual(error("a=1mbit,1ms,loss=120%"), "--link a: loss=120%: a percentage from 0% to 100% (e.g. loss=1%)")
        XCTAssertEqual(error("a=1mbit,1ms,outage=10s-5s"), "--link a: outage=10s-5s ends before it starts")
        XCTAssertEqual(error("a=1mbit,1ms,outage=5s"), "--link a: outage=5s: FROM-TO or FROM- (for good), e.g. outage=5s-10s")
        XCTAssertEqual(
            error("a=1mbit,1ms,burst=2%"),
            "--link a: burst=2%: MEAN_LOSS%:MEAN_BURST_PACKETS, e.g. burst=2%:5 (loss below 100%, length at least 1)")
        XCTAssertEqual(
            error("a=1mbit,1ms,queue=lots"),
            "--link a: queue=lots: bytes (65536, 64kb, 1mib), packets (40pkt), a time at the initial rate (50ms), or unlimited")
        XCTAssertEqual(error("a=unlimited,1ms,queue=5ms"), "--link a: queue=5ms: a queue in time needs a rate (this link is unlimited)")
        XCTAssertEqual(error("a=1mbit,1ms,rate@x=2mbit"), "--link a: rate change time `x`: a number and one of ns, us, ms, s (e.g. 40ms)")
        XCTAssertEqual(error("a=1mbit,1ms,jitter-dist=normal"), "--link a: jitter-dist=normal: known: symmetric, positive")
    }

    func testStructuralMistakes() {
        XCTAssertEqual(error("a=1mbit,1ms,loss=1%,loss=2%"), "--link a: `loss` is given twice")
        XCTAssertEqual(error("a=1mbit,1ms,loss"), "--link a: `loss` needs a value (loss=...)")
        XCTAssertEqual(error("a=1mbit,1ms,reorder=yes"), "--link a: `reorder` takes no value")
        XCTAssertEqual(error("a=1mbit,1ms,reorder"), "--link a: jitter-hold, jitter-dist and reorder need jitter=D")
        XCTAssertEqual(error("a=1mbit,1ms,burst=1%:3,ge=1%/30%"), "--link a: `burst` and `ge` both set the burst-loss model: give one")
        XCTAssertEqual(error("a=1mbit,1ms,,loss=1%"), "--link a: empty option (two commas in a row, or one at the end)")
        XCTAssertEqual(error("my link=1mbit,1ms"), "--link my link: `my link` is not a link name (1 to 32 of A-Z a-z 0-9 _ . -)")
        XCTAssertEqual(
            error("1mbit,1ms,jiter=1ms", option: "--link-back"),
            "--link-back: `jiter` is not a link option (known: jitter, jitter-hold, jitter-dist, reorder, loss, burst, ge, queue, corrupt, outage, rate@T, ecn, overhead, backup); did you mean `jitter`?"
        )
    }

    // MARK: Scenarios from links (tquic-sim --link)

    func testLinksMakeAScenarioWhosePathsCountIPBytesLikeTheEmulator() throws {
        let s = try Scenario.fromLinks(
            [parse("fibre=100mbit,5ms"), parse("lte=30mbit,20ms,loss=1%,outage=5s-8s")],
            back: [parse("lte=10mbit,20ms")])
        XCTAssertEqual(s.paths.map(\.name), ["fibre", "lte"])
        XCTAssertEqual(s.paths[0].up.overheadBytes, LinkModel.ipv4UDPOverhead)
        XCTAssertEqual(s.paths[0].up, s.paths[0].down, "without --link-back both directions are the same")
        XCTAssertEqual(s.paths[1].up.rateBitsPerSecond, 30_000_000)
        XCTAssertEqual(s.paths[1].down.rateBitsPerSecond, 10_000_000, "--link-back lte gives the VPS → router direction")
        XCTAssertEqual(s.paths[1].up.outages.count, 1, "the outage is in the up model once, not added again")
        XCTAssertTrue(s.paths[1].down.outages.isEmpty, "--link-back has no outage")
        XCTAssertEqual(s.events, [.outage(path: 1, Outage(from: .zero + .seconds(5), to: .zero + .seconds(8)))])
        XCTAssertEqual(s.duration, .seconds(13), "5 s past the end of the last outage")
        XCTAssertEqual(s.nominalSumLinkMbps, 130)
    }

    func testLinkNamesMustBeUniqueAndLinkBackMustMatchOne() throws {
        XCTAssertThrowsError(try Scenario.fromLinks([parse("a=1mbit,1ms"), parse("a=2mbit,1ms")])) {
            XCTAssertEqual("\($0)", "--link a: two links have this name")
        }
        XCTAssertThrowsError(try Scenario.fromLinks([parse("a=1mbit,1ms")], back: [parse("b=1mbit,1ms")])) {
            XCTAssertEqual("\($0)", "--link-back b: no --link has this name (links: a)")
        }
        XCTAssertEqual(try Scenario.fromLinks([parse("1mbit,1ms"), parse("2mbit,1ms")]).paths.map(\.name), ["path0", "path1"])
    }

    func testASimulatedLinkFromASpecificationCorruptsOneByteOfTheDatagrams() throws {
        let spec = try parse("a=10mbit,1ms,corrupt=50%")
        let link = Link(model: spec.model(perPacketOverhead: 28), seed: 7)
        var corrupted = 0
        for i in 0..<1000 {
            guard case .accepted = link.offer(bytes: 100, at: ms(UInt64(i))) else { return XCTFail("dropped") }
            if let index = link.lastCorruptedByte {
                XCTAssertTrue((0..<100).contains(index))
                corrupted += 1
            }
        }
        XCTAssertEqual(link.statistics.corrupted, corrupted)
        XCTAssertEqual(Double(corrupted), 500, accuracy: 60, "about half of 1000")
    }
}
