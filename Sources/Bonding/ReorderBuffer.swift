// Receiver side, between the tunnel frame decoder and the TUN write: puts the inner packets of
// each flow back in order after paths of very different latency scrambled them, drops copies,
// and gives up on a missing packet once it cannot arrive anymore. Stages of a packet here:
//   1. duplicate window (`DuplicateWindow`): copies and very old numbers die;
//   2. lane check: a packet behind its lane's last delivered one is late: dropped, or (a
//      reinjected copy, by default) handed on out of order, flagged late;
//   3. in order for its lane → ready at once; else held, filed in its lane (by tunnel sequence)
//      and in the arrival list (by arrival time);
//   4. a held packet leaves when the gap before it fills, when it has been held for the hold time
//      (spread of the paths' one-way delays + margin), when the buffer is full (oldest first), or
//      when the sender declares the missing packet lost;
//   5. `poll` hands ready packets to the caller in release order.
// Order is kept per lane (one inner flow, see `TunnelFrame`), so a gap in a download never
// holds back a VoIP call. All storage is allocated once in `init`; nothing allocates per packet.

import Congestion

/// The receiver's bounded, adaptive, per-flow reorder buffer over opaque packet handles.
///
/// The buffer stores an `Int` handle per packet (an index into the caller's packet pool), never
/// the bytes. Call `insert` for each decoded frame, then `poll` until it returns nil, and sleep no
/// later than `nextDeadline`.
public struct ReorderBuffer: Sendable {
    public struct Configuration: Sendable {
        /// Packets held at most; when full, the oldest held packet is released and the gap
        /// before it skipped.
        public var capacity: Int = 8192
        /// Extra room for packets released but not yet collected by `poll`.
        public var readyReserve: Int = 1024
        /// Width of the duplicate window (power of two); must cover rate × delay spread.
        public var duplicateWindow: Int = 1 << 17
        /// Hold time bounds; the hold time is the paths' delay spread plus `holdMargin`.
        public var minimumHold: Duration = .milliseconds(2)
        public var maximumHold: Duration = .milliseconds(1000)
        public var holdMargin: Duration = .milliseconds(10)
        /// How many path jitters (RTT variations) are added to a path's delay.
        public var jitterMultiplier: UInt64 = 2
        /// Hold time before the first `updateHoldTime`.
        public var initialHold: Duration = .milliseconds(100)
        /// What becomes of a packet that arrives after its lane moved past it.
        public var lateArrivals: LateArrivalPolicy = .deliverReinjected
        /// Lengthen the hold when ordinary packets arrive after their gap was skipped (the path
        /// delay estimates were too low); never beyond `maximumHold`.
        public var learnsFromLateArrivals = false

        public init() {}
    }

    /// A packet that arrives after its lane gave up waiting for it cannot be delivered in order.
    public enum LateArrivalPolicy: Hashable, Sendable {
        /// Drop it: strict per-flow order.
        case drop
        /// Hand on reinjected copies out of order (flagged `isLate`), drop the rest. A reinjected
        /// copy exists because its path died after the packet was handed to it; failure detection
        /// usually takes longer than the hold time, and the inner transport is better served by a
        /// late packet than by none (TCP takes it as reordering instead of retransmitting).
        case deliverReinjected
        /// Hand on every late packet out of order (flagged `isLate`).
        case deliver
    }

    /// One path's delay as the receiver sees it (for the hold time).
    public struct PathDelay: Sendable {
        /// One-way delay estimate (smoothed RTT / 2 when nothing better is known).
        public var oneWayDelay: Duration
        /// Its variation (RTT variation).
        public var jitter: Duration
        public init(oneWayDelay: Duration, jitter: Duration = .zero) {
            self.oneWayDelay = oneWayDelay
            self.jitter = jitter
        }

        /// From the receiving connection's view of a path: half its smoothed RTT, and its RTT
        /// variation as jitter. Pass only usable paths.
        public init(_ path: PathSnapshot) {
            self.init(oneWayDelay: path.oneWayDelay, jitter: path.rttVariation)
        }
    }

    /// A packet leaving the buffer, in its lane's order.
    public struct ReleasedPacket: Hashable, Sendable {
        public var handle: Int
        public var header: TunnelHeader
        /// Time between its arrival and its release.
        public var heldFor: Duration
        /// Delivered out of its lane's order under the late-arrival policy.
        public var isLate: Bool
    }

    public enum InsertOutcome: Hashable, Sendable {
        /// In order: ready for `poll` now.
        case ready
        /// Waiting for an earlier packet of its lane.
        case held
        /// A copy of a packet already received: dropped (the caller frees the handle).
        case duplicate
        /// Its lane already moved past it, or it is older than the duplicate window: dropped.
        case late
        /// Its lane already moved past it; handed on out of order (`LateArrivalPolicy`).
        case readyLate
        /// No room even for ready packets: the caller has not been polling. Dropped.
        case rejected
    }

    public struct Statistics: Sendable {
        /// Packets (and lost-markers) waiting for a gap now.
        public var held = 0
        /// Released packets not yet collected by `poll`.
        public var ready = 0
        public var accepted: UInt64 = 0
        public var released: UInt64 = 0
        public var duplicatesDropped: UInt64 = 0
        /// Arrived after their lane had moved past them (the gap was skipped), or too old.
        public var lateDropped: UInt64 = 0
        /// Arrived after their lane had moved past them and handed on out of order.
        public var lateDelivered: UInt64 = 0
        public var rejected: UInt64 = 0
        /// Missing packets given up (lane sequence numbers skipped).
        public var gapsSkipped: UInt64 = 0
        /// Releases forced by the hold time / by a full buffer.
        public var expiryReleases: UInt64 = 0
        public var capacityReleases: UInt64 = 0
        /// Packets the sender declared lost before they were skipped.
        public var declaredLost: UInt64 = 0
        /// Reinjected copies accepted (they arrived before any other copy).
        public var reinjectedAccepted: UInt64 = 0
    }

    public let configuration: Configuration
    /// Current hold time: a held packet is released at most this long after its arrival.
    public private(set) var holdTime: Duration
    /// The hold time derived from the paths' delays (before the late-arrival allowance).
    public private(set) var pathHoldTime: Duration
    /// Learned from late arrivals: when packets keep arriving after their gap was skipped, the
    /// path estimates underrate the real spread (e.g. queueing on the sender's uplink, which the
    /// receiver's RTT samples do not see), so the hold grows; it decays by half every 10 s.
    public private(set) var lateAllowance: Duration = .zero
    private var lateAllowanceUpdated: UInt64 = 0
    public private(set) var statistics = Statistics()
    /// Hold time of every packet released in order (0 for those in order on arrival).
    public private(set) var holdTimes = LatencyHistogram()

    // MARK: Storage

    enum SlotKind: UInt8 { case free, held, ready, lostMarker }

    struct Slot {
        var handle = 0
        var sequence: UInt32 = 0
        var lane: UInt16 = 0
        var laneSequence: UInt16 = 0
        /// Arrival time (ns); once ready, the time held (ns).
        var time: UInt64 = 0
        var laneNext: Int32 = -1  // also the free list link
        var lanePrev: Int32 = -1
        var ageNext: Int32 = -1
        var agePrev: Int32 = -1
        var kind = SlotKind.free
        var reinjected = false
        var late = false
    }

    enum LaneAnchor: UInt8 {
        /// Nothing delivered yet: no lateness check.
        case fresh
        /// `laneLastGlobal` is the tunnel sequence of the last delivered packet.
        case anchored
        /// Idle so long that `laneLastGlobal` is stale; the lane sequence still counts.
        case idle
    }

    private var slots: [Slot]
    private var freeHead: Int32
    private var ageHead: Int32 = -1
    private var ageTail: Int32 = -1
    private var readyRing: [Int32]
    private var readyStart = 0
    private var readyCount = 0

    private var laneLast: [UInt16]
    private var laneLastGlobal: [UInt32]
    private var laneAnchor: [LaneAnchor]
    private var laneHead: [Int32]
    private var laneTail: [Int32]
    private var sweepCursor = 0
    private var lostMarkers = 0

    private var duplicates: DuplicateWindow
    private var latestNow: UInt64 = 0

    public init(configuration: Configuration = Configuration()) {
        precondition(configuration.capacity > 0 && configuration.readyReserve > 0)
        self.configuration = configuration
        holdTime = Self.clamp(configuration.initialHold, configuration)
        pathHoldTime = holdTime
        let total = configuration.capacity + configuration.readyReserve
        slots = [Slot](repeating: Slot(), count: total)
        for i in 0..<total { slots[i].laneNext = i + 1 < total ? Int32(i + 1) : -1 }
        freeHead = 0
        readyRing = [Int32](repeating: -1, count: total)
        let lanes = TunnelFrame.laneCount
        laneLast = [UInt16](repeating: UInt16.max, count: lanes)  // the first expected is 0
        laneLastGlobal = [UInt32](repeating: 0, count: lanes)
        laneAnchor = [LaneAnchor](repeating: .fresh, count: lanes)
        laneHead = [Int32](repeating: -1, count: lanes)
        laneTail = [Int32](repeating: -1, count: lanes)
        duplicates = DuplicateWindow(width: configuration.duplicateWindow)
    }

    // MARK: Hold time

    /// The hold time for these paths: the spread between the slowest (delay + jitters) and the
    /// fastest one-way delay, plus the margin, clamped to the configured bounds.
    public static func holdTime(for paths: [PathDelay], configuration: Configuration) -> Duration? {
        guard let first = paths.first else { return nil }
        var fastest = first.oneWayDelay
        var slowest = Duration.zero
        for path in paths {
            fastest = min(fastest, path.oneWayDelay)
            slowest = max(slowest, path.oneWayDelay + path.jitter * configuration.jitterMultiplier)
        }
        return clamp(slowest - fastest + configuration.holdMargin, configuration)
    }

    /// Adapts the hold time to the usable paths' current delays (call when RTT estimates move,
    /// e.g. once per smoothed RTT). An empty list keeps the current hold time. Held packets then
    /// expire by the new hold time.
    /// `atLeast`: a floor, e.g. the time a lost packet's repair takes to arrive.
    public mutating func updateHoldTime(paths: [PathDelay], atLeast floor: Duration = .zero) {
        if let hold = Self.holdTime(for: paths, configuration: configuration) {
            pathHoldTime = Self.clamp(max(hold, floor), configuration)
            holdTime = Self.clamp(pathHoldTime + lateAllowance, configuration)
        }
    }

    /// Sets the hold time directly (clamped to the configured bounds).
    public mutating func setHoldTime(_ hold: Duration) {
        pathHoldTime = Self.clamp(hold, configuration)
        holdTime = Self.clamp(pathHoldTime + lateAllowance, configuration)
    }

    /// A packet arrived after its lane had skipped it: lengthen the hold by a quarter of the
    /// current one (at least the minimum hold).
    private mutating func learnFromLateArrival(now: UInt64) {
        decayLateAllowance(now: now)
        let step = max(holdTime / 4, configuration.minimumHold)
        lateAllowance = min(lateAllowance + step, configuration.maximumHold)
        holdTime = Self.clamp(pathHoldTime + lateAllowance, configuration)
    }

    private mutating func decayLateAllowance(now: UInt64) {
        guard lateAllowance > .zero else {
            lateAllowanceUpdated = now
            return
        }
        let elapsed = Double(now &- lateAllowanceUpdated) / 1e9
        guard elapsed > 0.01 else { return }
        lateAllowanceUpdated = now
        // Half-life 10 s.
        var factor = 1.0
        var e = elapsed
        while e >= 10 {
            factor /= 2
            e -= 10
        }
        factor *= 1 - 0.0693 * e  // ln 2 / 10 per second, linearised over < 10 s
        lateAllowance = Duration(nanoseconds: UInt64(Double(lateAllowance.nanoseconds) * max(factor, 0)))
        holdTime = Self.clamp(pathHoldTime + lateAllowance, configuration)
    }

    static func clamp(_ d: Duration, _ c: Configuration) -> Duration {
        min(max(d, c.minimumHold), max(c.maximumHold, c.minimumHold))
    }

    // MARK: Input

    /// Files one received packet.
    /// - Parameters:
    ///   - header: its decoded tunnel header.
    ///   - handle: the caller's reference to the packet's bytes; returned by `poll`.
    ///   - now: arrival time.
    /// - Returns: what became of it; for `.duplicate`, `.late`, `.rejected` the caller frees it.
    ///   Packets of any outcome may have become ready: `poll` until nil.
    public mutating func insert(_ header: TunnelHeader, handle: Int, now: Timestamp) -> InsertOutcome {
        let now = advanceClock(now)
        sweepIdleLane()
        decayLateAllowance(now: now)
        let lane = Int(header.lane & 0x0fff)
        let seq = header.sequence
        switch duplicates.check(seq) {
        case .duplicate:
            statistics.duplicatesDropped += 1
            return .duplicate
        case .tooOld:
            statistics.lateDropped += 1
            return .late
        case .new:
            break
        }
        if laneAnchor[lane] == .anchored, !TunnelSequence(laneLastGlobal[lane]).precedes(seq) {
            // Reinjected copies are late by design (their path died); only ordinary late
            // arrivals say the hold is too short.
            if configuration.learnsFromLateArrivals && !header.isReinjected { learnFromLateArrival(now: now) }
            return insertLate(header, handle: handle)
        }
        // A lost-marker for this very number gives way to the packet itself (the duplicate
        // window has ruled out any other entry with this number).
        if lostMarkers > 0 {
            let marker = find(seq, lane: lane)
            if marker >= 0 {
                unlinkLane(marker)
                unlinkAge(marker)
                statistics.held -= 1
                lostMarkers -= 1
                freeSlot(marker)
            }
        }
        guard freeHead >= 0 else {
            statistics.rejected += 1
            return .rejected
        }
        duplicates.insert(seq)
        statistics.accepted += 1
        if header.isReinjected { statistics.reinjectedAccepted += 1 }

        let index = allocateSlot()
        slots[Int(index)].handle = handle
        slots[Int(index)].sequence = seq.rawValue
        slots[Int(index)].lane = UInt16(lane)
        slots[Int(index)].laneSequence = header.laneSequence
        slots[Int(index)].time = now
        slots[Int(index)].reinjected = header.isReinjected
        slots[Int(index)].late = false
        slots[Int(index)].kind = .held
        linkLaneSorted(index, lane: lane)
        appendAge(index)
        statistics.held += 1

        releaseInOrder(lane: lane, now: now)
        if slots[Int(index)].kind == .ready { return .ready }
        if statistics.held > configuration.capacity {
            statistics.capacityReleases += 1
            releaseThrough(ageHead, now: now)
            if slots[Int(index)].kind == .ready { return .ready }
        }
        return .held
    }

    /// A packet behind its lane's last delivered one: dropped, or handed on out of order.
    private mutating func insertLate(_ header: TunnelHeader, handle: Int) -> InsertOutcome {
        let deliver: Bool
        switch configuration.lateArrivals {
        case .drop: deliver = false
        case .deliverReinjected: deliver = header.isReinjected
        case .deliver: deliver = true
        }
        guard deliver, freeHead >= 0 else {
            statistics.lateDropped += 1
            return .late
        }
        duplicates.insert(header.sequence)
        statistics.accepted += 1
        if header.isReinjected { statistics.reinjectedAccepted += 1 }
        let index = allocateSlot()
        slots[Int(index)].handle = handle
        slots[Int(index)].sequence = header.sequence.rawValue
        slots[Int(index)].lane = header.lane & 0x0fff
        slots[Int(index)].laneSequence = header.laneSequence
        slots[Int(index)].time = 0
        slots[Int(index)].reinjected = header.isReinjected
        slots[Int(index)].late = true
        pushReady(index)
        statistics.lateDelivered += 1
        return .readyLate
    }

    /// The sender declared the packet with this header lost (it will never arrive): its lane
    /// need not wait for it. Ignored when it already arrived or its lane has moved past it.
    public mutating func declareLost(_ header: TunnelHeader, now: Timestamp) {
        let now = advanceClock(now)
        let lane = Int(header.lane & 0x0fff)
        let seq = header.sequence
        guard duplicates.check(seq) == .new else { return }
        if laneAnchor[lane] == .anchored, !TunnelSequence(laneLastGlobal[lane]).precedes(seq) { return }
        guard find(seq, lane: lane) < 0, freeHead >= 0 else { return }
        statistics.declaredLost += 1
        lostMarkers += 1
        let index = allocateSlot()
        slots[Int(index)].handle = -1
        slots[Int(index)].sequence = seq.rawValue
        slots[Int(index)].lane = UInt16(lane)
        slots[Int(index)].laneSequence = header.laneSequence
        slots[Int(index)].time = now
        slots[Int(index)].reinjected = false
        slots[Int(index)].late = false
        slots[Int(index)].kind = .lostMarker
        linkLaneSorted(index, lane: lane)
        appendAge(index)
        statistics.held += 1
        releaseInOrder(lane: lane, now: now)
        if statistics.held > configuration.capacity {
            statistics.capacityReleases += 1
            releaseThrough(ageHead, now: now)
        }
    }

    // MARK: Output

    /// The next packet to hand on, after releasing every packet whose hold time has run out.
    /// Call until nil after each `insert` (or batch of them) and at `nextDeadline`.
    public mutating func poll(now: Timestamp) -> ReleasedPacket? {
        let now = advanceClock(now)
        releaseExpired(now: now)
        guard readyCount > 0 else { return nil }
        let index = readyRing[readyStart]
        readyStart = readyStart + 1 == readyRing.count ? 0 : readyStart + 1
        readyCount -= 1
        statistics.ready = readyCount
        let slot = slots[Int(index)]
        freeSlot(index)
        return ReleasedPacket(
            handle: slot.handle,
            header: TunnelHeader(
                sequence: TunnelSequence(slot.sequence), lane: slot.lane, laneSequence: slot.laneSequence,
                isReinjected: slot.reinjected),
            heldFor: Duration(nanoseconds: slot.time),
            isLate: slot.late)
    }

    /// When the oldest held packet's hold time runs out (nil when nothing is held). Packets
    /// already ready are not covered: `poll` until nil before sleeping.
    public var nextDeadline: Timestamp? {
        guard ageHead >= 0 else { return nil }
        return Timestamp(nanoseconds: slots[Int(ageHead)].time) + holdTime
    }

    /// True when `poll` has a packet without waiting.
    public var hasReadyPackets: Bool { readyCount > 0 }

    // MARK: Release

    private mutating func releaseExpired(now: UInt64) {
        while ageHead >= 0, slots[Int(ageHead)].time &+ holdTime.nanoseconds <= now {
            statistics.expiryReleases += 1
            releaseThrough(ageHead, now: now)
        }
    }

    /// Releases, in lane order, every entry of `target`'s lane up to and including `target`
    /// (giving up the gaps between them), then whatever follows in order.
    private mutating func releaseThrough(_ target: Int32, now: UInt64) {
        guard target >= 0 else { return }
        let lane = Int(slots[Int(target)].lane)
        while true {
            let head = laneHead[lane]
            guard head >= 0 else { break }
            release(head, lane: lane, now: now)
            if head == target { break }
        }
        releaseInOrder(lane: lane, now: now)
    }

    /// Releases the lane's head for as long as it is the successor of the last delivered one.
    private mutating func releaseInOrder(lane: Int, now: UInt64) {
        while true {
            let head = laneHead[lane]
            guard head >= 0, slots[Int(head)].laneSequence == laneLast[lane] &+ 1 else { return }
            release(head, lane: lane, now: now)
        }
    }

    /// Moves a lane's head entry out: to the ready ring (a packet) or nowhere (a lost-marker).
    private mutating func release(_ index: Int32, lane: Int, now: UInt64) {
        let i = Int(index)
        let skipped = slots[i].laneSequence &- (laneLast[lane] &+ 1)
        if skipped < 0x8000 { statistics.gapsSkipped += UInt64(skipped) }  // else: inconsistent input
        laneLast[lane] = slots[i].laneSequence
        laneLastGlobal[lane] = slots[i].sequence
        laneAnchor[lane] = .anchored
        unlinkLane(index)
        unlinkAge(index)
        statistics.held -= 1
        if slots[i].kind == .lostMarker {
            lostMarkers -= 1
            freeSlot(index)
            return
        }
        let held = now > slots[i].time ? now - slots[i].time : 0
        holdTimes.record(Duration(nanoseconds: held))
        slots[i].time = held
        pushReady(index)
    }

    private mutating func pushReady(_ index: Int32) {
        slots[Int(index)].kind = .ready
        var end = readyStart + readyCount
        if end >= readyRing.count { end -= readyRing.count }
        readyRing[end] = index
        readyCount += 1
        statistics.ready = readyCount
        statistics.released += 1
    }

    // MARK: Lists

    private mutating func allocateSlot() -> Int32 {
        let index = freeHead
        freeHead = slots[Int(index)].laneNext
        slots[Int(index)].laneNext = -1
        slots[Int(index)].lanePrev = -1
        slots[Int(index)].ageNext = -1
        slots[Int(index)].agePrev = -1
        return index
    }

    private mutating func freeSlot(_ index: Int32) {
        slots[Int(index)].kind = .free
        slots[Int(index)].laneNext = freeHead
        freeHead = index
    }

    /// The lane entry with tunnel sequence `seq`, or -1 (only lost-markers are looked up).
    private func find(_ seq: TunnelSequence, lane: Int) -> Int32 {
        var i = laneTail[lane]
        while i >= 0 {
            let s = TunnelSequence(slots[Int(i)].sequence)
            if s == seq { return i }
            if s.precedes(seq) { return -1 }
            i = slots[Int(i)].lanePrev
        }
        return -1
    }

    /// Files an entry in its lane, which stays sorted by tunnel sequence. Most arrivals belong
    /// at the tail (the fast path) or near the head (the slow path filling the oldest gap):
    /// the walk starts at the closer end.
    private mutating func linkLaneSorted(_ index: Int32, lane: Int) {
        let seq = TunnelSequence(slots[Int(index)].sequence)
        let head = laneHead[lane]
        let tail = laneTail[lane]
        guard head >= 0 else {
            laneHead[lane] = index
            laneTail[lane] = index
            return
        }
        let tailSeq = TunnelSequence(slots[Int(tail)].sequence)
        let headSeq = TunnelSequence(slots[Int(head)].sequence)
        if tailSeq.precedes(seq) {
            insertLane(index, after: tail, lane: lane)
        } else if seq.precedes(headSeq) {
            insertLane(index, after: -1, lane: lane)
        } else if headSeq.distance(to: seq) <= seq.distance(to: tailSeq) {
            var i = head  // first entry not before seq, walking forward
            while i >= 0, TunnelSequence(slots[Int(i)].sequence).precedes(seq) { i = slots[Int(i)].laneNext }
            insertLane(index, after: i >= 0 ? slots[Int(i)].lanePrev : tail, lane: lane)
        } else {
            var i = tail  // last entry before seq, walking backward
            while i >= 0, !TunnelSequence(slots[Int(i)].sequence).precedes(seq) { i = slots[Int(i)].lanePrev }
            insertLane(index, after: i, lane: lane)
        }
    }

    /// Links `index` after `prev` (-1: at the head).
    private mutating func insertLane(_ index: Int32, after prev: Int32, lane: Int) {
        let next = prev >= 0 ? slots[Int(prev)].laneNext : laneHead[lane]
        slots[Int(index)].lanePrev = prev
        slots[Int(index)].laneNext = next
        if prev >= 0 { slots[Int(prev)].laneNext = index } else { laneHead[lane] = index }
        if next >= 0 { slots[Int(next)].lanePrev = index } else { laneTail[lane] = index }
    }

    private mutating func unlinkLane(_ index: Int32) {
        let lane = Int(slots[Int(index)].lane)
        let prev = slots[Int(index)].lanePrev
        let next = slots[Int(index)].laneNext
        if prev >= 0 { slots[Int(prev)].laneNext = next } else { laneHead[lane] = next }
        if next >= 0 { slots[Int(next)].lanePrev = prev } else { laneTail[lane] = prev }
        slots[Int(index)].lanePrev = -1
        slots[Int(index)].laneNext = -1
    }

    private mutating func appendAge(_ index: Int32) {
        slots[Int(index)].agePrev = ageTail
        slots[Int(index)].ageNext = -1
        if ageTail >= 0 { slots[Int(ageTail)].ageNext = index } else { ageHead = index }
        ageTail = index
    }

    private mutating func unlinkAge(_ index: Int32) {
        let prev = slots[Int(index)].agePrev
        let next = slots[Int(index)].ageNext
        if prev >= 0 { slots[Int(prev)].ageNext = next } else { ageHead = next }
        if next >= 0 { slots[Int(next)].agePrev = prev } else { ageTail = prev }
        slots[Int(index)].agePrev = -1
        slots[Int(index)].ageNext = -1
    }

    // MARK: Housekeeping

    /// Time never goes backwards inside the buffer (arrival order = expiry order).
    private mutating func advanceClock(_ now: Timestamp) -> UInt64 {
        if now.nanoseconds > latestNow { latestNow = now.nanoseconds }
        return latestNow
    }

    /// Looks at one lane per packet: a lane idle for 2^30 tunnel numbers forgets its last
    /// delivered number before serial arithmetic (2^31) could misread it as recent.
    private mutating func sweepIdleLane() {
        let lane = sweepCursor
        sweepCursor = sweepCursor + 1 == TunnelFrame.laneCount ? 0 : sweepCursor + 1
        guard laneAnchor[lane] == .anchored, laneHead[lane] < 0, let highest = duplicates.highest else { return }
        if TunnelSequence(laneLastGlobal[lane]).distance(to: highest) > 1 << 30 { laneAnchor[lane] = .idle }
    }
}
