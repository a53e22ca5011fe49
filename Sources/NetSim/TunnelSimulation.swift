// A bonded tunnel in the simulator: the real tunnel engine (the `Tunnel` module, what tquicd runs)
// at both ends of one multipath connection over simulated WAN links. This file holds only what is
// the simulator's own: the traffic sources, the measurement and the report `tquic-sim` prints.
import Bonding
import Congestion
import QUIC
import Tunnel

public struct TunnelRunConfiguration {
    public var scenario: Scenario
    public var scheduler: SchedulerKind
    public var seed: UInt64 = 1
    /// Inner packet size (an IP packet from the LAN).
    public var packetSize = 1200
    /// Measurement starts after this warm-up (slow start, path validation).
    public var warmUp: Duration = .seconds(2)
    /// A path with this many probe timeouts in a row is declared dead and abandoned.
    public var deadPathProbeTimeouts = 2
    /// Re-open dead paths this often (they are validated again before use).
    public var revivalInterval: Duration = .seconds(1)
    /// Each path's congestion controller and the coupling across them (`--cc`, `--coupling`).
    /// BBR by default: the bonding targets (lossy LTE, the 600 ms satellite, failover without
    /// loss) are met with it and missed with the loss-based controllers (README table).
    public var congestion: CongestionAlgorithm = .bbr
    /// The bulk traffic: saturating (default), a fixed rate, or an inner TCP-like flow.
    public var source: TunnelSource = .saturating
    /// `TunnelConfiguration.maxRepairHold` (nil: the tunnel's default), to compare with and without.
    public var maxRepairHold: Duration?
    /// `TunnelConfiguration.failoverInteractiveReserve` (nil: the tunnel's default).
    public var failoverInteractiveReserve: Double?
    public var coupling: CouplingAlgorithm = .none
    /// `--trace`: every this often, one line per path (window, RTT, rate, losses) to `traceWriter`.
    public var traceInterval: Duration?
    public var traceWriter: (String) -> Void = { print($0) }
    /// A small-packet flow beside the bulk one (flow 2, "probe"), like the lab's UDP probe: one
    /// `size`-byte inner packet every `interval` from the warm-up on. Its longest delivery gap is
    /// the failover gap a ping or a call sees.
    public var probe: (interval: Duration, size: Int)?
    public init(scenario: Scenario, scheduler: SchedulerKind) {
        self.scenario = scenario
        self.scheduler = scheduler
    }
}

public struct TunnelPathResult: Sendable {
    public var name: String
    /// Datagrams the path's uplink dropped (queue full, loss, outage) over the whole run.
    public var uplinkDrops: Int = 0
    public var goodputMbps: Double
    public var share: Double
    public var rttMs: Double
    /// p99 queueing delay of the path's uplink over the run.
    public var queueDelayP99Ms: Double = 0
}

public struct TunnelFlowResult: Sendable {
    public var name: String
    public var delayP50Ms: Double
    public var delayP99Ms: Double
    public var delivered: Int
    /// The longest time between two of the flow's deliveries after the warm-up.
    public var maxGapMs: Double = 0
}

public struct TunnelRunResult: Sendable {
    public var scenario: String
    public var scheduler: String
    public var source: String = "saturating"
    /// Inner bytes the bulk source handed to the tunnel per second after the warm-up (Mbit/s).
    public var offeredMbps: Double = 0
    public var seed: UInt64
    public var goodputMbps: Double
    public var sumLinkMbps: Double
    public var goodputFraction: Double
    public var reorderHoldP50Ms: Double
    public var reorderHoldP99Ms: Double
    public var reinjected: Int
    public var duplicatesDropped: Int
    public var lostAfterHandoff: Int
    /// Times the router's QueueGuard began holding a path to its measured rate.
    public var queueGuardHolds: Int = 0
    public var maxDeliveryGapMs: Double
    public var queueDelayP99Ms: Double
    /// Tunnel packets handed to the connection in the 500 ms before a path outage began and
    /// never delivered (reinjection must bring this to 0).
    public var lostHandedBeforeOutage: Int
    /// Share of the delivered bytes that travelled on backup paths while a main path was up.
    public var backupShareWhileMainUp: Double
    public var paths: [TunnelPathResult]
    public var flows: [TunnelFlowResult]
    /// Where packets went missing: QUIC's sender queues (dropped as too old) and the reorder
    /// buffer (late, rejected, gaps skipped).
    public var diagnostics: String = ""

    /// One JSON object (the keys `tquic-sim --json` promises).
    public var json: String {
        func n(_ x: Double) -> String { x.isFinite ? String(format3(x)) : "null" }
        let p = paths.map {
            "{\"name\":\"\($0.name)\",\"goodput_mbps\":\(n($0.goodputMbps)),\"share\":\(n($0.share)),\"rtt_ms\":\(n($0.rttMs)),\"queue_delay_p99_ms\":\(n($0.queueDelayP99Ms))}"
        }
        let f = flows.map {
            "{\"name\":\"\($0.name)\",\"delay_p50_ms\":\(n($0.delayP50Ms)),\"delay_p99_ms\":\(n($0.delayP99Ms)),\"delivered\":\($0.delivered),\"max_gap_ms\":\(n($0.maxGapMs))}"
        }
        let flowP99 = flows.map { "\"\($0.name)\":\(n($0.delayP99Ms))" }
        return "{\"scenario\":\"\(scenario)\",\"scheduler\":\"\(scheduler)\",\"source\":\"\(source)\",\"seed\":\(seed),"
            + "\"offered_mbps\":\(n(offeredMbps)),"
            + "\"goodput_mbps\":\(n(goodputMbps)),\"sum_link_mbps\":\(n(sumLinkMbps)),\"goodput_fraction\":\(n(goodputFraction)),"
            + "\"reorder_hold_p50_ms\":\(n(reorderHoldP50Ms)),\"reorder_hold_p99_ms\":\(n(reorderHoldP99Ms)),"
            + "\"reinjected\":\(reinjected),\"duplicates_dropped\":\(duplicatesDropped),\"lost_after_handoff\":\(lostAfterHandoff),"
            + "\"queue_guard_holds\":\(queueGuardHolds),"
            + "\"max_delivery_gap_ms\":\(n(maxDeliveryGapMs)),\"queue_delay_p99_ms\":\(n(queueDelayP99Ms)),"
            + "\"lost_handed_before_outage\":\(lostHandedBeforeOutage),\"backup_share_while_main_up\":\(n(backupShareWhileMainUp)),"
            + "\"flow_delay_p99_ms\":{\(flowP99.joined(separator: ","))},"
            + "\"paths\":[\(p.joined(separator: ","))],\"flows\":[\(f.joined(separator: ","))]}"
    }
}

/// Three decimals without Foundation.
func format3(_ x: Double) -> String {
    let scaled = (x * 1000).rounded()
    let neg = scaled < 0
    let v = Int64(abs(scaled))
    let frac = v % 1000
    let fracText = frac < 10 ? "00\(frac)" : frac < 100 ? "0\(frac)" : "\(frac)"
    return (neg ? "-" : "") + "\(v / 1000).\(fracText)"
}

/// Runs one scenario with one scheduler and returns the figures.
public func runTunnel(_ config: TunnelRunConfiguration) throws -> TunnelRunResult {
    let run = try TunnelRun(config)
    return try run.execute()
}

/// An inner IPv4/UDP packet of `flow` (ports differ per flow), `size` bytes.
func makeInnerPacket(flow: Int, size: Int, counter: Int) -> [UInt8] {
    var p = [UInt8](repeating: 0, count: size)
    p[0] = 0x45
    p[2] = UInt8(size >> 8)
    p[3] = UInt8(size & 0xff)
    p[8] = 64
    p[9] = 17  // UDP
    p[12] = 192
    p[13] = 168
    p[14] = 1
    p[15] = 10
    p[16] = 198
    p[17] = 51
    p[18] = 100
    p[19] = 7
    let sport = UInt16(10000 + flow)
    let dport = UInt16(5000 + flow)
    p[20] = UInt8(sport >> 8)
    p[21] = UInt8(sport & 0xff)
    p[22] = UInt8(dport >> 8)
    p[23] = UInt8(dport & 0xff)
    p[24] = UInt8((size - 20) >> 8)
    p[25] = UInt8((size - 20) & 0xff)
    // A counter in the payload so corruption would be visible.
    p[28] = UInt8(truncatingIfNeeded: counter >> 24)
    p[29] = UInt8(truncatingIfNeeded: counter >> 16)
    p[30] = UInt8(truncatingIfNeeded: counter >> 8)
    p[31] = UInt8(truncatingIfNeeded: counter)
    return p
}

/// The flow and counter `makeInnerPacket` wrote: how the measurement recognises a packet at the
/// far end without looking inside the tunnel.
func innerPacketID(_ p: UnsafeRawBufferPointer) -> (id: UInt64, flow: Int)? {
    guard p.count >= 32 else { return nil }
    let dport = Int(p[22]) << 8 | Int(p[23])
    let counter = UInt64(p[28]) << 24 | UInt64(p[29]) << 16 | UInt64(p[30]) << 8 | UInt64(p[31])
    let flow = dport - 5000
    return (UInt64(flow) << 32 | counter, flow)
}

/// The bulk traffic the router's engine pulls from (as tquicd pulls from its TUN device).
final class SimulatedBulkSource: InnerPacketSource {
    var model: BulkSource
    let packetSize: Int
    private(set) var counter = 0
    private var backlogAtRead: Int?
    private var retryAt: Timestamp?
    /// Called for each packet read (its counter), for the measurement.
    var onRead: ((Int, Timestamp) -> Void)?

    init(kind: TunnelSource, packetSize: Int) {
        model = BulkSource(kind: kind, packetBytes: packetSize)
        self.packetSize = packetSize
    }

    func readPacket(into buffer: UnsafeMutableRawBufferPointer, now: Timestamp) -> Int? {
        let supply = model.available(now: now)
        guard supply.ok, buffer.count >= packetSize else {
            retryAt = supply.retryAt
            return nil
        }
        retryAt = nil
        backlogAtRead = model.backlogBytes()
        counter += 1
        let p = makeInnerPacket(flow: 0, size: packetSize, counter: counter)
        p.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: buffer[0..<packetSize]).copyMemory(from: $0) }
        model.onHanded(sequence: UInt32(truncatingIfNeeded: counter), now: now)
        onRead?(counter, now)
        return packetSize
    }

    var backlogBytes: Int? { backlogAtRead }
    var nextPacketTime: Timestamp? { retryAt }
}

final class TunnelRun {
    let config: TunnelRunConfiguration
    let router: SimulatedRouter
    let vps: SimulatedVPS
    let sim: Simulator
    /// The tunnel engines: the router's (links = the scenario's WAN paths) and the VPS's (made
    /// when the router's connection arrives).
    let routerEngine: TunnelEngine
    var vpsEngine: TunnelEngine?
    let tunnelConfiguration: TunnelConfiguration
    let source: SimulatedBulkSource
    let hasVoIP: Bool
    var voipCounter = 0
    var probeCounter = 0
    /// Inner acknowledgements of a TCP-like source return after the shortest one-way delay.
    let innerAckDelay: Duration
    /// Inner bulk bytes handed to the tunnel after the warm-up.
    var offeredBytes = 0

    // Measurement, by inner packet (flow, counter).
    var created: [UInt64: (time: Timestamp, flow: Int, size: Int)] = [:]
    var handedIDs = Set<UInt64>()
    var deliveredIDs = Set<UInt64>()
    var deliveredBytes = 0
    var deliveredBytesPerPath: [Int: Int] = [:]
    /// Per flow: its last delivery and its longest gap between two (after the warm-up).
    var lastFlowDelivery: [Int: Timestamp] = [:]
    var maxFlowGap: [Int: Duration] = [:]
    var flowDelays: [Int: [Double]] = [:]
    var bytesWhileMainUp = 0
    var backupBytesWhileMainUp = 0

    var measureFrom: Timestamp { .zero + config.warmUp }

    init(_ config: TunnelRunConfiguration) throws {
        self.config = config
        var q = SimulatedQUICConfiguration()
        q.seed = config.seed
        q.congestion = config.congestion
        q.coupling = config.coupling
        router = try SimulatedRouter(pathCount: config.scenario.paths.count, configuration: q, now: .zero)
        router.opensPaths = false
        vps = try SimulatedVPS(pathCount: config.scenario.paths.count, configuration: q)
        sim = config.scenario.makeSimulator(router: router, vps: vps, seed: config.seed)
        var t = TunnelConfiguration()
        t.scheduler = config.scheduler
        t.deadPathProbeTimeouts = config.deadPathProbeTimeouts
        t.revivalInterval = config.revivalInterval
        t.nominalInnerPacketBytes = config.packetSize
        if let hold = config.maxRepairHold { t.maxRepairHold = hold }
        if let reserve = config.failoverInteractiveReserve { t.failoverInteractiveReserve = reserve }
        tunnelConfiguration = t
        let links = config.scenario.paths.enumerated().map { i, p in
            TunnelLink(name: p.name, local: SimulatedAddresses.router(path: i), isBackup: p.isBackup)
        }
        routerEngine = TunnelEngine(connection: router.connection, configuration: t, links: links)
        source = SimulatedBulkSource(kind: config.source, packetSize: config.packetSize)
        hasVoIP = config.scenario.name == "mixed-flows"
        innerAckDelay = config.scenario.paths.map(\.down.delay).min() ?? .zero

        source.onRead = { [unowned self] _, now in if now >= self.measureFrom { self.offeredBytes += self.config.packetSize } }
        routerEngine.sender.onHanded = { [unowned self] _, inner, _, reinjection in
            guard !reinjection, let (id, flow) = innerPacketID(inner) else { return }
            let now = self.sim.now
            if self.created[id] == nil { self.created[id] = (now, flow, inner.count) }
            if let c = self.created[id], c.time >= self.measureFrom { self.handedIDs.insert(id) }
        }
        router.onEvent = { [unowned self] now in self.routerStep(now) }
        router.applicationTimeout = { [unowned self] in self.routerEngine.nextTimeout }
        vps.onEvent = { [unowned self] now in self.vpsStep(now) }
        vps.applicationTimeout = { [unowned self] in self.vpsEngine?.nextTimeout }
        if let interval = config.traceInterval {
            let engine = routerEngine
            schedulePathTrace(
                on: sim, connection: router.connection, pathID: { i in i < engine.paths.links.count ? engine.paths.links[i].pathID : nil },
                label: "router", names: config.scenario.paths.map(\.name),
                interval: interval, until: .zero + config.scenario.duration, write: config.traceWriter)
        }
        if hasVoIP {
            _ = sim.every(.milliseconds(20), from: .zero + .milliseconds(500), until: .zero + config.scenario.duration) {
                [unowned self] s in
                self.voipCounter += 1
                let packet = makeInnerPacket(flow: 1, size: 200, counter: self.voipCounter)
                self.created[UInt64(1) << 32 | UInt64(self.voipCounter)] = (s.now, 1, packet.count)
                packet.withUnsafeBytes { _ = self.routerEngine.sender.enqueue($0, now: s.now) }
                self.routerStep(s.now)
            }
        }
        if let probe = config.probe {
            _ = sim.every(probe.interval, from: measureFrom, until: .zero + config.scenario.duration) { [unowned self] s in
                self.probeCounter += 1
                let packet = makeInnerPacket(flow: 2, size: probe.size, counter: self.probeCounter)
                self.created[UInt64(2) << 32 | UInt64(self.probeCounter)] = (s.now, 2, packet.count)
                packet.withUnsafeBytes { _ = self.routerEngine.sender.enqueue($0, now: s.now) }
                self.routerStep(s.now)
            }
        }
    }

    func execute() throws -> TunnelRunResult {
        try sim.run(until: .zero + config.scenario.duration)
        return result()
    }

    func routerStep(_ now: Timestamp) {
        routerEngine.process(now: now, source: source) { _, _ in }
    }

    func vpsStep(_ now: Timestamp) {
        if vpsEngine == nil, let c = vps.connection {
            vpsEngine = TunnelEngine(connection: c, configuration: tunnelConfiguration, links: nil)
        }
        vpsEngine?.process(now: now, source: nil) { [unowned self] inner, pathID in
            self.deliver(inner, pathID: pathID, now: now)
        }
    }

    // MARK: Measurement

    func deliver(_ inner: UnsafeRawBufferPointer, pathID: UInt32, now: Timestamp) {
        guard let (id, _) = innerPacketID(inner) else { return }
        deliveredIDs.insert(id)
        guard let c = created[id] else { return }
        if c.flow == 0, case .innerTCP = config.source {
            // The inner receiver acknowledges; the sender hears it one shortest path later.
            let counter = UInt32(truncatingIfNeeded: id)
            sim.schedule(after: innerAckDelay) { [unowned self] s in
                self.source.model.onAcknowledged(sequence: counter, now: s.now)
                self.routerStep(s.now)
            }
        }
        let delay = Double((now - c.time).nanoseconds) / 1e6
        if c.time >= measureFrom {
            flowDelays[c.flow, default: []].append(delay)
        }
        guard now >= measureFrom else { return }
        if let last = lastFlowDelivery[c.flow] { maxFlowGap[c.flow] = max(maxFlowGap[c.flow] ?? .zero, now - last) }
        lastFlowDelivery[c.flow] = now
        let size = inner.count
        deliveredBytes += size
        if let i = routerEngine.paths.linkIndex(forPath: pathID) {
            deliveredBytesPerPath[i, default: 0] += size
            let mainUp = config.scenario.paths.contains { !$0.isBackup && $0.up.isUp(at: c.time) }
            if mainUp {
                bytesWhileMainUp += size
                if config.scenario.paths[i].isBackup { backupBytesWhileMainUp += size }
            }
        }
    }

    // MARK: Results

    func result() -> TunnelRunResult {
        let end = Timestamp.zero + config.scenario.duration
        let window = (end - measureFrom).seconds
        let goodput = Double(deliveredBytes) * 8 / window / 1e6
        let sum = config.scenario.averageAvailableLinkMbps(from: measureFrom, to: end)
        var paths: [TunnelPathResult] = []
        for (i, p) in config.scenario.paths.enumerated() {
            let bytes = deliveredBytesPerPath[i] ?? 0
            let rtt = routerEngine.paths.links[i].pathID.flatMap { router.connection.pathStatistics($0)?.smoothedRTT.milliseconds } ?? 0
            paths.append(
                TunnelPathResult(
                    name: p.name, uplinkDrops: sim.paths[i].up.statistics.droppedTotal.packets,
                    goodputMbps: Double(bytes) * 8 / window / 1e6,
                    share: deliveredBytes == 0 ? 0 : Double(bytes) / Double(deliveredBytes), rttMs: rtt,
                    queueDelayP99Ms: sim.paths[i].up.statistics.queueingDelay.p99.milliseconds))
        }
        // Added queueing delay as the tunnel's packets saw it: every uplink's packets together.
        var queueing = sim.paths[0].up.statistics.queueingDelay
        for p in sim.paths.dropFirst() { queueing.merge(p.up.statistics.queueingDelay) }
        let queueP99 = queueing.p99.milliseconds
        // Packets handed over (after warm-up, before the last second so they had time to arrive) and never delivered.
        let cutoff = end - .seconds(1)
        let lost = handedIDs.filter { id in
            (created[id].map { $0.time < cutoff } ?? false) && !deliveredIDs.contains(id)
        }.count
        var lostBeforeOutage = 0
        for case .outage(_, let o) in config.scenario.events {
            let from = o.start - .milliseconds(500)
            lostBeforeOutage +=
                handedIDs.filter { id in
                    guard let c = created[id] else { return false }
                    return c.time >= from && c.time < o.start && !deliveredIDs.contains(id)
                }.count
        }
        func percentile(_ xs: [Double], _ p: Double) -> Double {
            guard !xs.isEmpty else { return 0 }
            let s = xs.sorted()
            return s[min(s.count - 1, Int((Double(s.count - 1) * p).rounded()))]
        }
        func flowResult(_ name: String, flow: Int) -> TunnelFlowResult {
            let delays = flowDelays[flow] ?? []
            return TunnelFlowResult(
                name: name, delayP50Ms: percentile(delays, 0.5), delayP99Ms: percentile(delays, 0.99), delivered: delays.count,
                maxGapMs: (maxFlowGap[flow] ?? .zero).milliseconds)
        }
        var flows = [flowResult("bulk", flow: 0)]
        if hasVoIP { flows.append(flowResult("voip", flow: 1)) }
        if config.probe != nil { flows.append(flowResult("probe", flow: 2)) }
        let reorder = vpsEngine?.receiver.reorder ?? ReorderBuffer(configuration: tunnelConfiguration.reorder)
        let rs = reorder.statistics
        let diagnostics =
            "sender datagram queue drops \(router.connection.stats.datagramsDropped), QUIC packets lost \(router.connection.stats.packetsLost); "
            + "reorder: late dropped \(rs.lateDropped), rejected \(rs.rejected), gaps skipped \(rs.gapsSkipped), expiry releases \(rs.expiryReleases)"
        let ss = routerEngine.sender.statistics
        let ls = routerEngine.sender.ledgerStatistics
        let diagnosticsEngine =
            "; router engine: \(routerEngine.freePacketBuffers) free buffers, \(routerEngine.sender.pendingPackets) pending, "
            + "reinjected \(ss.reinjected) (expired \(ss.reinjectionsExpired)), untracked \(ss.sentUntracked), dropped full \(ss.droppedQueueFull), "
            + "events acked \(ss.acknowledgementsReported) lost \(ss.lossesReported) unknown \(ss.unknownTags), "
            + "VPS no-buffer drops \(vpsEngine?.receiver.statistics.droppedNoBuffer ?? 0); "
            + "ledger recorded \(ls.recorded) acked \(ls.acknowledged) lost \(ls.lost) evicted \(ls.evicted) failures \(ls.pathFailures)"
        var result = TunnelRunResult(
            scenario: config.scenario.name, scheduler: config.scheduler.rawValue, seed: config.seed,
            goodputMbps: goodput, sumLinkMbps: sum, goodputFraction: sum > 0 ? goodput / sum : 0,
            reorderHoldP50Ms: reorder.holdTimes.percentile(0.5).milliseconds,
            reorderHoldP99Ms: reorder.holdTimes.percentile(0.99).milliseconds,
            reinjected: Int(routerEngine.sender.statistics.reinjected), duplicatesDropped: Int(reorder.statistics.duplicatesDropped),
            lostAfterHandoff: lost, maxDeliveryGapMs: (maxFlowGap[0] ?? .zero).milliseconds, queueDelayP99Ms: queueP99,
            lostHandedBeforeOutage: lostBeforeOutage,
            backupShareWhileMainUp: bytesWhileMainUp == 0 ? 0 : Double(backupBytesWhileMainUp) / Double(bytesWhileMainUp),
            paths: paths, flows: flows)
        result.diagnostics = diagnostics + diagnosticsEngine
        result.queueGuardHolds = Int(ss.queueGuardHolds)
        result.source = config.source.description
        result.offeredMbps = Double(offeredBytes) * 8 / window / 1e6
        if case .innerTCP = config.source {
            result.diagnostics +=
                "; inner TCP-like flow: window \(Int(source.model.window)) packets, \(source.model.innerLosses) inner losses"
        }
        return result
    }
}
