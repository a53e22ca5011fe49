// The router's answers to tquicctl: paths as JSON or a table, and the runtime changes (the
// userspace path manager: add, delete, backup/available; scheduler; congestion control), each
// applied to the running connection without dropping it.
import Bonding
import Congestion
import QUIC
import Tunnel

extension RouterDataPlane {
    func control(_ command: ControlCommand, now: Timestamp) -> String {
        switch command {
        case .ping: return "pong\n"
        case .events: return "error: events are the daemon's (Daemon.answer)\n"
        case .status(let json): return json ? JSONText.encode(statusJSON()) : status(now: now)
        case .paths(let json): return json ? JSONText.encode(statusJSON().paths) : pathsTable()
        case .tenants: return "error: tenants are the VPS's (this is a router)\n"
        case .pathAdd(let name, let backup, let weight):
            guard addWAN(WANConfiguration(interface: name, weight: weight, isBackup: backup, line: 0), now: now) else {
                return "error: \(name) is a WAN already\n"
            }
            return "ok: \(name) added\(backup ? " as a backup" : "")\n"
        case .pathDelete(let name):
            guard removeWAN(named: name, now: now) else { return "error: no WAN \(name)\n" }
            return "ok: \(name) removed\n"
        case .pathSet(let name, let backup):
            guard let w = activeWANIndex(named: name) else { return "error: no WAN \(name)\n" }
            setBackup(w, backup)
            return "ok: \(name) is \(backup ? "a backup" : "available")\n"
        case .schedulerSet(let name):
            guard let kind = SchedulerKind(rawValue: name) else { return "error: unknown scheduler \(name)\n" }
            setScheduler(kind)
            return "ok: scheduler \(name)\n"
        case .congestionSet(let name):
            guard let algorithm = CongestionAlgorithm(rawValue: name) else { return "error: unknown congestion controller \(name)\n" }
            setCongestion(algorithm)
            return "ok: congestion \(name) on every path\n"
        }
    }

    func pathsTable() -> String {
        var out = "WAN        STATE       PATH  RTT ms  MIN ms  CWND      RATE Mbit/s  LOSS %  MTU   SENT      LOST\n"
        for p in statusJSON().paths {
            func col(_ s: String, _ w: Int) -> String { s.count >= w ? s + " " : s + String(repeating: " ", count: w - s.count) }
            var state = (p.up ?? false) ? p.state : "down"
            if p.backup { state += "/b" }
            out +=
                col(p.interface ?? "-", 11) + col(state, 12) + col(p.pathID.map(String.init) ?? "-", 6)
                + col(p.rttMs.map { fixed($0, 1) } ?? "-", 8) + col(p.minRttMs.map { fixed($0, 1) } ?? "-", 8)
                + col(p.congestionWindow.map(String.init) ?? "-", 10)
                + col(p.deliveryRateBitsPerSecond.map { fixed($0 / 1e6, 1) } ?? "-", 13)
                + col(p.lossRate.map { fixed($0 * 100, 2) } ?? "-", 8) + col(p.mtu.map(String.init) ?? "-", 6)
                + col(p.packetsSent.map(String.init) ?? "-", 10) + (p.packetsLost.map(String.init) ?? "-") + "\n"
        }
        return out
    }
}

/// One path's figures for JSON and tables (the VPS uses it too).
func pathJSON(_ s: PathStatistics, interface: String?) -> PathJSON {
    PathJSON(
        interface: interface, pathID: s.id, state: "\(s.state)", up: nil, backup: s.isBackup, dead: nil, remote: s.remote.description,
        rttMs: s.smoothedRTT.milliseconds, minRttMs: s.minRTT.milliseconds, rttVarianceMs: s.rttVariation.milliseconds,
        congestionWindow: s.congestionWindow, bytesInFlight: s.bytesInFlight, deliveryRateBitsPerSecond: s.deliveryRate * 8,
        lossRate: s.lossRate, mtu: s.maxDatagramSize, packetsSent: s.packetsSent, packetsLost: s.packetsLost,
        bytesSent: s.bytesSent, packetsReceived: s.packetsReceived, pacingRateBitsPerSecond: s.pacingRate * 8,
        ecnCongestionExperienced: s.ecnCongestionExperienced, congestionControl: s.congestionControl)
}
