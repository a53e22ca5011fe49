// The tunnel's sending way (router: LAN → internet; VPS: the way back), one inner IP packet at a
// time, in the order of its stages:
//
//   1. Read       the next inner packet, from the pending queues (packets pushed by `enqueue`) or
//                 pulled from the InnerPacketSource (the TUN device), into a pool buffer with
//                 headroom for the tunnel header
//   2. Classify   its flow's lane (FlowKey) and traffic class (FlowClassifier: interactive or bulk)
//                 into that class's queue; interactive goes first, bulk leaves through CoDel
//                 (RFC 8289), which drops from its head when packets waited too long
//   3. Schedule   the PathScheduler picks a path (or several: `redundant`) among the links'
//                 paths, seen through their QueueGuard, or says wait
//   4. Number     only now the tunnel header is written in place (sequence, lane, lane sequence):
//                 a number given to a packet that then waits would be a gap the receiver waits out
//   5. Send       one QUIC DATAGRAM per chosen path, tagged; the ReinjectionLedger remembers it
//   6. Feedback   acknowledged → forgotten; lost, or on a path declared dead → reinjected (before
//                 bulk, after interactive packets, in sequence order, R bit set, up to
//                 `reinjectionMaxAge`; a reinjected interactive packet before everything); with
//                 `reinjectsLosses` off, a loss on a healthy path is left to the inner transport.
//                 After a failure the surviving paths keep part of their window for interactive
//                 packets for a few round trips (`failoverInteractiveReserve`)
//
// A frame no path accepted keeps its number and goes first next time (a number is never skipped).
import Bonding
import Congestion
import QUIC

public final class TunnelSender {
    public struct Statistics: Sendable {
        /// Tunnel packets handed to a path (a redundant copy counts once per path).
        public var datagramsHanded: UInt64 = 0
        public var innerPacketsSent: UInt64 = 0
        public var innerBytesSent: UInt64 = 0
        /// Packets sent again on another path after theirs failed.
        public var reinjected: UInt64 = 0
        /// Reinjections dropped for age (`reinjectionMaxAge`).
        public var reinjectionsExpired: UInt64 = 0
        /// Inner packets dropped: the pending queue of their class was full.
        public var droppedQueueFull: UInt64 = 0
        /// Bulk packets CoDel dropped at the head of the bulk queue (RFC 8289).
        public var droppedCoDel: UInt64 = 0
        /// Inner packets dropped as unusable (empty, or larger than a DATAGRAM can carry).
        public var droppedMalformed: UInt64 = 0
        /// Larger than any usable path carries now (a path's MTU shrank before the TUN's did).
        public var droppedTooLarge: UInt64 = 0
        /// Times a path's QueueGuard began to hold it to its measured rate (a standing queue of
        /// ours that its congestion controller did not see).
        public var queueGuardHolds: UInt64 = 0
        /// Sent without a copy kept for reinjection (no free packet buffer).
        public var sentUntracked: UInt64 = 0
        /// Acknowledgements and losses the connection reported, and those whose tag was unknown.
        public var acknowledgementsReported: UInt64 = 0
        public var lossesReported: UInt64 = 0
        public var unknownTags: UInt64 = 0
    }

    /// A packet read but not handed to a path yet.
    struct Pending {
        var buffer: PacketBufferHandle
        var trafficClass: TrafficClass
        /// Numbered already (a retry, or a reinjection): the frame is complete in the buffer.
        var isNumbered: Bool
        var isReinjection: Bool
        var firstSent: Timestamp
    }

    /// What a tag names: the ledger ticket of one DATAGRAM on one path.
    struct InFlight {
        var tag: UInt64 = 0
        var ticket: ReinjectionLedger.Ticket?
        var link = -1
    }

    public let configuration: TunnelConfiguration
    public private(set) var statistics = Statistics()
    /// Handed-over hook for measurements (the simulator): the frame's tunnel header, the inner
    /// packet, the link it went on, whether it was a reinjection.
    public var onHanded: ((TunnelHeader, UnsafeRawBufferPointer, _ link: Int, _ reinjection: Bool) -> Void)?

    private let pool: PacketBufferPool
    private var scheduler: any PathScheduler
    public private(set) var schedulerKind: SchedulerKind
    private var sequencer: TunnelSequencer
    private var classifier: FlowClassifier
    private var ledger: ReinjectionLedger
    private var queueGuards: [QueueGuard] = []
    private var retries: [Pending] = []
    /// The next reinjection, taken from the ledger (numbered and marked) but not handed yet.
    private var reinjection: Pending?
    private var interactive: [Pending] = []
    private var bulk: RingQueue<Pending>
    /// Bytes in `bulk` (CoDel never drops the last packet of a queue).
    private var bulkBytes = 0
    private var bulkCoDel: CoDel?
    private let bulkLimit: Int
    private var inFlight: [InFlight]
    private var nextTag: UInt64 = 1
    /// When to pump again by itself (pacing, a rate-limited source); nil: on the next event.
    public private(set) var wakeUp: Timestamp?
    private var snapshotScratch: [PathSnapshot] = []
    /// When a path last failed: the surviving paths keep part of their window for interactive
    /// packets for a few round trips after it (`failoverInteractiveReserve`).
    private var lastPathFailure: Timestamp?

    public init(configuration: TunnelConfiguration, pool: PacketBufferPool) {
        self.configuration = configuration
        self.pool = pool
        scheduler = configuration.scheduler.makeScheduler()
        schedulerKind = configuration.scheduler
        sequencer = TunnelSequencer(flowHashSeed: configuration.flowHashSeed)
        classifier = FlowClassifier(interactiveRate: configuration.interactiveRate, burst: configuration.interactiveBurst)
        ledger = ReinjectionLedger(configuration: configuration.ledger)
        inFlight = [InFlight](repeating: InFlight(), count: 1 << 16)
        bulkCoDel = configuration.bulkQueueManagement.map { CoDel(parameters: $0) }
        bulkLimit =
            bulkCoDel == nil
            ? configuration.pendingPacketLimit : max(configuration.pendingPacketLimit, configuration.managedBulkPacketLimit)
        bulk = RingQueue(
            capacity: bulkLimit,
            placeholder: Pending(buffer: 0, trafficClass: .bulk, isNumbered: false, isReinjection: false, firstSent: .zero))
    }

    public var ledgerStatistics: ReinjectionLedger.Statistics { ledger.statistics }
    public var pendingPackets: Int { retries.count + interactive.count + bulk.count + (reinjection == nil ? 0 : 1) }

    // MARK: 1-2. Read and classify

    /// Pushes an inner packet (copied into a pool buffer). Returns false when it was dropped.
    @discardableResult
    public func enqueue(_ packet: UnsafeRawBufferPointer, now: Timestamp) -> Bool {
        guard let h = pool.allocate() else {
            statistics.droppedQueueFull += 1
            return false
        }
        let ok = pool.withBuffer(h) { buf -> Bool in
            guard packet.count > 0, packet.count <= buf.count - TunnelFrame.headerLength else { return false }
            UnsafeMutableRawBufferPointer(rebasing: buf[TunnelFrame.headerLength...]).copyMemory(from: packet)
            return true
        }
        guard ok else {
            pool.release(h)
            statistics.droppedMalformed += 1
            return false
        }
        pool.setLength(h, TunnelFrame.headerLength + packet.count)
        return admit(h, now: now)
    }

    private func admit(_ h: PacketBufferHandle, now: Timestamp) -> Bool {
        let cls = classify(h, now: now)
        let full = cls == .interactive ? interactive.count >= configuration.pendingPacketLimit : bulk.isFull
        guard !full else {
            pool.release(h)
            statistics.droppedQueueFull += 1
            return false
        }
        // firstSent is the time it entered the queue until it is numbered (CoDel's sojourn).
        let p = Pending(buffer: h, trafficClass: cls, isNumbered: false, isReinjection: false, firstSent: now)
        if cls == .interactive {
            interactive.append(p)
        } else {
            bulk.append(p)
            bulkBytes += pool.length(h)
        }
        return true
    }

    private func classify(_ h: PacketBufferHandle, now: Timestamp) -> TrafficClass {
        pool.withBytes(h) { frame in
            let inner = UnsafeRawBufferPointer(rebasing: frame[TunnelFrame.headerLength...])
            let lane = FlowKey.lane(of: inner, seed: configuration.flowHashSeed)
            return classifier.classify(lane: lane, bytes: inner.count, now: now)
        }
    }

    private enum PullResult { case admitted, dropped, empty }

    /// Pulls one packet from the source into the bulk or interactive queue.
    private func pull(from source: InnerPacketSource, now: Timestamp) -> PullResult {
        guard let h = pool.allocate() else { return .empty }
        let n = pool.withBuffer(h) { buf in
            source.readPacket(into: UnsafeMutableRawBufferPointer(rebasing: buf[TunnelFrame.headerLength...]), now: now)
        }
        guard let n, n > 0 else {
            pool.release(h)
            if let t = source.nextPacketTime { wakeUp = wakeUp.map { min($0, t) } ?? t }
            return .empty
        }
        pool.setLength(h, TunnelFrame.headerLength + n)
        return admit(h, now: now) ? .admitted : .dropped
    }

    /// Everything an eagerly drained source has, into the class queues (bounded by the bulk
    /// queue's limit: what does not fit is dropped and counted, as the source's own queue would).
    private func drain(_ source: InnerPacketSource, now: Timestamp) {
        for _ in 0..<(bulkLimit + configuration.pendingPacketLimit) {
            if pull(from: source, now: now) == .empty { return }
        }
    }

    /// Takes the bulk queue's head out.
    private func removeBulkHead() {
        let p = bulk.removeFirst()
        bulkBytes -= pool.length(p.buffer)
        if bulk.isEmpty { bulkCoDel?.queueEmptied() }
    }

    /// RFC 8289: CoDel's verdict on the bulk head that is about to leave; true if it was dropped.
    private func codelDropsBulkHead(_ p: Pending, allowance: Duration, now: Timestamp) -> Bool {
        guard bulkCoDel != nil, !p.isNumbered else { return false }
        let bytes = pool.length(p.buffer)
        guard
            bulkCoDel!.shouldDrop(
                sojourn: now - p.firstSent, backlogBytes: bulkBytes - bytes,
                maxPacketBytes: configuration.packetBufferSize, now: now, allowance: allowance)
        else { return false }
        removeBulkHead()
        pool.release(p.buffer)
        statistics.droppedCoDel += 1
        return true
    }

    /// How long bulk packets may wait for the fastest path by the scheduler's choice before CoDel
    /// calls it congestion: the one-way delay by which the slowest usable path is slower (half
    /// the spread of the base RTTs), up to `maxQueueingAllowance`. Zero for paths of like delay.
    private func queueingAllowance(_ paths: [PathSnapshot]) -> Duration {
        var fastest: Duration?
        var slowest = Duration.zero
        for i in PathEligibility.eligible(paths) where paths[i].minRTT > .zero {
            let rtt = paths[i].minRTT
            if fastest.map({ rtt < $0 }) ?? true { fastest = rtt }
            if slowest < rtt { slowest = rtt }
        }
        guard let fastest else { return .zero }
        return min((slowest - fastest) / 2, configuration.maxQueueingAllowance)
    }

    // MARK: 3-5. Schedule, number, send

    /// Another scheduler from the next packet on (`tquicctl scheduler set`); packets already
    /// handed to paths stay where they are.
    public func setScheduler(_ kind: SchedulerKind) {
        scheduler = kind.makeScheduler()
        schedulerKind = kind
    }

    /// Hands packets to the connection while the scheduler finds a path with room.
    public func pump(connection: Connection, paths: PathHealth, source: InnerPacketSource?, now: Timestamp) {
        wakeUp = nil
        if let source, source.drainsEagerly { drain(source, now: now) }
        var budget = configuration.packetsPerWakeup
        // The paths' base RTTs do not move within one pump: the allowance is worked out once.
        var allowance: Duration?
        while budget > 0 {
            budget -= 1
            // Who goes first: frames already numbered, reinjected interactive packets (the
            // receiver holds their lane until they arrive), interactive packets, reinjections,
            // bulk. Interactive before the other reinjections: after a failover onto a slow path
            // (a satellite with a small window left from being idle), re-sending what the dead
            // path owed can take seconds, and a call or a ping must not wait behind it.
            // A reinjection taken from the ledger waits in its own place, not among the retries:
            // one that waits there for the window would hold every interactive packet behind it.
            if reinjection == nil, retries.isEmpty { reinjection = nextReinjection(urgentOnly: !interactive.isEmpty, now: now) }
            var pending: Pending
            var queue = Queue.retries
            if let r = retries.first {
                pending = r
            } else if let r = reinjection, r.trafficClass == .interactive {
                pending = r
                queue = .reinjection
            } else if let p = interactive.first {
                pending = p
                queue = .interactive
            } else if let r = reinjection {
                pending = r
                queue = .reinjection
            } else if let p = bulk.first {
                pending = p
                queue = .bulk
            } else {
                guard let source, !source.drainsEagerly, pull(from: source, now: now) != .empty else { return }
                budget += 1  // reading is not handing out
                continue
            }
            let frameBytes = pool.length(pending.buffer)
            let innerBytes = frameBytes - TunnelFrame.headerLength
            if frameBytes > largestDatagram(connection: connection, paths: paths) {
                // Larger than any usable path's DATAGRAM can carry (RFC 9221 §5: never
                // fragmented): the TUN MTU follows the smallest path so this is rare (a path's
                // MTU just shrank); drop it rather than let it block the queue.
                take(queue)
                pool.release(pending.buffer)
                statistics.droppedTooLarge += 1
                continue
            }
            var backlog: Int?
            if queue == .bulk {
                // The bulk backlog, this packet included, in framed bytes of whole packets of
                // this size (ECF's k); unknown when the source cannot tell.
                // (A drained source's backlog is all in the bulk queue.)
                let waiting: Int? = source == nil || source!.drainsEagerly ? innerBytes : source!.backlogBytes
                if let waiting {
                    backlog = (waiting + innerBytes * (bulk.count - 1)) / innerBytes * configuration.framedWireBytes(inner: innerBytes)
                }
            }
            let snapshots = makeSnapshots(
                connection: connection, paths: paths, frameBytes: frameBytes, trafficClass: pending.trafficClass, now: now)
            let request = SchedulingRequest(
                size: frameBytes + configuration.wireOverhead, trafficClass: pending.trafficClass,
                queuedBytes: backlog)
            let decision = scheduler.schedule(request, paths: snapshots, now: now)
            guard case .send(let set) = decision, !set.isEmpty else {
                if case .wait(let t?) = decision { wakeUp = wakeUp.map { min($0, t) } ?? t }
                return
            }
            // It leaves the bulk queue now: CoDel may drop it instead (not yet numbered: no gap).
            if queue == .bulk {
                let a = allowance ?? queueingAllowance(snapshots)
                allowance = a
                if codelDropsBulkHead(pending, allowance: a, now: now) { continue }
            }
            take(queue)
            if !pending.isNumbered {
                let ok = pool.withBuffer(pending.buffer) { buf in
                    sequencer.frame(
                        UnsafeMutableRawBufferPointer(rebasing: buf[0..<frameBytes]),
                        payloadOffset: TunnelFrame.headerLength, payloadLength: innerBytes) != nil
                }
                guard ok else {
                    pool.release(pending.buffer)
                    statistics.droppedMalformed += 1
                    continue
                }
                pending.isNumbered = true
                pending.firstSent = now
            }
            if hand(pending, to: set, connection: connection, paths: paths, now: now) {
                pool.release(pending.buffer)  // the ledger's records hold their own references
            } else if queue == .reinjection {
                reinjection = pending  // still after the interactive packets next time
                return
            } else {
                // Numbered but not accepted: first next time (never skip a number).
                retries.insert(pending, at: 0)
                return
            }
        }
        // Budget used up: the next event (an ACK, a pacing deadline) goes on.
    }

    /// Where the packet being scheduled waits, in the order they go.
    private enum Queue { case retries, interactive, reinjection, bulk }

    /// Takes the packet being scheduled out of its queue.
    private func take(_ queue: Queue) {
        switch queue {
        case .retries: retries.removeFirst()
        case .interactive: interactive.removeFirst()
        case .reinjection: reinjection = nil
        case .bulk: removeBulkHead()
        }
    }

    /// Sends one numbered frame on every path of `set`. Returns false if no path took it.
    private func hand(_ p: Pending, to set: PathSet, connection: Connection, paths: PathHealth, now: Timestamp) -> Bool {
        let header: TunnelHeader? = pool.withBytes(p.buffer) { raw in
            if case .success(let d) = TunnelFrame.decode(raw) { return d.header }
            return nil
        }
        guard let header else { return false }
        let frameLength = pool.length(p.buffer)
        var handedOnce = false
        for i in set {
            guard i < paths.links.count, let id = paths.links[i].pathID else { continue }
            let tag = nextTag
            nextTag += 1
            // Zero-copy send: the frame goes from its pool buffer straight into the connection's
            // datagram slot (no array per packet).
            let sent: Int
            do {
                sent = try connection.sendDatagram(onPath: id, tag: tag, urgent: p.trafficClass == .interactive) { slot in
                    guard frameLength <= slot.count else { return 0 }
                    pool.withBytes(p.buffer) { UnsafeMutableRawBufferPointer(rebasing: slot[0..<frameLength]).copyMemory(from: $0) }
                    return frameLength
                }
            } catch {
                continue  // path gone or no slot free: the scheduler's next choice, or a retry
            }
            guard sent > 0 else {
                statistics.droppedMalformed += 1
                continue
            }
            handedOnce = true
            statistics.datagramsHanded += 1
            pool.retain(p.buffer)
            let record = ReinjectionLedger.Record(
                sequence: header.sequence, handle: p.buffer, bytes: frameLength, firstSent: p.firstSent,
                isUrgent: p.trafficClass == .interactive)
            let (ticket, evicted) = ledger.recordSent(record, onPath: Int(id))
            if let evicted { pool.release(evicted.handle) }
            if ticket == nil {
                pool.release(p.buffer)
                statistics.sentUntracked += 1
            }
            inFlight[Int(tag & UInt64(inFlight.count - 1))] = InFlight(tag: tag, ticket: ticket, link: i)
            if let onHanded {
                pool.withBytes(p.buffer) {
                    onHanded(header, UnsafeRawBufferPointer(rebasing: $0[TunnelFrame.headerLength...]), i, p.isReinjection)
                }
            }
        }
        if handedOnce {
            if p.isReinjection {
                statistics.reinjected += 1
            } else {
                statistics.innerPacketsSent += 1
                statistics.innerBytesSent += UInt64(frameLength - TunnelFrame.headerLength)
            }
        }
        return handedOnce
    }

    /// The largest DATAGRAM payload any usable path takes now (paths have their own MTUs,
    /// RFC 8899 per path); 0 when none is usable.
    private func largestDatagram(connection: Connection, paths: PathHealth) -> Int {
        var largest = 0
        for (i, link) in paths.links.enumerated() where paths.isUsable(link: i) {
            if let id = link.pathID, let room = connection.maxDatagramPayloadSize(onPath: id), room > largest { largest = room }
        }
        // Before any link has its path (the handshake's path 0 only): path 0's.
        return largest > 0 ? largest : connection.maxDatagramPayloadSize
    }

    /// The paths as the scheduler sees them for a packet of `trafficClass`; a path whose MTU cannot
    /// carry `frameBytes` is not usable for this packet.
    private func makeSnapshots(
        connection: Connection, paths: PathHealth, frameBytes: Int, trafficClass: TrafficClass, now: Timestamp
    ) -> [PathSnapshot] {
        var snapshots = snapshotScratch
        snapshotScratch = []
        snapshots.removeAll(keepingCapacity: true)
        while queueGuards.count < paths.links.count { queueGuards.append(QueueGuard()) }
        let queuedBytesPerDatagram = configuration.framedWireBytes(inner: configuration.nominalInnerPacketBytes)
        for (i, link) in paths.links.enumerated() {
            guard let id = link.pathID, let st = connection.pathCondition(id) else {
                snapshots.append(
                    PathSnapshot(
                        id: i, isUsable: false, isBackup: link.isBackup, congestionWindow: 0, smoothedRTT: .zero,
                        weight: link.weight))
                continue
            }
            // Datagrams queued inside QUIC count as in flight (no standing queue behind the
            // window); a path whose queue holds what its pacer and window let out at once (16 at
            // least) is full.
            let queued = st.queuedDatagrams * queuedBytesPerDatagram
            let limit = configuration.queuedDatagramLimit(sendAllowance: connection.sendAllowance(onPath: id, now: now))
            let full = st.queuedDatagrams >= limit
            let fits = (connection.maxDatagramPayloadSize(onPath: id) ?? 0) >= frameBytes
            snapshots.append(
                PathSnapshot(
                    id: i, isUsable: st.state == .active && paths.isUsable(link: i) && fits, isBackup: st.isBackup,
                    congestionWindow: st.congestionWindow,
                    bytesInFlight: full ? max(st.congestionWindow, st.bytesInFlight + queued) : st.bytesInFlight + queued,
                    smoothedRTT: st.smoothedRTT, minRTT: st.minRTT, rttVariation: st.rttVariation,
                    deliveryRate: st.deliveryRate, lossRate: st.lossRate, nextSendTime: st.nextSendTime,
                    weight: link.weight))
        }
        let budget = QueueGuard.budget(for: snapshots)
        for i in snapshots.indices {
            let wasHolding = queueGuards[i].isDraining
            snapshots[i].congestionWindow = queueGuards[i].window(for: snapshots[i], budget: budget, now: now)
            if queueGuards[i].isDraining && !wasHolding { statistics.queueGuardHolds += 1 }
            if trafficClass != .interactive, let failed = lastPathFailure, keepsFailoverReserve(snapshots[i], since: failed, now: now) {
                snapshots[i].congestionWindow -= Int(Double(snapshots[i].congestionWindow) * configuration.failoverInteractiveReserve)
            }
        }
        defer { snapshotScratch = snapshots }
        return snapshots
    }

    /// Whether a path still keeps part of its window for interactive packets after the failure at
    /// `failed`: for `failoverReserveRounds` of its round trips.
    private func keepsFailoverReserve(_ path: PathSnapshot, since failed: Timestamp, now: Timestamp) -> Bool {
        now - failed < max(path.smoothedRTT, path.minRTT) * configuration.failoverReserveRounds
    }

    // MARK: 6. Feedback

    /// A DATAGRAM's fate, from the connection's events.
    public func onDatagramAcknowledged(tag: UInt64) {
        statistics.acknowledgementsReported += 1
        guard let e = takeInFlight(tag), let ticket = e.ticket, let record = ledger.acknowledged(ticket) else { return }
        pool.release(record.handle)
    }

    public func onDatagramLost(tag: UInt64, connection: Connection, paths: PathHealth) {
        statistics.lossesReported += 1
        guard let e = takeInFlight(tag), let ticket = e.ticket else { return }
        if configuration.reinjectsLosses || paths.isFailing(link: e.link, connection: connection) {
            // Sent again (on whichever path the scheduler picks): an outage's losses, and, by
            // default, every loss. The inner TCP then does not see a lossy radio link's random
            // losses (as an MPTCP subflow's own retransmissions hide them from the meta
            // connection); its congestion signal is CoDel's at the tunnel's entry instead.
            ledger.requeueForReinjection(ticket) { [pool] record in pool.release(record.handle) }
        } else if let record = ledger.lost(ticket) {
            pool.release(record.handle)
        }
    }

    /// Paths that failed: what they still owed is queued for reinjection, and the others keep part
    /// of their window for interactive packets for a while.
    public func onPathsFailed(_ ids: [UInt32], now: Timestamp) {
        if !ids.isEmpty { lastPathFailure = now }
        for id in ids {
            ledger.pathFailed(id: Int(id)) { [pool] record in pool.release(record.handle) }
        }
    }

    private func takeInFlight(_ tag: UInt64) -> InFlight? {
        let i = Int(tag & UInt64(inFlight.count - 1))
        guard inFlight[i].tag == tag else {
            statistics.unknownTags += 1
            return nil
        }
        let e = inFlight[i]
        inFlight[i] = InFlight()
        return e
    }

    private func nextReinjection(urgentOnly: Bool, now: Timestamp) -> Pending? {
        while let r = ledger.nextReinjection(urgentOnly: urgentOnly) {
            guard now - r.firstSent <= configuration.reinjectionMaxAge else {
                pool.release(r.handle)
                statistics.reinjectionsExpired += 1
                continue
            }
            // The receiver delivers a marked packet even if its lane moved on.
            pool.withBuffer(r.handle) { _ = TunnelFrame.markReinjected($0, at: 0) }
            return Pending(
                buffer: r.handle, trafficClass: r.isUrgent ? .interactive : .bulk, isNumbered: true, isReinjection: true,
                firstSent: r.firstSent)
        }
        return nil
    }
}
