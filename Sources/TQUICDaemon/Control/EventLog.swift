// What `tquicctl monitor` streams, like `ip monitor`: the tunnel's events as they happen (a path
// came, went, changed state or became a backup; the connection or a tenant connected or left; the
// scheduler or congestion controller changed; a control request changed something). The daemon
// compares its status figures every 100 ms (EventDetector) and keeps the last events, numbered;
// the client asks for those after the last number it saw (`events after N`), five times a second.
import Glibc

/// The last `capacity` events, numbered from 1.
struct EventLog {
    struct Event: Equatable {
        var sequence: UInt64
        /// UTC wall-clock time, "HH:MM:SS.mmm".
        var time: String
        var text: String
    }

    let capacity: Int
    private(set) var events: [Event] = []
    private(set) var lastSequence: UInt64 = 0

    init(capacity: Int = 512) {
        self.capacity = capacity
    }

    mutating func append(_ text: String, time: String = EventLog.now()) {
        lastSequence += 1
        events.append(Event(sequence: lastSequence, time: time, text: text))
        if events.count > capacity { events.removeFirst(events.count - capacity) }
    }

    /// The answer to `events after N`: a first line `next M` (the number to ask after next time),
    /// a `lost K` line when events after N were dropped from the log, then one line per event:
    /// "SEQUENCE TIME TEXT".
    func answer(after n: UInt64) -> String {
        var out = "next \(lastSequence)\n"
        if let first = events.first, first.sequence > n + 1 { out += "lost \(first.sequence - n - 1)\n" }
        for e in events where e.sequence > n { out += "\(e.sequence) \(e.time) \(e.text)\n" }
        return out
    }

    static func now() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = ts.tv_sec
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let ms = Int(ts.tv_nsec / 1_000_000)
        return "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(ms < 10 ? "00" : ms < 100 ? "0" : "")\(ms)"
    }
}

/// The events between two status observations of the same role.
enum EventDetector {
    static func events(from old: Observation?, to new: Observation) -> [String] {
        switch (old, new) {
        case (.router(let a)?, .router(let b)): return router(a, b)
        case (.vps(let a)?, .vps(let b)): return vps(a, b)
        case (nil, .router(let b)): return ["started: router, scheduler \(b.scheduler), congestion \(b.congestion)"] + router(nil, b)
        case (nil, .vps(let b)):
            return ["started: vps, scheduler \(b.scheduler), congestion \(b.congestion), \(b.tenants.count) tenants"] + vps(nil, b)
        default: return []
        }
    }

    static func router(_ a: RouterStatusJSON?, _ b: RouterStatusJSON) -> [String] {
        var out: [String] = []
        if let a {
            if a.connected != b.connected {
                out.append(
                    b.connected ? "connected to \(b.server)" : "disconnected from \(b.server)\(b.lastCloseReason.map { ": \($0)" } ?? "")")
            }
            if a.scheduler != b.scheduler { out.append("scheduler \(a.scheduler) -> \(b.scheduler)") }
            if a.congestion != b.congestion { out.append("congestion \(a.congestion) -> \(b.congestion)") }
        } else if b.connected {
            out.append("connected to \(b.server)")
        }
        out += paths(a?.paths ?? [], b.paths, key: { $0.interface ?? "path \($0.pathID.map { "\($0)" } ?? "?")" }, prefix: "")
        return out
    }

    static func vps(_ a: VPSStatusJSON?, _ b: VPSStatusJSON) -> [String] {
        var out: [String] = []
        if let a {
            if a.scheduler != b.scheduler { out.append("scheduler \(a.scheduler) -> \(b.scheduler)") }
            if a.congestion != b.congestion { out.append("congestion \(a.congestion) -> \(b.congestion)") }
        }
        let before = Dictionary((a?.tenants ?? []).map { ($0.name, $0) }, uniquingKeysWith: { x, _ in x })
        for t in b.tenants {
            let old = before[t.name]
            if (old?.connected ?? false) != t.connected {
                out.append(t.connected ? "tenant \(t.name) connected from \(t.remote ?? "?")" : "tenant \(t.name) disconnected")
            }
            out += paths(old?.paths ?? [], t.paths, key: { "path \($0.pathID.map { "\($0)" } ?? "?")" }, prefix: "tenant \(t.name) ")
        }
        return out
    }

    static func paths(_ a: [PathJSON], _ b: [PathJSON], key: (PathJSON) -> String, prefix: String) -> [String] {
        var out: [String] = []
        let before = Dictionary(a.map { (key($0), $0) }, uniquingKeysWith: { x, _ in x })
        let after = Set(b.map(key))
        for p in b {
            let k = key(p)
            guard let o = before[k] else {
                out.append("\(prefix)\(k) added: \(describe(p))")
                continue
            }
            if o.state != p.state || o.up != p.up || o.dead != p.dead {
                out.append("\(prefix)\(k): \(describe(o)) -> \(describe(p))")
            }
            if o.backup != p.backup { out.append("\(prefix)\(k): \(p.backup ? "backup" : "available")") }
            if let m = p.mtu, let n = o.mtu, m != n { out.append("\(prefix)\(k): mtu \(n) -> \(m)") }
        }
        for p in a where !after.contains(key(p)) { out.append("\(prefix)\(key(p)) removed") }
        return out
    }

    static func describe(_ p: PathJSON) -> String {
        var s = p.state
        if p.up == false && p.state != "down" { s += " (link down)" }
        if p.dead == true { s += " (dead)" }
        if let r = p.remote, p.interface == nil { s += " from \(r)" }
        return s
    }
}
