// One direction of one WAN path, running a `LinkModel`: the drop-tail queue, the transmitter, loss
// and propagation. A datagram's way: offer() → outage? → queue full? → serialise → lost? → jitter
// → in flight; complete() at the arrival time → caught by an outage that began meanwhile? → delivered.
import Congestion
import QUIC

/// The link's answer to an offered datagram.
public enum LinkVerdict: Equatable, Sendable {
    /// The datagram will reach the far end at `arrival`, unless an outage begins before then (the
    /// caller learns that from `Link.complete`).
    case accepted(arrival: Timestamp)
    /// The datagram is gone. Random and burst losses still occupied the transmitter: they are lost
    /// on the wire, after serialisation, as on a lossy radio link (netem drops before its queue).
    case dropped(DropReason)
}

/// A one-directional link. Time only moves forward: each `offer` must be at or after the previous
/// one. Decisions that need randomness are made when a datagram is offered, from the link's own
/// seeded streams, so the same offers in the same order give the same verdicts.
public final class Link {
    public let name: String
    public private(set) var model: LinkModel
    public private(set) var statistics: LinkStatistics
    /// Datagrams accepted and not yet passed to `complete`.
    public private(set) var inFlight: Int = 0
    /// When the transmitter finishes the last accepted packet (in the past when idle).
    public private(set) var transmitterBusyUntil: Timestamp = .zero
    /// The queueing delay of the last accepted packet (decides ECN marking).
    public private(set) var lastQueueingDelay: Duration = .zero
    /// The byte the link flipped (`LinkModel.corruptionProbability`) in the last accepted packet,
    /// as an index into it; nil when it arrives intact. The caller applies it to the bytes.
    public private(set) var lastCorruptedByte: Int?

    private var clock: Timestamp = .zero
    private var waiting = FIFO<(start: Timestamp, wireBytes: Int)>()
    private var waitingBytes = 0
    private var pendingOutageStarts: [Timestamp]
    private var lastArrival: Timestamp = .zero
    private var burstStateIsBad = false
    private var jitterOffset: Int64 = 0
    private var jitterValidUntil: Timestamp = .zero

    private var lossRandom: SimRandom
    private var burstRandom: SimRandom
    private var jitterRandom: SimRandom
    private var corruptionRandom: SimRandom

    /// - Parameters:
    ///   - model: what the link does.
    ///   - seed: seeds the link's random streams (loss, burst loss, jitter: one each).
    ///   - name: for reports.
    ///   - seriesInterval: resolution of the utilisation and throughput series (default 10 ms).
    ///   - histogram: layout of the queueing-delay histogram (default 100 µs buckets up to 3 s).
    public init(
        model: LinkModel,
        seed: UInt64,
        name: String = "",
        seriesInterval: Duration = .milliseconds(10),
        histogram: DelayHistogram = DelayHistogram()
    ) {
        self.model = model
        self.name = name
        self.statistics = LinkStatistics(seriesInterval: seriesInterval, histogram: histogram)
        self.pendingOutageStarts = model.outages.map(\.start)
        self.lossRandom = SimRandom(seed: SimRandom.derive(seed, 1))
        self.burstRandom = SimRandom(seed: SimRandom.derive(seed, 2))
        self.jitterRandom = SimRandom(seed: SimRandom.derive(seed, 3))
        self.corruptionRandom = SimRandom(seed: SimRandom.derive(seed, 4))
    }

    // MARK: The datagram's way

    /// Offers a datagram of `bytes` bytes to the link at `now`.
    /// - Precondition: `now` is not before the previous offer.
    /// - Returns: when it will arrive, or why it was dropped (the drop is counted).
    public func offer(bytes: Int, at now: Timestamp) -> LinkVerdict {
        precondition(now >= clock, "link \(name): time went backwards (\(now) < \(clock))")
        advance(to: now)
        statistics.offered.add(bytes)

        guard model.isUp(at: now) else {
            statistics.recordDrop(.outage, size: bytes)
            return .dropped(.outage)
        }

        // Drop-tail queue: a packet that cannot start at once must fit in the queue.
        let wireBytes = bytes + model.overheadBytes
        let start = max(now, transmitterBusyUntil)
        if start > now {
            if let capacity = model.queueCapacityBytes, waitingBytes + wireBytes > capacity {
                statistics.recordDrop(.queueFull, size: bytes)
                return .dropped(.queueFull)
            }
            waiting.append((start, wireBytes))
            waitingBytes += wireBytes
            statistics.maxQueuedBytes = max(statistics.maxQueuedBytes, waitingBytes)
        }

        // Transmitter.
        let departure = serialisationEnd(start: start, bits: UInt64(wireBytes) * 8)
        transmitterBusyUntil = departure
        statistics.addBusy(from: start, to: departure)
        statistics.queueingDelay.record(start - now)
        lastQueueingDelay = start - now

        // Loss on the wire.
        if let burst = model.burstLoss {
            let lost = burstRandom.chance(burstStateIsBad ? burst.lossInBad : burst.lossInGood)
            burstStateIsBad =
                burstStateIsBad
                ? !burstRandom.chance(burst.badToGood)
                : burstRandom.chance(burst.goodToBad)
            if lost {
                statistics.recordDrop(.burstLoss, size: bytes)
                return .dropped(.burstLoss)
            }
        }
        if model.lossProbability > 0 && lossRandom.chance(model.lossProbability) {
            statistics.recordDrop(.randomLoss, size: bytes)
            return .dropped(.randomLoss)
        }

        // Corruption of a packet that will arrive (one byte, uniformly chosen).
        lastCorruptedByte = nil
        if model.corruptionProbability > 0 && bytes > 0 && corruptionRandom.chance(model.corruptionProbability) {
            lastCorruptedByte = Int(corruptionRandom.nextInclusive(UInt64(bytes - 1)))
            statistics.corrupted += 1
        }

        // Propagation.
        var arrival = departure + propagationDelay(departure: departure)
        if model.jitter.ordering == .preserved { arrival = max(arrival, lastArrival) }
        lastArrival = max(lastArrival, arrival)
        inFlight += 1
        return .accepted(arrival: arrival)
    }

    /// The codepoint an accepted packet that was offered with `ecn` arrives with.
    public func marking(_ ecn: ECNCodepoint) -> ECNCodepoint {
        guard ecn == .ect0 || ecn == .ect1, let threshold = model.ecnMarkingThreshold, lastQueueingDelay >= threshold else { return ecn }
        statistics.ceMarked += 1
        return .ce
    }

    /// Ends the flight of a datagram accepted at `enteredAt`, at its arrival time `now`.
    /// - Returns: true if it reached the far end; false if an outage began while it was queued or in
    ///   flight (counted as an outage drop).
    public func complete(bytes: Int, enteredAt: Timestamp, at now: Timestamp) -> Bool {
        inFlight -= 1
        if model.outages.contains(where: { $0.start > enteredAt && $0.start <= now }) {
            statistics.recordDrop(.outage, size: bytes)
            return false
        }
        statistics.delivered.add(bytes)
        statistics.addDelivered(bytes: bytes, at: now)
        return true
    }

    // MARK: Schedule

    public func rate(at time: Timestamp) -> UInt64 { model.rate(at: time) }
    public func isUp(at time: Timestamp) -> Bool { model.isUp(at: time) }

    /// Wire bytes waiting for the transmitter at `time` (not counting the packet being serialised).
    public func queuedBytes(at time: Timestamp) -> Int {
        var bytes = 0
        for entry in waiting where entry.start > time { bytes += entry.wireBytes }
        return bytes
    }

    /// Cuts the link for `outage`, which must not start before the latest offer. Packets already
    /// accepted are lost if they have not arrived by its start (checked in `complete`); one that
    /// starts exactly at the latest offer's instant spares the packets offered then (they came first).
    public func addOutage(_ outage: Outage) {
        precondition(outage.start >= clock, "link \(name): an outage cannot start in the past")
        model.addOutage(outage)
        pendingOutageStarts.append(outage.start)
        pendingOutageStarts.sort()
    }

    /// Changes the rate at `change.time`, which must not be before the latest offer. Packets already
    /// accepted keep the departure time they were given; only later packets see the change.
    public func addRateChange(_ change: RateChange) {
        precondition(change.time >= clock, "link \(name): a rate change cannot be in the past")
        model.addRateChange(change)
    }

    /// Moves the link's clock to `now`: packets whose serialisation has started leave the queue, and
    /// every outage that began since the last offer empties the queue and stops the transmitter.
    /// `offer` does this itself; call it before reading `statistics` at the end of a run so that
    /// busy time cut short by an outage is not counted.
    public func advance(to now: Timestamp) {
        guard now >= clock else { return }
        while let outageStart = pendingOutageStarts.first, outageStart <= now {
            pendingOutageStarts.removeFirst()
            if transmitterBusyUntil > outageStart {
                statistics.addBusy(from: outageStart, to: transmitterBusyUntil, sign: -1)
                transmitterBusyUntil = outageStart
            }
            waiting.removeAll()
            waitingBytes = 0
            lastArrival = min(lastArrival, outageStart)
        }
        while let head = waiting.first, head.start <= now {
            waitingBytes -= head.wireBytes
            waiting.removeFirst()
        }
        clock = now
    }

    // MARK: Internals

    /// When `bits` bits starting at `start` finish serialising, integrating across scheduled rate
    /// changes. Rounds up to the next nanosecond; a rate of 0 (unlimited) takes no time.
    private func serialisationEnd(start: Timestamp, bits: UInt64) -> Timestamp {
        var t = start
        var remaining = bits
        var index = model.rateChanges.firstIndex { $0.time > start } ?? model.rateChanges.count
        var rate = model.rate(at: start)
        while true {
            if rate == 0 { return t }
            let needed = Self.mulDivUp(remaining, 1_000_000_000, rate)
            guard index < model.rateChanges.count else { return t + Duration(nanoseconds: needed) }
            let change = model.rateChanges[index]
            let segment = (change.time - t).nanoseconds
            if needed <= segment { return t + Duration(nanoseconds: needed) }
            remaining -= min(remaining, Self.mulDiv(segment, rate, 1_000_000_000))
            t = change.time
            rate = change.rateBitsPerSecond
            index += 1
            if remaining == 0 { return t }
        }
    }

    private func propagationDelay(departure: Timestamp) -> Duration {
        let jitter = model.jitter
        guard jitter.amplitude.nanoseconds > 0 else { return model.delay }
        if jitter.holdTime.nanoseconds == 0 || departure >= jitterValidUntil {
            let a = jitter.amplitude.nanoseconds
            switch jitter.distribution {
            case .symmetric: jitterOffset = Int64(jitterRandom.nextInclusive(2 * a)) - Int64(a)
            case .positive: jitterOffset = Int64(jitterRandom.nextInclusive(a))
            }
            jitterValidUntil = departure + jitter.holdTime
        }
        let total = Int64(model.delay.nanoseconds) + jitterOffset
        return Duration(nanoseconds: UInt64(max(0, total)))
    }

    /// a·b/c rounded down, without intermediate overflow (the quotient must fit in 64 bits).
    static func mulDiv(_ a: UInt64, _ b: UInt64, _ c: UInt64) -> UInt64 {
        let product = a.multipliedFullWidth(by: b)
        guard product.high < c else { return .max }
        return c.dividingFullWidth((product.high, product.low)).quotient
    }

    /// a·b/c rounded up.
    static func mulDivUp(_ a: UInt64, _ b: UInt64, _ c: UInt64) -> UInt64 {
        let product = a.multipliedFullWidth(by: b)
        guard product.high < c else { return .max }
        let (q, r) = c.dividingFullWidth((product.high, product.low))
        return r > 0 ? q + 1 : q
    }
}

/// A first-in first-out queue over an array with a moving head (amortised O(1) at both ends).
struct FIFO<Element>: Sequence {
    private var storage: [Element] = []
    private var head = 0

    var isEmpty: Bool { head == storage.count }
    var count: Int { storage.count - head }
    var first: Element? { isEmpty ? nil : storage[head] }

    mutating func append(_ element: Element) { storage.append(element) }

    mutating func removeFirst() {
        head += 1
        if head == storage.count {
            storage.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1024 && head * 2 >= storage.count {
            storage.removeFirst(head)
            head = 0
        }
    }

    mutating func removeAll() {
        storage.removeAll(keepingCapacity: true)
        head = 0
    }

    func makeIterator() -> ArraySlice<Element>.Iterator {
        storage[head...].makeIterator()
    }
}
