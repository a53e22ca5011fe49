// The VPS's answers to tquicctl: tenants and their paths as JSON or a table, and the runtime
// scheduler and congestion-control changes for every tenant's connection.
import Bonding
import Congestion
import QUIC
import Tunnel

extension VPSDataPlane {
    func control(_ command: ControlCommand, now: Timestamp) -> String {
        switch command {
        case .ping: return "pong\n"
        case .events: return "error: events are the daemon's (Daemon.answer)\n"
        case .status(let json): return json ? JSONText.encode(statusJSON()) : status(now: now)
        case .tenants(let json), .paths(let json): return json ? JSONText.encode(statusJSON().tenants) : tenantsTable()
        case .pathAdd, .pathDelete, .pathSet: return "error: the VPS follows the paths its routers open (use tquicctl on the router)\n"
        case .schedulerSet(let name):
            guard let kind = SchedulerKind(rawValue: name) else { return "error: unknown scheduler \(name)\n" }
            setScheduler(kind)
            return "ok: scheduler \(name) for every tenant\n"
        case .congestionSet(let name):
            guard let algorithm = CongestionAlgorithm(rawValue: name) else { return "error: unknown congestion controller \(name)\n" }
            setCongestion(algorithm)
            return "ok: congestion \(name) on every tenant's paths\n"
        }
    }

    func tenantsTable() -> String {
        var out = "TENANT            STATE          PATHS  FROM TENANT pkts  TO TENANT pkts  SPOOFED  NO ROOM\n"
        for t in statusJSON().tenants {
            func col(_ s: String, _ w: Int) -> String { s.count >= w ? s + " " : s + String(repeating: " ", count: w - s.count) }
            out +=
                col(t.name, 18) + col(t.connected ? "connected" : "not connected", 15) + col(String(t.paths.count), 7)
                + col(String(t.packetsDelivered), 18) + col(String(t.packetsSent), 16) + col(String(t.droppedSourceNotAllowed), 9)
                + String(t.droppedQueueFull + t.droppedNotConnected) + "\n"
            for p in t.paths {
                out +=
                    "  path \(p.pathID.map(String.init) ?? "-") \(p.state) from \(p.remote ?? "-") rtt \(p.rttMs.map { fixed($0, 1) } ?? "-") ms"
                    + " rate \(p.deliveryRateBitsPerSecond.map { fixed($0 / 1e6, 1) } ?? "-") Mbit/s loss \(p.lossRate.map { fixed($0 * 100, 2) } ?? "-")%\n"
            }
        }
        return out
    }
}
