// Several endpoints behind one side of the simulator: e.g. the routers of two competing
// connections that cross the same bottleneck. Each member owns some of the topology's path
// indices; the group translates between the simulator's (global) and the member's (local) index.
import Congestion
import QUIC

public final class SimulatedEndpointGroup: SimulatedEndpoint {
    private let members: [any SimulatedEndpoint]
    /// globalPaths[m][local] = the simulator's path index of member m's local path.
    private let globalPaths: [[Int]]
    private var owner: [Int: (member: Int, local: Int)] = [:]
    private var cursor = 0

    /// - Parameter members: each endpoint with the global path indices of its local paths 0, 1, ...
    public init(_ members: [(endpoint: any SimulatedEndpoint, paths: [Int])]) {
        self.members = members.map(\.endpoint)
        self.globalPaths = members.map(\.paths)
        for (m, entry) in members.enumerated() {
            for (local, global) in entry.paths.enumerated() { owner[global] = (m, local) }
        }
    }

    public func receive(_ datagram: [UInt8], path: Int, now: Timestamp) {
        receive(datagram, path: path, now: now, ecn: .notECT)
    }

    public func receive(_ datagram: [UInt8], path: Int, now: Timestamp, ecn: ECNCodepoint) {
        guard let (m, local) = owner[path] else { return }
        members[m].receive(datagram, path: local, now: now, ecn: ecn)
    }

    /// Members take turns, so one busy sender cannot hide another's datagrams.
    public func poll(now: Timestamp) -> OutgoingDatagram? {
        for k in 0..<members.count {
            let m = (cursor + k) % members.count
            if var out = members[m].poll(now: now) {
                cursor = (m + 1) % members.count
                // A path the member does not have goes nowhere (the simulator counts it unroutable).
                out.path = globalPaths[m].indices.contains(out.path) ? globalPaths[m][out.path] : -1
                return out
            }
        }
        return nil
    }

    public var nextTimeout: Timestamp? { members.compactMap(\.nextTimeout).min() }

    public func handleTimeout(now: Timestamp) {
        for m in members {
            if let t = m.nextTimeout, t <= now { m.handleTimeout(now: now) }
        }
    }
}
