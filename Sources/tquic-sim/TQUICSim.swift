// tquic-sim: runs the real router and VPS code (multipath QUIC + bonding) over simulated WAN
// links and prints what a user would measure: goodput against the links' summed rates, reorder
// hold times, reinjection, delivery gaps. Deterministic for a given seed.
import ArgumentParser
import Bonding
import Congestion
import NetSim

#if canImport(Glibc)
    import Glibc
#endif

func writeToStandardError(_ line: String) {
    fputs(line + "\n", stderr)
}

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
    @Option(help: "Congestion controller: \(CongestionAlgorithm.allCases.map(\.rawValue).joined(separator: ", ")).")
    var cc: String = "bbr"
    @Option(help: "Coupling across a connection's paths: none, lia, olia, balia.") var coupling: String = "none"
    @Option(help: "Bulk source of a bonding scenario: saturating, rate:MBPS (constant rate) or tcp (an inner TCP-like flow).")
    var source: String = "saturating"
    @Flag(help: "Run every congestion scenario with every controller and print a Markdown table.") var ccTable = false
    @Option(help: "Every SECONDS of simulated time, print each path's window, RTT, rate and losses to standard error.")
    var trace: Double?
    @Option(
        name: .customLong("link"), parsing: .singleValue,
        help: ArgumentHelp(
            "A path instead of --scenario, repeatable: NAME=RATE,DELAY[,OPTION...] with one-way DELAY (docs/link-syntax.md), e.g. lte=30mbit,20ms,jitter=7ms,loss=1%.",
            valueName: "spec"))
    var links: [String] = []
    @Option(
        name: .customLong("link-back"), parsing: .singleValue,
        help: ArgumentHelp("The VPS → router direction of the --link of the same NAME (default: the same as --link).", valueName: "spec"))
    var linksBack: [String] = []
    @Flag(
        help:
            "Print the links of --scenario (or of --link) in the link syntax and exit: one line per path, NAME TAB UPLINK TAB DOWNLINK, what the lab's --profile gives tquic-netem."
    )
    var printLinks = false
    @Option(help: "Seconds to simulate with --link (default 10, or 5 past the last outage or rate change).")
    var duration: Double?
    @Option(
        help: ArgumentHelp(
            "Also send a 64-byte interactive packet every MS milliseconds, as the lab's UDP probe, and print its longest gap (a failover as a ping sees it).",
            valueName: "ms"))
    var probe: Double?

    func run() throws {
        guard let algorithm = CongestionAlgorithm(rawValue: cc) else { throw ValidationError("unknown congestion controller \(cc)") }
        guard let couplingAlgorithm = CouplingAlgorithm(rawValue: coupling) else { throw ValidationError("unknown coupling \(coupling)") }
        if list {
            for s in Scenario.all { print("\(s.name): \(s.summary)") }
            for s in CongestionScenario.all { print("\(s.name): \(s.summary) (congestion study)") }
            return
        }
        if printLinks {
            // The scenario's models count UDP payloads plus 28 bytes; the link syntax counts IP packets.
            for p in try chosenScenario().paths {
                let up = LinkSpecification(name: p.name, model: p.up.withoutOverhead(LinkModel.ipv4UDPOverhead), isBackup: p.isBackup)
                let down = LinkSpecification(name: p.name, model: p.down.withoutOverhead(LinkModel.ipv4UDPOverhead), isBackup: p.isBackup)
                print("\(p.name)\t\(up)\t\(down)")
            }
            return
        }
        if ccTable {
            try printCongestionTable()
            print("")
            try printCouplingTable()
            return
        }
        if let s = CongestionScenario.named(scenario) {
            var config = CongestionRunConfiguration(scenario: s, congestion: algorithm)
            config.coupling = couplingAlgorithm
            config.seed = seed
            config.traceInterval = try traceInterval()
            config.traceWriter = writeToStandardError
            let r = try runCongestion(config)
            if json {
                print(r.json)
                return
            }
            print("scenario \(r.scenario), congestion \(r.congestion), coupling \(r.coupling), seed \(r.seed)")
            print(
                "bottleneck utilisation \(format(r.utilisation * 100)) %, goodput \(format(r.goodputMbps)) Mbit/s, loss \(format(r.lossRate * 100)) %"
            )
            print("queueing delay p50 \(format(r.queueDelayP50Ms)) ms, p99 \(format(r.queueDelayP99Ms)) ms")
            for f in r.flows { print("  flow \(f.name) (\(f.congestion)): \(format(f.goodputMbps)) Mbit/s") }
            if let x = r.shareVsSingle { print("multipath / single-path throughput: \(format(x * 100)) %") }
            if let x = r.jainIndex { print("Jain's fairness index: \(x)") }
            if r.scenario == "satellite" {
                print("time to 90 % of the rate: \(r.timeTo90PercentS.map { format($0) + " s" } ?? "not reached")")
            }
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
        let s = try chosenScenario()
        guard let k = SchedulerKind(rawValue: scheduler) else { throw ValidationError("unknown scheduler \(scheduler)") }
        var config = TunnelRunConfiguration(scenario: s, scheduler: k)
        config.seed = seed
        config.congestion = algorithm
        config.coupling = couplingAlgorithm
        guard let bulkSource = TunnelSource(argument: source) else { throw ValidationError("unknown --source \(source)") }
        config.source = bulkSource
        if let probe {
            guard probe >= 0.1 else { throw ValidationError("--probe \(probe): the interval must be at least 0.1 ms") }
            config.probe = (interval: Duration(nanoseconds: UInt64(probe * 1e6)), size: 64)
        }
        config.traceInterval = try traceInterval()
        config.traceWriter = writeToStandardError
        let r = try runTunnel(config)
        if json {
            print(r.json)
            return
        }
        if !links.isEmpty {
            for p in s.paths {
                print(
                    "link \(p.name): up \(LinkSpecification(name: nil, model: p.up.withoutOverhead(LinkModel.ipv4UDPOverhead)))"
                        + ", down \(LinkSpecification(name: nil, model: p.down.withoutOverhead(LinkModel.ipv4UDPOverhead)))")
            }
        }
        print(
            "scenario \(r.scenario), scheduler \(r.scheduler), source \(r.source) (offered \(format(r.offeredMbps)) Mbit/s), seed \(r.seed)"
        )
        print(
            "goodput \(format(r.goodputMbps)) Mbit/s of \(format(r.sumLinkMbps)) Mbit/s summed link rates (\(format(r.goodputFraction * 100)) %)"
        )
        for p in r.paths {
            print(
                "  path \(p.name): \(format(p.goodputMbps)) Mbit/s, share \(format(p.share * 100)) %, rtt \(format(p.rttMs)) ms, uplink drops \(p.uplinkDrops)"
            )
        }
        print("reorder hold p50 \(format(r.reorderHoldP50Ms)) ms, p99 \(format(r.reorderHoldP99Ms)) ms")
        print("reinjected \(r.reinjected), duplicates dropped \(r.duplicatesDropped), lost after handoff \(r.lostAfterHandoff)")
        print(
            "lost among packets handed in the 500 ms before an outage: \(r.lostHandedBeforeOutage); backup share while a main path is up: \(format(r.backupShareWhileMainUp * 100)) %"
        )
        print("longest delivery gap \(format(r.maxDeliveryGapMs)) ms, queueing delay p99 \(format(r.queueDelayP99Ms)) ms")
        print(r.diagnostics)
        for f in r.flows {
            print(
                "  flow \(f.name): one-way delay p50 \(format(f.delayP50Ms)) ms, p99 \(format(f.delayP99Ms)) ms, longest gap \(format(f.maxGapMs)) ms"
            )
        }
    }

    /// Controller × congestion scenario: utilisation, p50 queueing delay, loss (and the
    /// scenario's own figure).
    func printCongestionTable() throws {
        let scenarios = CongestionScenario.all
        print("| controller | " + scenarios.map(\.name).joined(separator: " | ") + " |")
        print("|---" + String(repeating: "|---", count: scenarios.count) + "|")
        for a in CongestionAlgorithm.allCases {
            var cells: [String] = []
            for s in scenarios {
                let config = CongestionRunConfiguration(scenario: s, congestion: a)
                let r = try runCongestion(config)
                var cell = "\(Int((r.utilisation * 100).rounded())) %, \(format(r.queueDelayP50Ms)) ms, \(format(r.lossRate * 100)) % loss"
                if let x = r.shareVsSingle { cell += ", share \(format(x))" }
                if let x = r.jainIndex { cell += ", Jain \(format3(x))" }
                if s.measure == .satellite { cell += ", 90 % at " + (r.timeTo90PercentS.map { format($0) + " s" } ?? "never") }
                cells.append(cell)
            }
            print("| \(a.rawValue) | " + cells.joined(separator: " | ") + " |")
        }
    }

    /// Loss-based controller × coupling: share against a single flow on a shared bottleneck,
    /// and the bonded goodput on disjoint paths (RFC 6356's two goals).
    func printCouplingTable() throws {
        print("| controller | coupling | shared-bottleneck: multipath / single | fibre-satellite goodput | mptcp-15-5 goodput |")
        print("|---|---|---|---|---|")
        for a in CongestionAlgorithm.allCases where a.isLossBased {
            for c in CouplingAlgorithm.allCases {
                var config = CongestionRunConfiguration(scenario: CongestionScenario.named("shared-bottleneck")!, congestion: a)
                config.coupling = c
                let shared = try runCongestion(config)
                var cells = ["\(format3(shared.shareVsSingle ?? .nan))"]
                for name in ["fibre-satellite", "mptcp-15-5"] {
                    var t = TunnelRunConfiguration(scenario: Scenario.named(name)!, scheduler: .aggregate)
                    t.congestion = a
                    t.coupling = c
                    let r = try runTunnel(t)
                    cells.append("\(Int((r.goodputFraction * 100).rounded())) %")
                }
                print("| \(a.rawValue) | \(c.rawValue) | " + cells.joined(separator: " | ") + " |")
            }
        }
    }

    /// The scenario of --link (and --link-back), or the named --scenario.
    func chosenScenario() throws -> Scenario {
        guard !links.isEmpty else {
            guard linksBack.isEmpty else { throw ValidationError("--link-back needs --link") }
            guard let s = Scenario.named(scenario) else { throw ValidationError("unknown scenario \(scenario); try --list") }
            return s
        }
        do {
            let up = try links.map { try LinkSpecification(parsing: $0, option: "--link") }
            let back = try linksBack.map { try LinkSpecification(parsing: $0, option: "--link-back") }
            if let duration, !(duration >= 0.1 && duration.isFinite) { throw ValidationError("--duration needs at least 0.1 s") }
            return try Scenario.fromLinks(up, back: back, duration: duration.map { Congestion.Duration.seconds($0) })
        } catch let error as LinkSpecificationError {
            throw ValidationError(error.description)
        }
    }

    func traceInterval() throws -> Congestion.Duration? {
        guard let trace else { return nil }
        guard trace >= 0.001, trace.isFinite else { throw ValidationError("--trace needs an interval of at least 0.001 s") }
        return Congestion.Duration.seconds(trace)
    }

    func format3(_ x: Double) -> String { "\((x * 1000).rounded() / 1000)" }

    func format(_ x: Double) -> String {
        let v = (x * 10).rounded() / 10
        return "\(v)"
    }
}
