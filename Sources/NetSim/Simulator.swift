// The discrete-event loop: a router and a VPS endpoint joined by N paths, each an uplink
// (router → VPS) and a downlink (VPS → router). The simulator owns the clock, the event queue and
// the randomness; it delivers datagrams, fires endpoint timers and runs scheduled actions (traffic
// sources), polling the endpoint concerned after each, and otherwise jumps to the next event.
import Congestion
import QUIC

// MARK: - Endpoints

/// A sans-I/O endpoint the simulator can drive: the shape of a QUIC connection with one UDP socket
/// per WAN path (quinn-proto's handle_event / poll_transmit / poll_timeout / handle_timeout).
///
/// Path `i` of the router reaches path `i` of the VPS; the endpoint names the path a datagram leaves
/// on, and learns the path one arrived on. The simulator never calls an endpoint re-entrantly.
public protocol SimulatedEndpoint: AnyObject {
    /// A datagram arrived on path `path` at `now`.
    func receive(_ datagram: [UInt8], path: Int, now: Timestamp)
    /// Like `receive`, with the datagram's ECN codepoint; endpoints that ignore ECN need not
    /// implement it.
    func receive(_ datagram: [UInt8], path: Int, now: Timestamp, ecn: ECNCodepoint)
    /// The next datagram to send at `now`, or nil when there is nothing to send now (idle, blocked by
    /// the congestion window, or waiting for the pacer: then `nextTimeout` says when to ask again).
    /// Called repeatedly until it returns nil after every event that concerns this endpoint.
    func poll(now: Timestamp) -> OutgoingDatagram?
    /// The earliest time the endpoint wants `handleTimeout`, or nil for none.
    var nextTimeout: Timestamp? { get }
    /// Called at (or, if the endpoint asked for a time already past, just after) `nextTimeout`.
    func handleTimeout(now: Timestamp)
}

extension SimulatedEndpoint {
    public func receive(_ datagram: [UInt8], path: Int, now: Timestamp, ecn: ECNCodepoint) {
        receive(datagram, path: path, now: now)
    }
}

/// A datagram an endpoint sends, the index of the path (socket) it leaves on, and its ECN codepoint.
public struct OutgoingDatagram: Sendable, Equatable {
    public var bytes: [UInt8]
    public var path: Int
    public var ecn: ECNCodepoint

    public init(_ bytes: [UInt8], path: Int, ecn: ECNCodepoint = .notECT) {
        self.bytes = bytes
        self.path = path
        self.ecn = ecn
    }
}

public enum EndpointRole: String, Sendable, CaseIterable {
    /// The customer's router: sends on uplinks, receives from downlinks.
    case router
    /// The server end: sends on downlinks, receives from uplinks.
    case vps
}

// MARK: - Topology

/// Which way a link carries traffic.
public enum LinkDirection: String, Sendable {
    /// Router → VPS.
    case up
    /// VPS → router.
    case down
}

public struct LinkID: Hashable, Sendable, CustomStringConvertible {
    public var path: Int
    public var direction: LinkDirection

    public init(path: Int, direction: LinkDirection) {
        self.path = path
        self.direction = direction
    }

    public var description: String { "path \(path) \(direction.rawValue)" }
}

/// The two links of one WAN path.
public struct PathLinks: Sendable, Equatable {
    public var name: String
    /// Router → VPS.
    public var up: LinkModel
    /// VPS → router.
    public var down: LinkModel
    /// A backup path is meant to carry traffic only while no other path is usable (the simulator
    /// does not enforce this; `Scenario` uses it to compute the available capacity).
    public var isBackup: Bool
    /// Paths with the same bottleneck number share one `Link` per direction (the first such
    /// path's models): two WAN paths behind one DSL line, or two connections on one link.
    public var bottleneck: Int?

    public init(name: String = "", up: LinkModel, down: LinkModel, isBackup: Bool = false, bottleneck: Int? = nil) {
        self.name = name
        self.up = up
        self.down = down
        self.isBackup = isBackup
        self.bottleneck = bottleneck
    }

    /// A path whose two directions have the same model.
    public static func symmetric(_ model: LinkModel, name: String = "", isBackup: Bool = false) -> PathLinks {
        PathLinks(name: name, up: model, down: model, isBackup: isBackup)
    }
}

/// What to simulate: a router endpoint, a VPS endpoint and the paths between them.
public struct Topology {
    public var router: any SimulatedEndpoint
    public var vps: any SimulatedEndpoint
    public var paths: [PathLinks]

    public init(router: any SimulatedEndpoint, vps: any SimulatedEndpoint, paths: [PathLinks]) {
        self.router = router
        self.vps = vps
        self.paths = paths
    }
}

/// A running path: its two `Link`s.
public struct SimulatedPath {
    public let name: String
    public let isBackup: Bool
    public let up: Link
    public let down: Link

    public func link(_ direction: LinkDirection) -> Link {
        direction == .up ? up : down
    }
}

// MARK: - Observation and errors

/// Every datagram's fate, for traces and per-path accounting.
public enum SimulatorEvent: Sendable, Equatable {
    case sent(LinkID, size: Int, at: Timestamp)
    case delivered(LinkID, size: Int, sentAt: Timestamp, at: Timestamp)
    case dropped(LinkID, size: Int, reason: DropReason, at: Timestamp)
}

public enum SimulatorError: Error, Equatable, CustomStringConvertible {
    /// More than `maxEventsPerInstant` events happened without the clock moving.
    case livelock(at: Timestamp, events: Int)
    /// An endpoint returned more than `maxDatagramsPerPoll` datagrams from one round of polling.
    case runawayEndpoint(EndpointRole, at: Timestamp, datagrams: Int)

    public var description: String {
        switch self {
        case .livelock(let at, let events):
            return "livelock: \(events) events at \(at) without time advancing"
        case .runawayEndpoint(let role, let at, let datagrams):
            return "runaway endpoint: the \(role.rawValue) sent \(datagrams) datagrams at \(at) without stopping"
        }
    }
}

public struct SimulatorDiagnostics: Sendable, Equatable {
    public internal(set) var eventsProcessed = 0
    public internal(set) var datagramsSent = 0
    public internal(set) var datagramsDelivered = 0
    public internal(set) var timersFired = 0
    /// Timers fired late because the endpoint asked for a time already in the past.
    public internal(set) var staleTimeouts = 0
    public internal(set) var actionsRun = 0
    /// Datagrams for a path index the topology does not have (dropped).
    public internal(set) var unroutableDatagrams = 0
    /// Most events processed at a single instant.
    public internal(set) var maxEventsAtOneInstant = 0
}

/// A scheduled action; `cancel()` stops it (and, for a repeating one, every later run).
public final class ScheduledAction {
    public private(set) var isCancelled = false
    fileprivate let body: (Simulator) -> Void
    fileprivate let interval: Duration?
    fileprivate let end: Timestamp?

    fileprivate init(body: @escaping (Simulator) -> Void, interval: Duration?, end: Timestamp?) {
        self.body = body
        self.interval = interval
        self.end = end
    }

    public func cancel() { isCancelled = true }
}

// MARK: - Simulator

/// A deterministic discrete-event simulation of a router and a VPS joined by N paths.
///
/// Time advances only from one event to the next: a datagram arriving, an endpoint timer, or a
/// scheduled action. Events at the same instant are taken in this order: queued events (arrivals and
/// actions) in the order they were scheduled, then the router's timer, then the VPS's. After each
/// event the endpoint concerned is polled until it has nothing to send (both after an action).
/// Given the same topology, seed and actions, every run is identical.
public final class Simulator {
    public private(set) var now: Timestamp
    public let seed: UInt64
    /// Randomness for traffic sources and other actions (independent of the links' streams).
    public var random: SimRandom
    public let router: any SimulatedEndpoint
    public let vps: any SimulatedEndpoint
    public let paths: [SimulatedPath]
    /// Events allowed at one instant before `SimulatorError.livelock` is thrown.
    public var maxEventsPerInstant = 100_000
    /// Datagrams one endpoint may return from one round of polling before
    /// `SimulatorError.runawayEndpoint` is thrown.
    public var maxDatagramsPerPoll = 100_000
    /// Sees every datagram sent, delivered and dropped.
    public var observer: ((SimulatorEvent) -> Void)?
    public private(set) var diagnostics = SimulatorDiagnostics()

    private enum Event {
        case arrival(LinkID, datagram: [UInt8], enteredAt: Timestamp, ecn: ECNCodepoint)
        case action(ScheduledAction)
    }

    private enum Due {
        case queued
        case timer(EndpointRole)
    }

    private var queue = EventQueue<Event>()
    private var started = false
    private var currentInstant: Timestamp
    private var eventsAtInstant = 0
    /// The instant each endpoint's timer last fired, until the endpoint gets new input: a timer
    /// still due at that instant is not fired again then (so a stale timeout cannot spin).
    private var routerTimerFiredAt: Timestamp?
    private var vpsTimerFiredAt: Timestamp?

    /// - Parameters:
    ///   - topology: the endpoints and the paths.
    ///   - seed: everything random in the run derives from it; each link's streams come from
    ///     (seed, path, direction), so adding a path does not change the others' draws.
    ///   - start: the initial clock.
    public init(topology: Topology, seed: UInt64, start: Timestamp = .zero) {
        self.seed = seed
        self.now = start
        self.currentInstant = start
        self.router = topology.router
        self.vps = topology.vps
        self.random = SimRandom(seed: SimRandom.derive(seed, 0x5EED))
        var shared: [Int: SimulatedPath] = [:]
        self.paths = topology.paths.enumerated().map { index, path in
            let base = UInt64(index) * 2
            let name = path.name.isEmpty ? "path\(index)" : path.name
            if let b = path.bottleneck, let first = shared[b] {
                return SimulatedPath(name: name, isBackup: path.isBackup, up: first.up, down: first.down)
            }
            let made = SimulatedPath(
                name: name,
                isBackup: path.isBackup,
                up: Link(model: path.up, seed: SimRandom.derive(seed, base + 1), name: "\(name) up"),
                down: Link(model: path.down, seed: SimRandom.derive(seed, base + 2), name: "\(name) down")
            )
            if let b = path.bottleneck { shared[b] = made }
            return made
        }
    }

    public func link(_ id: LinkID) -> Link {
        paths[id.path].link(id.direction)
    }

    public func endpoint(_ role: EndpointRole) -> any SimulatedEndpoint {
        role == .router ? router : vps
    }

    // MARK: Scheduling actions (traffic sources, link changes, checks)

    /// Runs `body` once at `time` (or now, if `time` has passed).
    @discardableResult
    public func schedule(at time: Timestamp, _ body: @escaping (Simulator) -> Void) -> ScheduledAction {
        let action = ScheduledAction(body: body, interval: nil, end: nil)
        queue.push(.action(action), at: max(time, now))
        return action
    }

    /// Runs `body` once, `delay` from now.
    @discardableResult
    public func schedule(after delay: Duration, _ body: @escaping (Simulator) -> Void) -> ScheduledAction {
        schedule(at: now + delay, body)
    }

    /// Runs `body` every `interval`, first at `start` (default: now), last at or before `end` (default:
    /// forever). This is the hook for traffic sources: a closure that hands the router (or the VPS)
    /// a tunnel packet each time, e.g. every 20 ms for a 50 packet/s VoIP-like flow.
    /// - Precondition: `interval` is positive.
    @discardableResult
    public func every(
        _ interval: Duration,
        from start: Timestamp? = nil,
        until end: Timestamp? = nil,
        _ body: @escaping (Simulator) -> Void
    ) -> ScheduledAction {
        precondition(interval.nanoseconds > 0, "a repeating action needs a positive interval")
        let action = ScheduledAction(body: body, interval: interval, end: end)
        let first = max(start ?? now, now)
        if end.map({ first <= $0 }) ?? true {
            queue.push(.action(action), at: first)
        }
        return action
    }

    // MARK: Running

    /// Processes the next event, if any.
    /// - Returns: false when nothing is left to happen (no queued event, no endpoint timer).
    @discardableResult
    public func step() throws -> Bool {
        try startIfNeeded()
        guard let (time, due) = nextDue() else { return false }
        try process(due, at: time)
        return true
    }

    /// Processes every event up to and including `deadline`, then sets the clock to `deadline`.
    public func run(until deadline: Timestamp) throws {
        try startIfNeeded()
        while let (time, due) = nextDue(), time <= deadline {
            try process(due, at: time)
        }
        if deadline > now { now = deadline }
        for path in paths {
            path.up.advance(to: now)
            path.down.advance(to: now)
        }
    }

    /// Runs for `duration` from the current time.
    public func run(for duration: Duration) throws {
        try run(until: now + duration)
    }

    /// The time of the next event, or nil when nothing is left to happen.
    public var nextEventTime: Timestamp? { nextDue()?.time }

    private func startIfNeeded() throws {
        guard !started else { return }
        started = true
        try poll(.router)
        try poll(.vps)
    }

    private func nextDue() -> (time: Timestamp, due: Due)? {
        var best: (time: Timestamp, due: Due)? = queue.nextTime.map { ($0, .queued) }
        if let due = timerDue(.router), best.map({ due < $0.time }) ?? true { best = (due, .timer(.router)) }
        if let due = timerDue(.vps), best.map({ due < $0.time }) ?? true { best = (due, .timer(.vps)) }
        return best
    }

    /// When the endpoint's timer is due: its `nextTimeout`, or now if that has passed, unless the
    /// timer already fired at this instant and the endpoint got no input since.
    private func timerDue(_ role: EndpointRole) -> Timestamp? {
        guard let timeout = endpoint(role).nextTimeout else { return nil }
        guard timeout <= now else { return timeout }
        return timerFiredAt(role) == now ? nil : now
    }

    private func timerFiredAt(_ role: EndpointRole) -> Timestamp? {
        role == .router ? routerTimerFiredAt : vpsTimerFiredAt
    }

    private func setTimerFiredAt(_ role: EndpointRole, _ time: Timestamp?) {
        if role == .router { routerTimerFiredAt = time } else { vpsTimerFiredAt = time }
    }

    private func process(_ due: Due, at time: Timestamp) throws {
        try advanceClock(to: time)
        diagnostics.eventsProcessed += 1
        switch due {
        case .queued:
            let event = queue.popFirst()!
            switch event.payload {
            case .arrival(let id, let datagram, let enteredAt, let ecn):
                try deliver(datagram, on: id, enteredAt: enteredAt, ecn: ecn)
            case .action(let action):
                try run(action)
            }
        case .timer(let role):
            let ep = endpoint(role)
            if let timeout = ep.nextTimeout, timeout < now { diagnostics.staleTimeouts += 1 }
            setTimerFiredAt(role, now)
            diagnostics.timersFired += 1
            ep.handleTimeout(now: now)
            try poll(role)
        }
    }

    private func advanceClock(to time: Timestamp) throws {
        if time > now { now = time }
        if now == currentInstant {
            eventsAtInstant += 1
        } else {
            currentInstant = now
            eventsAtInstant = 1
        }
        diagnostics.maxEventsAtOneInstant = max(diagnostics.maxEventsAtOneInstant, eventsAtInstant)
        if eventsAtInstant > maxEventsPerInstant {
            throw SimulatorError.livelock(at: now, events: eventsAtInstant)
        }
    }

    private func run(_ action: ScheduledAction) throws {
        guard !action.isCancelled else { return }
        diagnostics.actionsRun += 1
        action.body(self)
        if let interval = action.interval, !action.isCancelled {
            let next = now + interval
            if action.end.map({ next <= $0 }) ?? true {
                queue.push(.action(action), at: next)
            }
        }
        routerTimerFiredAt = nil
        vpsTimerFiredAt = nil
        try poll(.router)
        try poll(.vps)
    }

    private func deliver(_ datagram: [UInt8], on id: LinkID, enteredAt: Timestamp, ecn: ECNCodepoint) throws {
        let link = self.link(id)
        guard link.complete(bytes: datagram.count, enteredAt: enteredAt, at: now) else {
            observer?(.dropped(id, size: datagram.count, reason: .outage, at: now))
            return
        }
        diagnostics.datagramsDelivered += 1
        observer?(.delivered(id, size: datagram.count, sentAt: enteredAt, at: now))
        let receiver: EndpointRole = id.direction == .up ? .vps : .router
        setTimerFiredAt(receiver, nil)
        endpoint(receiver).receive(datagram, path: id.path, now: now, ecn: ecn)
        try poll(receiver)
    }

    /// Takes datagrams from `role` until it has none, and puts each on its link.
    private func poll(_ role: EndpointRole) throws {
        let ep = endpoint(role)
        let direction: LinkDirection = role == .router ? .up : .down
        var count = 0
        while let out = ep.poll(now: now) {
            count += 1
            if count > maxDatagramsPerPoll {
                throw SimulatorError.runawayEndpoint(role, at: now, datagrams: count)
            }
            guard paths.indices.contains(out.path) else {
                diagnostics.unroutableDatagrams += 1
                continue
            }
            diagnostics.datagramsSent += 1
            let id = LinkID(path: out.path, direction: direction)
            let size = out.bytes.count
            observer?(.sent(id, size: size, at: now))
            switch link(id).offer(bytes: size, at: now) {
            case .accepted(let arrival):
                var bytes = out.bytes
                if let index = link(id).lastCorruptedByte { bytes[index] ^= 0xFF }
                queue.push(.arrival(id, datagram: bytes, enteredAt: now, ecn: link(id).marking(out.ecn)), at: arrival)
            case .dropped(let reason):
                observer?(.dropped(id, size: size, reason: reason, at: now))
            }
        }
    }
}
