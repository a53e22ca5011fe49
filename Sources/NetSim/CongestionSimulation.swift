// Congestion-control studies in the simulator (issue 5): one or more QUIC connections, each a
// router and a VPS of the real code, send saturating DATAGRAM traffic across links that may be
// shared (a bottleneck). Reports what the controller achieved on the bottleneck: utilisation,
// queueing delay, loss, and per scenario the share against a competing flow, the time to fill a
// long pipe, or the fairness between connections.
import Congestion
import QUIC

/// One connection of a congestion scenario.
public struct CongestionFlow: Sendable {
    public var name: String
    /// Its paths; paths of several flows on the same `bottleneck` share that link.
    public var paths: [PathLinks]
    /// A controller of its own (the competing single-path flow); nil: the run's `--cc`.
    public var congestion: CongestionAlgorithm?
    /// Whether the run's `--coupling` applies (the multipath connection under test).
    public var coupled: Bool
    public init(name: String, paths: [PathLinks], congestion: CongestionAlgorithm? = nil, coupled: Bool = false) {
        self.name = name
        self.paths = paths
        self.congestion = congestion
        self.coupled = coupled
    }
}

public struct CongestionScenario: Sendable {
    public enum Measure: String, Sendable { case utilisation, sharedBottleneck, satellite, fairness }
    public let name: String
    public let summary: String
    public let duration: Duration
    /// Figures are taken from here to the end (after slow start / startup).
    public let warmUp: Duration
    public let flows: [CongestionFlow]
    public let measure: Measure
    /// The competing flow of `shared-bottleneck` runs this loss-based controller when the
    /// controller under test is not loss-based.
    public init(name: String, summary: String, duration: Duration, warmUp: Duration, flows: [CongestionFlow], measure: Measure) {
        self.name = name
        self.summary = summary
        self.duration = duration
        self.warmUp = warmUp
        self.flows = flows
        self.measure = measure
    }

    /// A path whose links (both ways) have `mbps`, the round trip `rttMs` split evenly, a
    /// drop-tail queue of one bandwidth-delay product, and `loss` on the uplink (data direction).
    public static func bottleneckPath(
        mbps: Double, rttMs: UInt64, loss: Double = 0, bottleneck: Int? = nil,
        name: String = ""
    ) -> PathLinks {
        let rate = LinkModel.mbps(mbps)
        let bdp = LinkModel.bandwidthDelayProduct(rate: rate, rtt: .milliseconds(rttMs))
        let oneWay = Duration.milliseconds(rttMs) / 2
        let up = LinkModel(
            rateBitsPerSecond: rate, delay: oneWay, lossProbability: loss, queueCapacityBytes: bdp,
            overheadBytes: LinkModel.ipv4UDPOverhead)
        let down = LinkModel(
            rateBitsPerSecond: rate, delay: oneWay, queueCapacityBytes: bdp,
            overheadBytes: LinkModel.ipv4UDPOverhead)
        return PathLinks(name: name, up: up, down: down, bottleneck: bottleneck)
    }

    public static let all: [CongestionScenario] = [
        CongestionScenario(
            name: "single", summary: "one path, 50 Mbit/s, 40 ms RTT, 1-BDP drop-tail queue",
            duration: .seconds(20), warmUp: .seconds(5),
            flows: [CongestionFlow(name: "flow", paths: [bottleneckPath(mbps: 50, rttMs: 40, name: "link")])],
            measure: .utilisation),
        CongestionScenario(
            name: "lossy", summary: "single, plus 1 % random loss on the data direction",
            duration: .seconds(20), warmUp: .seconds(5),
            flows: [CongestionFlow(name: "flow", paths: [bottleneckPath(mbps: 50, rttMs: 40, loss: 0.01, name: "link")])],
            measure: .utilisation),
        CongestionScenario(
            name: "lossy-3", summary: "single, plus 3 % random loss on the data direction",
            duration: .seconds(20), warmUp: .seconds(5),
            flows: [CongestionFlow(name: "flow", paths: [bottleneckPath(mbps: 50, rttMs: 40, loss: 0.03, name: "link")])],
            measure: .utilisation),
        CongestionScenario(
            name: "satellite", summary: "one path, 50 Mbit/s, 600 ms RTT, 1-BDP queue: time from which it stays at 90 % of the rate",
            duration: .seconds(30), warmUp: .seconds(10),
            flows: [CongestionFlow(name: "flow", paths: [bottleneckPath(mbps: 50, rttMs: 600, name: "satellite")])],
            measure: .satellite),
        CongestionScenario(
            name: "shared-bottleneck",
            summary: "two paths of one connection and one single-path flow cross one 50 Mbit/s 40 ms link, measured from 20 s to 60 s",
            duration: .seconds(60), warmUp: .seconds(20),
            flows: [
                CongestionFlow(
                    name: "multipath",
                    paths: [
                        bottleneckPath(mbps: 50, rttMs: 40, bottleneck: 0, name: "dsl-a"),
                        bottleneckPath(mbps: 50, rttMs: 40, bottleneck: 0, name: "dsl-b"),
                    ],
                    coupled: true),
                CongestionFlow(name: "single", paths: [bottleneckPath(mbps: 50, rttMs: 40, bottleneck: 0, name: "dsl-c")]),
            ],
            measure: .sharedBottleneck),
        CongestionScenario(
            name: "fairness", summary: "two connections, same controller, one 50 Mbit/s 40 ms link, measured from 20 s to 60 s",
            duration: .seconds(60), warmUp: .seconds(20),
            flows: [
                CongestionFlow(name: "first", paths: [bottleneckPath(mbps: 50, rttMs: 40, bottleneck: 0, name: "link")]),
                CongestionFlow(name: "second", paths: [bottleneckPath(mbps: 50, rttMs: 40, bottleneck: 0, name: "link")]),
            ],
            measure: .fairness),
    ]

    public static func named(_ name: String) -> CongestionScenario? { all.first { $0.name == name } }
}

public struct CongestionRunConfiguration {
    public var scenario: CongestionScenario
    public var congestion: CongestionAlgorithm
    public var coupling: CouplingAlgorithm = .none
    public var seed: UInt64 = 1
    /// `--trace`: every this often, one line per path of each connection to `traceWriter`.
    public var traceInterval: Duration?
    public var traceWriter: (String) -> Void = { print($0) }
    public init(scenario: CongestionScenario, congestion: CongestionAlgorithm) {
        self.scenario = scenario
        self.congestion = congestion
    }
}

public struct CongestionRunResult: Sendable {
    public var scenario: String
    public var congestion: String
    public var coupling: String
    public var seed: UInt64
    /// Fraction of the measurement window the (first) bottleneck's data direction was busy.
    public var utilisation: Double
    public var goodputMbps: Double
    public var queueDelayP50Ms: Double
    public var queueDelayP99Ms: Double
    /// Packets the bottleneck's data direction dropped (queue and random loss) / offered.
    public var lossRate: Double
    public var shareVsSingle: Double?
    public var timeTo90PercentS: Double?
    public var jainIndex: Double?
    public var flows: [(name: String, goodputMbps: Double, congestion: String)]

    public var json: String {
        func n(_ x: Double?) -> String { x.map { $0.isFinite ? format3($0) : "null" } ?? "null" }
        let f = flows.map { "{\"name\":\"\($0.name)\",\"goodput_mbps\":\(n($0.goodputMbps)),\"congestion\":\"\($0.congestion)\"}" }
        var extra = ""
        if let s = shareVsSingle { extra += ",\"share_vs_single\":\(n(s))" }
        if let t = timeTo90PercentS {
            extra += ",\"time_to_90pct_s\":\(n(t))"
        } else if scenario == "satellite" {
            extra += ",\"time_to_90pct_s\":null"
        }
        if let j = jainIndex { extra += ",\"jain_index\":\(n(j))" }
        return "{\"scenario\":\"\(scenario)\",\"congestion\":\"\(congestion)\",\"coupling\":\"\(coupling)\",\"seed\":\(seed),"
            + "\"utilisation\":\(n(utilisation)),\"goodput_mbps\":\(n(goodputMbps)),"
            + "\"queue_delay_p50_ms\":\(n(queueDelayP50Ms)),\"queue_delay_p99_ms\":\(n(queueDelayP99Ms)),"
            + "\"loss_rate\":\(n(lossRate))\(extra),\"flows\":[\(f.joined(separator: ","))]}"
    }
}

/// Runs one congestion scenario with one controller.
public func runCongestion(_ config: CongestionRunConfiguration) throws -> CongestionRunResult {
    let scenario = config.scenario
    var members: [(endpoint: any SimulatedEndpoint, paths: [Int])] = []
    var vpsMembers: [(endpoint: any SimulatedEndpoint, paths: [Int])] = []
    var allPaths: [PathLinks] = []
    var routers: [SimulatedRouter] = []
    var servers: [SimulatedVPS] = []
    var algorithms: [CongestionAlgorithm] = []
    for (i, flow) in scenario.flows.enumerated() {
        var q = SimulatedQUICConfiguration()
        q.seed = config.seed &+ UInt64(i) &* 7919
        // The competing flow of a shared bottleneck is loss-based: with a model-based controller
        // under test it runs CUBIC.
        var algorithm = flow.congestion ?? config.congestion
        if scenario.measure == .sharedBottleneck && !flow.coupled && !config.congestion.isLossBased { algorithm = .cubic }
        if scenario.measure == .sharedBottleneck && !flow.coupled && config.congestion.isLossBased { algorithm = config.congestion }
        q.congestion = algorithm
        q.coupling = flow.coupled ? config.coupling : .none
        algorithms.append(algorithm)
        let router = try SimulatedRouter(pathCount: flow.paths.count, configuration: q, now: .zero)
        let vps = try SimulatedVPS(pathCount: flow.paths.count, configuration: q)
        let indices = Array(allPaths.count..<(allPaths.count + flow.paths.count))
        allPaths += flow.paths
        members.append((router, indices))
        vpsMembers.append((vps, indices))
        routers.append(router)
        servers.append(vps)
    }
    let sim = Simulator(
        topology: Topology(
            router: SimulatedEndpointGroup(members), vps: SimulatedEndpointGroup(vpsMembers),
            paths: allPaths), seed: config.seed)
    let measureFrom = Timestamp.zero + scenario.warmUp
    let end = Timestamp.zero + scenario.duration
    var received = [Int](repeating: 0, count: routers.count)
    // Saturating sources: each router keeps its connection's datagram queue topped up.
    for (i, router) in routers.enumerated() {
        router.onEvent = { _ in
            let c = router.connection
            guard c.handshakeConfirmed else { return }
            let size = min(1200, c.maxDatagramPayloadSize)
            while c.queuedDatagrams < 32 {
                guard (try? c.sendDatagram([UInt8](repeating: UInt8(truncatingIfNeeded: i), count: size))) != nil else { break }
            }
        }
        let vps = servers[i]
        vps.onEvent = { now in
            guard let c = vps.connection else { return }
            while let e = c.pollEvent() {
                if case .datagramReceived(let d) = e, now >= measureFrom { received[i] += d.count }
            }
        }
    }
    if let interval = config.traceInterval {
        for (i, router) in routers.enumerated() {
            schedulePathTrace(
                on: sim, router: router, label: scenario.flows[i].name,
                names: scenario.flows[i].paths.enumerated().map { $1.name.isEmpty ? "path\($0)" : $1.name },
                interval: interval, until: end, write: config.traceWriter)
        }
    }
    try sim.run(until: end)

    let bottleneck = sim.paths[0].up
    let window = (end - measureFrom).seconds
    let stats = bottleneck.statistics
    let goodputs = received.map { Double($0) * 8 / window / 1e6 }
    var result = CongestionRunResult(
        scenario: scenario.name, congestion: config.congestion.rawValue, coupling: config.coupling.rawValue, seed: config.seed,
        utilisation: stats.utilisation(from: measureFrom, to: end), goodputMbps: goodputs.reduce(0, +),
        queueDelayP50Ms: stats.queueingDelay.quantile(0.5).milliseconds,
        queueDelayP99Ms: stats.queueingDelay.quantile(0.99).milliseconds,
        lossRate: stats.offered.packets == 0 ? 0 : Double(stats.droppedTotal.packets) / Double(stats.offered.packets),
        flows: zip(scenario.flows, zip(goodputs, algorithms)).map { ($0.name, $1.0, $1.1.rawValue) })
    switch scenario.measure {
    case .utilisation: break
    case .sharedBottleneck:
        result.shareVsSingle = goodputs[1] > 0 ? goodputs[0] / goodputs[1] : .infinity
    case .fairness:
        let sum = goodputs.reduce(0, +)
        let squares = goodputs.reduce(0) { $0 + $1 * $1 }
        result.jainIndex = squares > 0 ? sum * sum / (Double(goodputs.count) * squares) : 0
    case .satellite:
        // The time from which the link stays busy at least 90 % of every following second (a
        // slow-start overshoot that fills the pipe once and then collapses does not count).
        let step = Duration.milliseconds(100)
        let span = Duration.seconds(1)
        var t = end - span
        var since: Timestamp?
        while true {
            guard stats.utilisation(from: t, to: t + span) >= 0.9 else { break }
            since = t
            guard t.nanoseconds >= step.nanoseconds else { break }
            t = t - step
        }
        result.timeTo90PercentS = since.map { ($0 - .zero).seconds }
    }
    return result
}
