// The control socket's requests, one line each (tquicctl sends them): what to show and what to
// change in the running tunnel. Parsing is separate from acting so it is tested alone; the data
// planes act (RouterDataPlane, VPSDataPlane). Changes apply to the running connection without
// dropping it and last until the next restart or reload (the file is not rewritten).
public enum ControlCommand: Equatable, Sendable {
    case ping
    case status(json: Bool)
    case paths(json: Bool)
    case tenants(json: Bool)
    case pathAdd(interface: String, backup: Bool, weight: Int)
    case pathDelete(interface: String)
    case pathSet(interface: String, backup: Bool)
    case schedulerSet(String)
    case congestionSet(String)
    /// `tquicctl monitor`: the events after sequence number N (EventLog.swift).
    case events(after: UInt64)

    /// Whether the command changes the running tunnel (the daemon logs those).
    public var changesState: Bool {
        switch self {
        case .ping, .status, .paths, .tenants, .events: return false
        case .pathAdd, .pathDelete, .pathSet, .schedulerSet, .congestionSet: return true
        }
    }

    /// The command a request line names, or an error line for the client.
    public static func parse(_ line: String) -> Result<ControlCommand, ControlCommandError> {
        let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
        let json = words.last == "--json" || words.last == "json"
        let w = json ? Array(words.dropLast()) : words
        switch w.first {
        case "ping" where w.count == 1: return .success(.ping)
        case "status" where w.count == 1: return .success(.status(json: json))
        case "events" where w.count == 1: return .success(.events(after: 0))
        case "events" where w.count == 3 && w[1] == "after":
            guard let n = UInt64(w[2]) else { return .failure(.init("usage: events [after N]")) }
            return .success(.events(after: n))
        case "tenants" where w.count == 1: return .success(.tenants(json: json))
        case "paths":
            if w.count == 1 { return .success(.paths(json: json)) }
            guard w.count >= 3 else {
                return .failure(.init("usage: paths [add IFACE [backup] [weight N] | del IFACE | set IFACE backup|available]"))
            }
            let name = w[2]
            guard isInterfaceName(name) else { return .failure(.init("`\(name)` is not an interface name")) }
            switch w[1] {
            case "add":
                var backup = false
                var weight = 1
                var i = 3
                while i < w.count {
                    if w[i] == "backup" || w[i] == "--backup" {
                        backup = true
                        i += 1
                        continue
                    }
                    if w[i] == "weight" || w[i] == "--weight", i + 1 < w.count, let n = Int(w[i + 1]), (1...100).contains(n) {
                        weight = n
                        i += 2
                        continue
                    }
                    return .failure(.init("paths add: unexpected `\(w[i])` (backup, weight 1-100)"))
                }
                return .success(.pathAdd(interface: name, backup: backup, weight: weight))
            case "del" where w.count == 3: return .success(.pathDelete(interface: name))
            case "set" where w.count == 4 && (w[3] == "backup" || w[3] == "available"):
                return .success(.pathSet(interface: name, backup: w[3] == "backup"))
            default:
                return .failure(.init("usage: paths [add IFACE [backup] [weight N] | del IFACE | set IFACE backup|available]"))
            }
        case "scheduler" where w.count == 3 && w[1] == "set":
            let name = w[2].lowercased()
            guard DaemonConfiguration.schedulerNames.contains(name) else {
                return .failure(.init("unknown scheduler `\(w[2])` (known: \(DaemonConfiguration.schedulerNames.joined(separator: ", ")))"))
            }
            return .success(.schedulerSet(name))
        case "congestion" where w.count == 3 && w[1] == "set":
            let name = w[2].lowercased()
            guard DaemonConfiguration.congestionNames.contains(name) else {
                return .failure(
                    .init("unknown congestion controller `\(w[2])` (known: \(DaemonConfiguration.congestionNames.joined(separator: ", ")))")
                )
            }
            return .success(.congestionSet(name))
        default:
            return .failure(
                .init(
                    "unknown request `\(line)` (known: status, paths, tenants, paths add|del|set, scheduler set, congestion set, events, ping)"
                ))
        }
    }

    static func isInterfaceName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 15 && s != "." && s != ".."
            && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }
    }
}

public struct ControlCommandError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    init(_ m: String) { message = m }
    public var description: String { message }
}
