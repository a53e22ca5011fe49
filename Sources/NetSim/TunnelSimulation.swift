// A bonded tunnel in the simulator: the router numbers inner IP packets (Bonding's tunnel framing),
// a path scheduler spreads them as QUIC DATAGRAMs over the WAN paths of one multipath connection,
// and the VPS puts them back in order in a reorder buffer. Reports the figures `tquic-sim` prints.
import Bonding
import Congestion
import QUIC

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
    public var coupling: CouplingAlgorithm = .none
    /// `--trace`: every this often, one line per path (window, RTT, rate, losses) to `traceWriter`.
    public var traceInterval: Duration?
    public var traceWriter: (String) -> Void = { print($0) }
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
        let p = paths.map { "{\"name\":\"\($0.name)\",\"goodput_mbps\":\(n($0.goodputMbps)),\"share\":\(n($0.share)),\"rtt_ms\":\(n($0.rttMs)),\"queue_delay_p99_ms\":\(n($0.queueDelayP99Ms))}" }
        let f = flows.map { "{\"name\":\"\($0.name)\",\"delay_p50_ms\":\(n($0.delayP50Ms)),\"delay_p99_ms\":\(n($0.delayP99Ms)),\"delivered\":\($0.delivered)}" }
        let flowP99 = flows.map { "\"\($0.name)\":\(n($0.delayP99Ms))" }
        return "{\"scenario\":\"\(scenario)\",\"scheduler\":\"\(scheduler)\",\"source\":\"\(source)\",\"seed\":\(seed),"
            + "\"offered_mbps\":\(n(offeredMbps)),"
            + "\"goodput_mbps\":\(n(goodputMbps)),\"sum_link_mbps\":\(n(sumLinkMbps)),\"goodput_fraction\":\(n(goodputFraction)),"
            + "\"reorder_hold_p50_ms\":\(n(reorderHoldP50Ms)),\"reorder_hold_p99_ms\":\(n(reorderHoldP99Ms)),"
            + "\"reinjected\":\(reinjected),\"duplicates_dropped\":\(duplicatesDropped),\"lost_after_handoff\":\(lostAfterHandoff),"
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
    p[2] = UInt8(size >> 8); p[3] = UInt8(size & 0xff)
    p[8] = 64
    p[9] = 17 // UDP
    p[12] = 192; p[13] = 168; p[14] = 1; p[15] = 10
    p[16] = 198; p[17] = 51; p[18] = 100; p[19] = 7
    let sport = UInt16(10000 + flow), dport = UInt16(5000 + flow)
    p[20] = UInt8(sport >> 8); p[21] = UInt8(sport & 0xff)
    p[22] = UInt8(dport >> 8); p[23] = UInt8(dport & 0xff)
    p[24] = UInt8((size - 20) >> 8); p[25] = UInt8((size - 20) & 0xff)
    // A counter in the payload so corruption would be visible.
    p[28] = UInt8(truncatingIfNeeded: counter >> 24); p[29] = UInt8(truncatingIfNeeded: counter >> 16)
    p[30] = UInt8(truncatingIfNeeded: counter >> 8); p[31] = UInt8(truncatingIfNeeded: counter)
    return p
}

final class TunnelRun {
    let config: TunnelRunConfiguration
    let router: SimulatedRouter
    let vps: SimulatedVPS
    let sim: Simulator
    let scheduler: any PathScheduler
    var sequencer = TunnelSequencer()
    /// Per topology path: keeps packets out of a queue the path's controller has not noticed yet.
    lazy var queueGuards = [QueueGuard](repeating: QueueGuard(), count: config.scenario.paths.count)
    var reorder: ReorderBuffer = {
        var c = ReorderBuffer.Configuration()
        // The VPS's RTT samples do not see queueing on the router's uplinks; late arrivals do.
        c.learnsFromLateArrivals = true
        // A packet that missed its lane's hold still goes to the LAN, out of order: the inner
        // transport copes with reordering better than with a loss (TCP's SACK/DSACK, QUIC).
        c.lateArrivals = .deliver
        return ReorderBuffer(configuration: c)
    }()
    var decoder = TunnelFrameDecoder()

    // Router bookkeeping: tunnel packets handed to the connection and not yet acknowledged.
    struct Handed { var frame: [UInt8]; var pathIndex: Int; var createdAt: Timestamp; var flow: Int; var reinjected: Bool }
    var handed: [UInt64: Handed] = [:]
    var nextTag: UInt64 = 1
    var reinjectQueue: [[UInt8]] = []
    /// Frames already numbered that no path accepted yet (sent first next time).
    var retryQueue: [(bytes: [UInt8], flow: Int, created: Timestamp)] = []
    var reinjected = 0
    var deadPaths: Set<Int> = []
    var lastRevival: [Int: Timestamp] = [:]
    var bulkCounter = 0
    var voipQueue: [(packet: [UInt8], created: Timestamp)] = []
    var waitUntil: Timestamp?
    var bulk: BulkSource
    /// Inner bulk bytes handed to the tunnel after the warm-up.
    var offeredBytes = 0
    /// Inner acknowledgements of a TCP-like source return after the shortest one-way delay.
    let innerAckDelay: Duration

    // VPS bookkeeping.
    var created: [UInt32: (time: Timestamp, flow: Int, size: Int)] = [:] // by tunnel sequence
    var deliveredSequences = Set<UInt32>()
    var handedSequences = Set<UInt32>()
    var payloads: [Int: (seq: UInt32, size: Int)] = [:]
    var nextHandle = 0
    var deliveredBytes = 0
    var deliveredBytesPerPath: [Int: Int] = [:]
    var lastDelivery: Timestamp?
    var maxGap = Duration.zero
    var flowDelays: [Int: [Double]] = [:]
    var pathOfSequence: [UInt32: Int] = [:]
    var bytesWhileMainUp = 0
    var backupBytesWhileMainUp = 0

    var measureFrom: Timestamp { .zero + config.warmUp }
    /// Datagrams a path may hold queued inside QUIC (waiting for the pacer) before it counts as full.
    let maxQueuedPerPath = 16
    let hasVoIP: Bool

    init(_ config: TunnelRunConfiguration) throws {
        self.config = config
        var q = SimulatedQUICConfiguration()
        q.seed = config.seed
        q.congestion = config.congestion
        q.coupling = config.coupling
        let backups = Set(config.scenario.paths.enumerated().filter { $0.element.isBackup }.map { $0.offset })
        router = try SimulatedRouter(pathCount: config.scenario.paths.count, backupIndexes: backups, configuration: q, now: .zero)
        vps = try SimulatedVPS(pathCount: config.scenario.paths.count, configuration: q)
        sim = config.scenario.makeSimulator(router: router, vps: vps, seed: config.seed)
        scheduler = config.scheduler.makeScheduler()
        hasVoIP = config.scenario.name == "mixed-flows"
        bulk = BulkSource(kind: config.source, packetBytes: config.packetSize)
        innerAckDelay = config.scenario.paths.map(\.down.delay).min() ?? .zero
        router.onEvent = { [unowned self] now in self.routerStep(now) }
        router.applicationTimeout = { [unowned self] in self.waitUntil }
        vps.onEvent = { [unowned self] now in self.vpsStep(now) }
        vps.applicationTimeout = { [unowned self] in self.reorder.nextDeadline }
        if let interval = config.traceInterval {
            schedulePathTrace(on: sim, router: router, label: "router", names: config.scenario.paths.map(\.name),
                              interval: interval, until: .zero + config.scenario.duration, write: config.traceWriter)
        }
        if hasVoIP {
            var n = 0
            _ = sim.every(.milliseconds(20), from: .zero + .milliseconds(500), until: .zero + config.scenario.duration) { [unowned self] s in
                n += 1
                self.voipQueue.append((makeInnerPacket(flow: 1, size: 200, counter: n), s.now))
                self.routerStep(s.now)
            }
        }
    }

    func execute() throws -> TunnelRunResult {
        try sim.run(until: .zero + config.scenario.duration)
        return result()
    }

    // MARK: Router side

    /// Path snapshots for the scheduler, indexed by topology path index.
    func snapshots(now: Timestamp) -> [PathSnapshot] {
        var paths = rawSnapshots(now: now)
        let budget = QueueGuard.budget(for: paths)
        for i in paths.indices {
            paths[i].congestionWindow = queueGuards[i].window(for: paths[i], budget: budget)
        }
        return paths
    }

    func rawSnapshots(now: Timestamp) -> [PathSnapshot] {
        (0..<config.scenario.paths.count).map { i in
            guard let id = router.pathIDForIndex[i], let st = router.connection.pathStatistics(id) else {
                return PathSnapshot(id: i, isUsable: false, isBackup: config.scenario.paths[i].isBackup, congestionWindow: 0,
                                    bytesInFlight: 0, smoothedRTT: .zero, minRTT: .zero, rttVariation: .zero,
                                    deliveryRate: 0, lossRate: 0, nextSendTime: nil, weight: 1)
            }
            // Bytes queued in QUIC for this path count as in flight: no standing queue behind the
            // window. A path whose queue already holds a few packets (the pacer is holding them) is
            // full for now: handing it more would only build a queue inside the sender.
            let queued = st.queuedDatagrams * (config.packetSize + TunnelFrame.headerLength + 40)
            let full = st.queuedDatagrams >= maxQueuedPerPath
            return PathSnapshot(id: i, isUsable: st.state == .active && !deadPaths.contains(i), isBackup: st.isBackup,
                                congestionWindow: st.congestionWindow,
                                bytesInFlight: full ? max(st.congestionWindow, st.bytesInFlight + queued) : st.bytesInFlight + queued,
                                smoothedRTT: st.smoothedRTT, minRTT: st.minRTT, rttVariation: st.rttVariation,
                                deliveryRate: st.deliveryRate, lossRate: st.lossRate, nextSendTime: st.nextSendTime, weight: 1)
        }
    }

    func routerStep(_ now: Timestamp) {
        let conn = router.connection
        while let e = conn.pollEvent() {
            switch e {
            case .datagramAcknowledged(let tag):
                handed[tag] = nil
            case .datagramLost(let tag):
                // A loss on a path that is dead or failing (probe timeouts without answer) is the
                // outage, not congestion: those packets are reinjected. Losses on healthy paths
                // are left to the inner transport, as on any IP link.
                if let h = handed.removeValue(forKey: tag),
                   deadPaths.contains(h.pathIndex) || pathIsFailing(h.pathIndex) {
                    // Reinjection: the packet was on a path that died; send it again elsewhere,
                    // marked (R bit) so the receiver delivers it even if its flow moved on.
                    var frame = h.frame
                    frame.withUnsafeMutableBytes { _ = TunnelFrame.markReinjected($0, at: 0) }
                    reinjectQueue.append(frame)
                }
            default: break
            }
        }
        guard conn.isMultipathEnabled || conn.handshakeConfirmed else { return }
        detectDeadPaths(now)
        feed(now)
    }

    func pathIsFailing(_ index: Int) -> Bool {
        guard let id = router.pathIDForIndex[index], let st = router.connection.pathStatistics(id) else { return true }
        return st.consecutiveProbeTimeouts >= 1 || st.state != .active
    }

    func detectDeadPaths(_ now: Timestamp) {
        let conn = router.connection
        for (i, id) in router.pathIDForIndex {
            guard let st = conn.pathStatistics(id) else { continue }
            if st.state == .active && st.consecutiveProbeTimeouts >= config.deadPathProbeTimeouts && !deadPaths.contains(i) {
                deadPaths.insert(i)
                conn.abandonPath(id, now: now)
                lastRevival[i] = now
            } else if st.state == .closed || st.state == .abandoned, !deadPaths.contains(i) {
                deadPaths.insert(i)
                lastRevival[i] = now
            }
        }
        // Revival: try the dead path's address again now and then (it is validated before use).
        for i in deadPaths {
            guard now >= (lastRevival[i] ?? .zero) + config.revivalInterval else { continue }
            lastRevival[i] = now
            if let old = router.pathIDForIndex[i], let st = conn.pathStatistics(old), st.state == .active { deadPaths.remove(i); continue }
            if let old = router.pathIDForIndex[i], conn.pathStatistics(old)?.state == .validating { continue }
            if let id = conn.openPath(local: SimulatedAddresses.router(path: i), backup: config.scenario.paths[i].isBackup, now: now) {
                router.pathIDForIndex[i] = id
                router.indexForPathID[id] = i
            }
        }
        for i in deadPaths {
            if let id = router.pathIDForIndex[i], conn.pathStatistics(id)?.state == .active,
               (conn.pathStatistics(id)?.consecutiveProbeTimeouts ?? 0) == 0 {
                deadPaths.remove(i)
            }
        }
    }

    /// Hands tunnel packets to the connection while the scheduler finds a path with room.
    func feed(_ now: Timestamp) {
        waitUntil = nil
        var budget = 256 // per event, to keep the simulation responsive
        while budget > 0 {
            budget -= 1
            let frame: [UInt8]
            let flow: Int
            var backlog: Int?
            var createdAt = now
            var isReinjection = false
            var isRetry = false
            if let r = retryQueue.first {
                frame = r.bytes
                flow = r.flow
                createdAt = r.created
                isRetry = true
            } else if let r = reinjectQueue.first {
                frame = r
                flow = 0
                isReinjection = true
            } else if let v = voipQueue.first {
                // Numbered only once the scheduler takes it: a number given to a packet that then
                // waits would be a gap its lane waits out at the receiver.
                frame = []
                flow = 1
                createdAt = v.created
            } else {
                // The bulk source, if it has a packet to give now.
                let supply = bulk.available(now: now)
                guard supply.ok else {
                    if let t = supply.retryAt { waitUntil = waitUntil.map { min($0, t) } ?? t }
                    return
                }
                frame = []
                flow = 0
                // Framed packets: the inner bytes plus header and overhead per packet.
                backlog = bulk.backlogBytes().map { $0 / config.packetSize * (config.packetSize + TunnelFrame.headerLength + 40) }
            }
            let size = !frame.isEmpty ? frame.count
                : flow == 1 ? voipQueue[0].packet.count + TunnelFrame.headerLength : config.packetSize + TunnelFrame.headerLength
            let decision = scheduler.schedule(SchedulingRequest(size: size + 40, trafficClass: flow == 1 ? .interactive : .bulk,
                                                                queuedBytes: backlog),
                                              paths: snapshots(now: now), now: now)
            guard case .send(let set) = decision, !set.isEmpty else {
                if case .wait(let t) = decision { waitUntil = t }
                return
            }
            var bytes = frame
            var isNewBulk = false
            if bytes.isEmpty && flow == 1 {
                bytes = framed(voipQueue[0].packet)
            } else if bytes.isEmpty {
                bulkCounter += 1
                isNewBulk = true
                bytes = framed(makeInnerPacket(flow: 0, size: config.packetSize, counter: bulkCounter))
            }
            if isRetry { retryQueue.removeFirst() }
            else if isReinjection { reinjectQueue.removeFirst(); reinjected += 1 }
            else if flow == 1 { voipQueue.removeFirst() }
            guard let header = decodeHeader(bytes) else { return }
            let seq = header.sequence.rawValue
            if created[seq] == nil { created[seq] = (createdAt, flow, bytes.count - TunnelFrame.headerLength) }
            if isNewBulk {
                bulk.onHanded(sequence: seq, now: now)
                if now >= measureFrom { offeredBytes += config.packetSize }
            }
            if createdAt >= measureFrom && !isReinjection && !isRetry { handedSequences.insert(seq) }
            var handedOnce = false
            for i in set {
                guard let id = router.pathIDForIndex[i] else { continue }
                let tag = nextTag
                nextTag += 1
                do {
                    try router.connection.sendDatagram(bytes, onPath: id, tag: tag)
                    handed[tag] = Handed(frame: bytes, pathIndex: i, createdAt: createdAt, flow: flow, reinjected: isReinjection)
                    pathOfSequence[seq] = i
                    handedOnce = true
                } catch {
                    continue
                }
            }
            if !handedOnce {
                // Numbered but not accepted: keep it for the next opportunity (never skip a number).
                retryQueue.insert((bytes, flow, createdAt), at: 0)
                return
            }
        }
    }

    func framed(_ packet: [UInt8]) -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: TunnelFrame.headerLength) + packet
        let ok = buf.withUnsafeMutableBytes { raw in
            sequencer.frame(raw, payloadOffset: TunnelFrame.headerLength, payloadLength: packet.count) != nil
        }
        precondition(ok, "framing failed")
        return buf
    }

    func decodeHeader(_ bytes: [UInt8]) -> TunnelHeader? {
        bytes.withUnsafeBytes { raw in
            if case .success(let d) = TunnelFrame.decode(raw) { return d.header }
            return nil
        }
    }

    // MARK: VPS side

    func vpsStep(_ now: Timestamp) {
        guard let conn = vps.connection else { return }
        while let e = conn.pollEvent() {
            guard case .datagramReceived(let d) = e else { continue }
            let decoded: DecodedTunnelFrame? = d.withUnsafeBytes { raw in decoder.decode(raw) }
            guard let frame = decoded else { continue }
            let handle = nextHandle
            nextHandle += 1
            payloads[handle] = (frame.header.sequence.rawValue, frame.payload.count)
            switch reorder.insert(frame.header, handle: handle, now: now) {
            case .duplicate, .late, .rejected: payloads[handle] = nil
            default: break
            }
        }
        // The hold time follows the paths' one-way delay spread (VPS side estimates).
        let delays = conn.allPathStatistics.filter { $0.state == .active }.map {
            ReorderBuffer.PathDelay(oneWayDelay: $0.smoothedRTT / 2, jitter: $0.rttVariation)
        }
        if !delays.isEmpty { reorder.updateHoldTime(paths: delays) }
        while let r = reorder.poll(now: now) {
            guard let p = payloads.removeValue(forKey: r.handle) else { continue }
            deliver(seq: p.seq, size: p.size, now: now)
        }
    }

    func deliver(seq: UInt32, size: Int, now: Timestamp) {
        deliveredSequences.insert(seq)
        guard let c = created[seq] else { return }
        if c.flow == 0, case .innerTCP = config.source {
            // The inner receiver acknowledges; the sender hears it one shortest path later.
            sim.schedule(after: innerAckDelay) { [unowned self] s in
                self.bulk.onAcknowledged(sequence: seq, now: s.now)
                self.routerStep(s.now)
            }
        }
        let delay = Double((now - c.time).nanoseconds) / 1e6
        if c.time >= measureFrom {
            flowDelays[c.flow, default: []].append(delay)
        }
        guard now >= measureFrom else { return }
        deliveredBytes += size
        if let i = pathOfSequence[seq] {
            deliveredBytesPerPath[i, default: 0] += size
            let mainUp = config.scenario.paths.contains { !$0.isBackup && $0.up.isUp(at: c.time) }
            if mainUp {
                bytesWhileMainUp += size
                if config.scenario.paths[i].isBackup { backupBytesWhileMainUp += size }
            }
        }
        if c.flow == 0 {
            if let last = lastDelivery { maxGap = max(maxGap, now - last) }
            lastDelivery = now
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
            let rtt = router.pathIDForIndex[i].flatMap { router.connection.pathStatistics($0)?.smoothedRTT.milliseconds } ?? 0
            paths.append(TunnelPathResult(name: p.name, uplinkDrops: sim.paths[i].up.statistics.droppedTotal.packets,
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
        let lost = handedSequences.filter { seq in
            (created[seq].map { $0.time < cutoff } ?? false) && !deliveredSequences.contains(seq)
        }.count
        var lostBeforeOutage = 0
        for case .outage(_, let o) in config.scenario.events {
            let from = o.start - .milliseconds(500)
            lostBeforeOutage += handedSequences.filter { seq in
                guard let c = created[seq] else { return false }
                return c.time >= from && c.time < o.start && !deliveredSequences.contains(seq)
            }.count
        }
        func percentile(_ xs: [Double], _ p: Double) -> Double {
            guard !xs.isEmpty else { return 0 }
            let s = xs.sorted()
            return s[min(s.count - 1, Int((Double(s.count - 1) * p).rounded()))]
        }
        var flows = [TunnelFlowResult(name: "bulk", delayP50Ms: percentile(flowDelays[0] ?? [], 0.5),
                                      delayP99Ms: percentile(flowDelays[0] ?? [], 0.99), delivered: flowDelays[0]?.count ?? 0)]
        if hasVoIP {
            flows.append(TunnelFlowResult(name: "voip", delayP50Ms: percentile(flowDelays[1] ?? [], 0.5),
                                          delayP99Ms: percentile(flowDelays[1] ?? [], 0.99), delivered: flowDelays[1]?.count ?? 0))
        }
        let rs = reorder.statistics
        let diagnostics = "sender datagram queue drops \(router.connection.stats.datagramsDropped), QUIC packets lost \(router.connection.stats.packetsLost); "
            + "reorder: late dropped \(rs.lateDropped), rejected \(rs.rejected), gaps skipped \(rs.gapsSkipped), expiry releases \(rs.expiryReleases)"
        var result = TunnelRunResult(scenario: config.scenario.name, scheduler: config.scheduler.rawValue, seed: config.seed,
                               goodputMbps: goodput, sumLinkMbps: sum, goodputFraction: sum > 0 ? goodput / sum : 0,
                               reorderHoldP50Ms: reorder.holdTimes.percentile(0.5).milliseconds,
                               reorderHoldP99Ms: reorder.holdTimes.percentile(0.99).milliseconds,
                               reinjected: reinjected, duplicatesDropped: Int(reorder.statistics.duplicatesDropped),
                               lostAfterHandoff: lost, maxDeliveryGapMs: maxGap.milliseconds, queueDelayP99Ms: queueP99,
                               lostHandedBeforeOutage: lostBeforeOutage,
                               backupShareWhileMainUp: bytesWhileMainUp == 0 ? 0 : Double(backupBytesWhileMainUp) / Double(bytesWhileMainUp),
                               paths: paths, flows: flows)
        result.diagnostics = diagnostics
        result.source = config.source.description
        result.offeredMbps = Double(offeredBytes) * 8 / window / 1e6
        if case .innerTCP = config.source {
            result.diagnostics += "; inner TCP-like flow: window \(Int(bulk.window)) packets, \(bulk.innerLosses) inner losses"
        }
        return result
    }
}
