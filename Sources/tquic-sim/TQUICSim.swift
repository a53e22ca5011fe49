// tquic-sim: runs the real router and VPS code (multipath QUIC + bonding) over simulated WAN
// links and prints what a user would measure: goodput against the links' summed rates, reorder
// hold times, reinjection, delivery gaps. Deterministic for a given seed.
import ArgumentParser
import Bonding
import Congestion
import NetSim

@main
struct TQUICSim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tquic-sim", abstract: "Bonding scheduler x scenario simulation (deterministic).")

    @Option(help: "Scenario name (see --list).") var scenario: String = "equal"
    @Option(help: "Scheduler: aggregate, minrtt, roundrobin, weighted, blest, ecf, redundant.") var scheduler: String = "aggregate"
    @Option(help: "Random seed.") var seed: UInt64 = 1
    @Flag(help: "Print one JSON object.") var json = false
    @Flag(help: "List the scenarios and exit.") var list = false
    @Flag(help: "Run every scenario with every scheduler and print a Markdown table.") var table = false

    func run() throws {
        if list {
            for s in Scenario.all { print("\(s.name): \(s.summary)") }
            return
        }
        if table {
            print("| scenario | " + SchedulerKind.allCases.map(\.rawValue).joined(separator: " | ") + " |")
            print("|---" + String(repeating: "|---", count: SchedulerKind.allCases.count) + "|")
            for s in Scenario.all {
                var cells: [String] = []
                for k in SchedulerKind.allCases {
                    let r = try runTunnel(TunnelRunConfiguration(scenario: s, scheduler: k))
                    cells.append("\(Int((r.goodputFraction * 100).rounded())) % (\(Int(r.goodputMbps.rounded())) Mbit/s)")
                }
                print("| \(s.name) | " + cells.joined(separator: " | ") + " |")
            }
            return
        }
        guard let s = Scenario.named(scenario) else { throw ValidationError("unknown scenario \(scenario); try --list") }
        guard let k = SchedulerKind(rawValue: scheduler) else { throw ValidationError("unknown scheduler \(scheduler)") }
        var config = TunnelRunConfiguration(scenario: s, scheduler: k)
        config.seed = seed
        let r = try runTunnel(config)
        if json {
            print(r.json)
            return
        }
        print("scenario \(r.scenario), scheduler \(r.scheduler), seed \(r.seed)")
        print("goodput \(format(r.goodputMbps)) Mbit/s of \(format(r.sumLinkMbps)) Mbit/s summed link rates (\(format(r.goodputFraction * 100)) %)")
        for p in r.paths {
            print("  path \(p.name): \(format(p.goodputMbps)) Mbit/s, share \(format(p.share * 100)) %, rtt \(format(p.rttMs)) ms, uplink drops \(p.uplinkDrops)")
        }
        print("reorder hold p50 \(format(r.reorderHoldP50Ms)) ms, p99 \(format(r.reorderHoldP99Ms)) ms")
        print("reinjected \(r.reinjected), duplicates dropped \(r.duplicatesDropped), lost after handoff \(r.lostAfterHandoff)")
        print("lost among packets handed in the 500 ms before an outage: \(r.lostHandedBeforeOutage); backup share while a main path is up: \(format(r.backupShareWhileMainUp * 100)) %")
        print("longest delivery gap \(format(r.maxDeliveryGapMs)) ms, queueing delay p99 \(format(r.queueDelayP99Ms)) ms")
        print(r.diagnostics)
        for f in r.flows { print("  flow \(f.name): one-way delay p50 \(format(f.delayP50Ms)) ms, p99 \(format(f.delayP99Ms)) ms") }
    }

    func format(_ x: Double) -> String {
        let v = (x * 10).rounded() / 10
        return "\(v)"
    }
}
