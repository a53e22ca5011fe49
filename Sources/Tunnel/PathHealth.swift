// Which WAN links the tunnel has and which QUIC path each one rides now: opening a path per link
// once multipath is up, declaring a path dead after probe timeouts without an answer (its packets
// are reinjected elsewhere), trying a dead link again now and then under a new path ID (path IDs
// are never reused, draft-ietf-quic-multipath §2), and what the daemon does when an interface
// goes down or comes back.
import Congestion
import QUIC

/// One WAN link of the router (or, on the VPS, one path the peer opened).
public struct TunnelLink: Sendable {
    public var name: String
    /// The local address the link's socket uses (nil: the handshake's path 0, or a VPS path).
    public var local: SocketAddress?
    public var interface: String?
    public var isBackup: Bool
    /// For the `weighted` scheduler.
    public var weight: Int
    /// The QUIC path this link rides now (nil: none yet).
    public internal(set) var pathID: UInt32?
    /// Declared dead (or its interface is down): carries nothing until revived and validated.
    public internal(set) var isDead = false
    /// The interface is administratively down: no revival until `linkUp`.
    public internal(set) var isDown = false
    var lastRevival: Timestamp = .zero

    public init(name: String, local: SocketAddress? = nil, interface: String? = nil, isBackup: Bool = false, weight: Int = 1) {
        self.name = name
        self.local = local
        self.interface = interface
        self.isBackup = isBackup
        self.weight = weight
    }
}

public final class PathHealth {
    public enum Role {
        /// The router: it opens one path per link (link 0 is the handshake's path 0).
        case opensPaths
        /// The VPS: its links are the paths the peer opens, in the order they appear.
        case followsPeer
    }

    public let role: Role
    public private(set) var links: [TunnelLink]
    let configuration: TunnelConfiguration
    /// Paths declared dead since the last call of `takeFailedPaths` (their packets get reinjected).
    private var failedPaths: [UInt32] = []
    public private(set) var deadPathsDeclared = 0
    public private(set) var revivalsAttempted = 0

    public init(role: Role, links: [TunnelLink], configuration: TunnelConfiguration) {
        self.role = role
        self.configuration = configuration
        var l = links
        if role == .opensPaths, !l.isEmpty { l[0].pathID = 0 }
        self.links = l
    }

    /// The link whose path this is.
    public func linkIndex(forPath id: UInt32) -> Int? { links.firstIndex { $0.pathID == id } }

    /// The link's path is dead, or failing (a probe timeout without an answer, not active):
    /// losses there are the outage, not congestion, so its packets are reinjected.
    func isFailing(link i: Int, connection: Connection) -> Bool {
        guard i < links.count, !links[i].isDead, let id = links[i].pathID, let st = connection.pathCondition(id) else { return true }
        return st.consecutiveProbeTimeouts >= 1 || st.state != .active
    }

    func isUsable(link i: Int) -> Bool { i < links.count && !links[i].isDead && !links[i].isDown }

    /// Hands over the paths that failed since the last call (the sender reinjects what they owed).
    func takeFailedPaths(_ body: ([UInt32]) -> Void) {
        guard !failedPaths.isEmpty else { return }
        body(failedPaths)
        failedPaths.removeAll(keepingCapacity: true)
    }

    // MARK: - The daemon's events

    /// The interface of link `i` went down: stop using its path now (no waiting for timeouts).
    public func linkDown(_ i: Int, connection: Connection, now: Timestamp) {
        guard i < links.count, !links[i].isDown else { return }
        links[i].isDown = true
        declareDead(i, connection: connection, now: now)
    }

    /// The interface of link `i` is back (or got an address): try it at once.
    public func linkUp(_ i: Int, connection: Connection, now: Timestamp) {
        guard i < links.count, links[i].isDown else { return }
        links[i].isDown = false
        links[i].lastRevival = now - configuration.revivalInterval
        update(connection: connection, now: now)
    }

    /// A new WAN link (the path manager saw an interface come up); returns its index.
    @discardableResult
    public func addLink(_ link: TunnelLink, connection: Connection, now: Timestamp) -> Int {
        links.append(link)
        update(connection: connection, now: now)
        return links.count - 1
    }

    /// Link `i` becomes a backup (carries traffic only while no other link is usable) or an
    /// available link again (PATH_STATUS_BACKUP / _AVAILABLE to the peer).
    public func setBackup(_ i: Int, _ backup: Bool, connection: Connection) {
        guard i < links.count else { return }
        links[i].isBackup = backup
        if let id = links[i].pathID { connection.setPathBackup(id, backup) }
    }

    // MARK: - Periodic work

    /// After every connection event: open paths for new links, declare dead paths, revive.
    public func update(connection conn: Connection, now: Timestamp) {
        switch role {
        case .followsPeer: followPeer(conn)
        case .opensPaths: openMissingPaths(conn, now: now)
        }
        for i in links.indices {
            guard let id = links[i].pathID, let st = conn.pathCondition(id) else {
                // The path was forgotten (abandoned by either side and gone).
                if links[i].pathID != nil, !links[i].isDead { declareDead(i, connection: conn, now: now) }
                continue
            }
            // The last working path is never given up on timeouts alone: abandoning it would leave
            // nothing to send on, not even the acknowledgements and connection IDs new paths
            // need; QUIC's own probes go on there instead.
            if st.state == .active, st.consecutiveProbeTimeouts >= configuration.deadPathProbeTimeouts, !links[i].isDead,
                hasOtherWorkingPath(than: i, connection: conn)
            {
                declareDead(i, connection: conn, now: now)
            } else if st.state == .closed || st.state == .abandoned, !links[i].isDead {
                links[i].isDead = true
                links[i].lastRevival = now
                failedPaths.append(id)
                deadPathsDeclared += 1
            }
        }
        guard role == .opensPaths else {
            // The peer's paths that are gone for good (abandoned and forgotten) leave the list.
            links.removeAll { l in l.isDead && (l.pathID.map { conn.pathCondition($0) == nil } ?? true) }
            return
        }
        // Revival: try a dead link's address again now and then (validated before use).
        for i in links.indices where links[i].isDead && !links[i].isDown {
            guard now >= links[i].lastRevival + configuration.revivalInterval else { continue }
            links[i].lastRevival = now
            if let old = links[i].pathID, let st = conn.pathCondition(old) {
                if st.state == .active {
                    links[i].isDead = false
                    continue
                }
                if st.state == .validating { continue }
            }
            revivalsAttempted += 1
            if let id = conn.openPath(local: links[i].local, interface: links[i].interface, backup: links[i].isBackup, now: now) {
                links[i].pathID = id
            }
        }
        for i in links.indices where links[i].isDead && !links[i].isDown {
            if let id = links[i].pathID, let st = conn.pathCondition(id), st.state == .active, st.consecutiveProbeTimeouts == 0 {
                links[i].isDead = false
            }
        }
    }

    /// Whether a link other than `i` has an active path without probe timeouts.
    private func hasOtherWorkingPath(than i: Int, connection conn: Connection) -> Bool {
        links.indices.contains { j in
            guard j != i, !links[j].isDead, !links[j].isDown, let id = links[j].pathID, let st = conn.pathCondition(id) else {
                return false
            }
            return st.state == .active && st.consecutiveProbeTimeouts == 0
        }
    }

    private func declareDead(_ i: Int, connection conn: Connection, now: Timestamp) {
        links[i].isDead = true
        links[i].lastRevival = now
        deadPathsDeclared += 1
        if let id = links[i].pathID {
            failedPaths.append(id)
            conn.abandonPath(id, now: now)
        }
    }

    /// The router opens the other links' paths as soon as multipath allows (one per link).
    private func openMissingPaths(_ conn: Connection, now: Timestamp) {
        guard conn.isMultipathEnabled, conn.handshakeConfirmed else { return }
        for i in links.indices where links[i].pathID == nil && !links[i].isDown {
            guard
                let id = conn.openPath(
                    local: links[i].local, interface: links[i].interface, backup: links[i].isBackup,
                    now: now)
            else { break }
            links[i].pathID = id
        }
        if links.first?.isBackup == true { conn.setPathBackup(0, true) }
    }

    /// The VPS: one link per path the peer opened.
    private func followPeer(_ conn: Connection) {
        for id in conn.pathIDs where !links.contains(where: { $0.pathID == id }) {
            var link = TunnelLink(name: "path\(id)", isBackup: conn.pathCondition(id)?.isBackup ?? false)
            link.pathID = id
            links.append(link)
        }
    }
}
