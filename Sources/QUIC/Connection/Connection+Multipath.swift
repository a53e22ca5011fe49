// draft-ietf-quic-multipath (codepoints of -20, as kept by -21): negotiation, path IDs and their
// connection IDs, opening a path from a new local address and validating it, path status,
// abandoning a path, and the API the daemon uses to add, remove and steer paths.
import Congestion

extension Connection {
    // MARK: - Negotiation (draft-ietf-quic-multipath §2.1)

    /// Called once the peer's transport parameters are known.
    func negotiateMultipath(peer p: TransportParameters) throws {
        guard let ours = config.maxPathID, let theirs = p.initialMaxPathID else { return }
        // draft §2.1: multipath needs non-zero-length connection IDs in both directions.
        guard !sourceCID.isEmpty, !destinationCID.isEmpty else {
            throw TransportError(.protocolViolation, "multipath negotiated with a zero-length connection ID")
        }
        multipath.enabled = true
        multipath.localMaxPathID = ours
        multipath.peerMaxPathID = UInt32(min(theirs, UInt64(UInt32.max)))
        emit(.multipathNegotiated)
    }

    /// How many not-yet-retired path IDs (besides 0) get connection IDs ahead of use.
    static let pathIDsIssuedAhead = 8

    /// Issue connection IDs for path IDs we allow (PATH_NEW_CONNECTION_ID), so the peer can open
    /// paths: two per path ID, for the lowest few path IDs that are not retired. Path IDs are never
    /// reused (draft §2), so a link that flaps walks up the path ID space.
    func issuePathConnectionIDs() {
        guard multipath.enabled, handshakeComplete else { return }
        let limit = min(multipath.localMaxPathID, multipath.peerMaxPathID)
        guard limit >= 1 else { return }
        var ids: [UInt32] = []
        var id: UInt32 = 1
        while id <= limit && ids.count < Self.pathIDsIssuedAhead {
            if !multipath.retiredPathIDs.contains(id) { ids.append(id) }
            if id == UInt32.max { break }
            id += 1
        }
        for id in ids {
            let perPath = min(peerParameters?.activeConnectionIDLimit ?? 2, 2)
            while UInt64(multipath.localCIDs[id, default: [:]].count) < perPath {
                let cid = config.connectionIDGenerator.generate(random: random)
                let seq = multipath.nextLocalCIDSequence[id, default: 0]
                multipath.nextLocalCIDSequence[id] = seq + 1
                multipath.localCIDs[id, default: [:]][seq] = cid
                multipath.pathIDForLocalCID[cid] = id
                multipath.localCIDsToAnnounce.append((id, seq))
                emit(.connectionIDIssued(cid, StatelessResetTokens.token(for: cid, key: config.statelessResetKey)))
            }
        }
    }

    // MARK: - API for the owner (the daemon)

    public var isMultipathEnabled: Bool { multipath.enabled }

    /// Opens a new path from `local` (and optionally a network interface) to `remote` (default:
    /// the initial path's peer address). Returns its path ID, or nil when no path ID is usable yet:
    /// one needs a connection ID from the peer, and the peer must have acknowledged one of ours for
    /// it (draft-21 §3.1: a peer without a connection ID for the path may ignore or delay our
    /// probe, so we do not probe before it can answer). The path is validated with PATH_CHALLENGE before use
    /// (draft-ietf-quic-multipath §3.1, RFC 9000 §8.2). `congestion` picks the path's own
    /// controller (default: the connection's).
    @discardableResult
    public func openPath(
        local: SocketAddress?, remote: SocketAddress? = nil, interface: String? = nil, backup: Bool = false,
        congestion: CongestionAlgorithm? = nil, now: Timestamp
    ) -> UInt32? {
        guard multipath.enabled, handshakeConfirmed, state == .established else { return nil }
        let limit = min(multipath.localMaxPathID, multipath.peerMaxPathID)
        guard limit >= 1 else { return nil }
        // Candidates: path IDs the peer gave connection IDs for, lowest first.
        for id in multipath.peerCIDs.keys.sorted()
        where id >= 1 && id <= limit && paths[id] == nil
            && !multipath.retiredPathIDs.contains(id) && multipath.pathIDsPeerCanAnswer.contains(id)
        {
            guard let (seq, entry) = multipath.peerCIDs[id]?.min(by: { $0.key < $1.key }) else { continue }
            let p = addValidatingPath(
                id: id, remote: remote ?? path.remote, local: local, interface: interface,
                destination: entry.cid, sequence: seq, now: now)
            if let congestion, congestion != p.congestionAlgorithm {
                leaveCoupling(p.congestion)
                p.congestion = makeController(congestion, maxDatagramSize: controllerDatagramSize(p.maxDatagramSize))
                p.congestionAlgorithm = congestion
            }
            p.isBackup = backup
            p.statusToSend = backup
            if backup { p.statusSequence = 1 }
            return id
        }
        if multipath.peerMaxPathID < multipath.localMaxPathID { multipath.pathsBlockedToSend = multipath.peerMaxPathID }
        return nil
    }

    /// Abandons a path (PATH_ABANDON): its unacknowledged data is re-sent on the other paths.
    public func abandonPath(_ id: UInt32, errorCode: UInt64 = 0, now: Timestamp) {
        guard let p = paths[id], p.state != .abandoned, p.state != .closed else { return }
        if id == 0 && !multipath.enabled { return }
        p.abandonToSend = errorCode
        abandon(p, now: now)
    }

    /// Marks a path as backup (carries nothing while an available path works) or available
    /// (PATH_STATUS_BACKUP / PATH_STATUS_AVAILABLE, draft-ietf-quic-multipath §3.3).
    public func setPathBackup(_ id: UInt32, _ backup: Bool) {
        guard let p = paths[id], p.isBackup != backup else { return }
        p.isBackup = backup
        p.statusSequence += 1
        if multipath.enabled { p.statusToSend = true }
    }

    /// The path IDs that exist now, in order.
    public var pathIDs: [UInt32] { pathOrder }

    public func pathStatistics(_ id: UInt32) -> PathStatistics? { paths[id]?.statistics() }

    public var allPathStatistics: [PathStatistics] { pathOrder.compactMap { paths[$0]?.statistics() } }

    // MARK: - Internals

    /// The peer sent on a path ID we have not seen: it is opening a path (draft §3.1).
    func peerOpenedPath(_ id: UInt32, remote: SocketAddress, now: Timestamp) -> Path? {
        guard multipath.enabled, id != 0, id <= multipath.localMaxPathID, !multipath.retiredPathIDs.contains(id),
            let (seq, entry) = multipath.peerCIDs[id]?.min(by: { $0.key < $1.key })
        else { return nil }
        return addValidatingPath(id: id, remote: remote, local: nil, interface: nil, destination: entry.cid, sequence: seq, now: now)
    }

    /// A new path that is validated (PATH_CHALLENGE, RFC 9000 §8.2; draft §3.1) before it carries data.
    private func addValidatingPath(
        id: UInt32, remote: SocketAddress, local: SocketAddress?, interface: String?,
        destination: ConnectionID, sequence: UInt64, now: Timestamp
    ) -> Path {
        let p = Path(
            id: id, remote: remote, local: local, interface: interface, state: .validating,
            addressValidated: false, maxDatagramSize: initialPathMTU, mtu: makePathMTUDiscovery(),
            congestion: makeController(congestionDefault, maxDatagramSize: controllerDatagramSize(initialPathMTU)),
            congestionAlgorithm: congestionDefault, ecnEnabled: config.ecn,
            destinationCID: destination, destinationCIDSequence: sequence)
        p.challenge = random.nextUInt64()
        p.challengeNeedsSending = true
        paths[id] = p
        qlog?.record(
            time: now, name: "quic:path_assigned",
            data: "{\"path_id\":\(id),\"path_remote\":\(QlogWriter.quote(remote.description))}")
        return p
    }

    func activate(_ p: Path, now: Timestamp) {
        guard p.state == .validating else { return }
        p.state = .active
        emit(.pathValidated(pathID: p.id))
        qlog?.record(time: now, name: "quic:path_updated", data: "{\"path_id\":\(p.id),\"state\":\"active\"}")
    }

    func onPathValidationFailed(_ p: Path, now: Timestamp) {
        p.challenge = nil
        p.challengeNeedsSending = false
        if p.id == 0 { return }  // a rebinding that did not validate: keep sending as before
        p.abandonToSend = 0
        abandon(p, now: now)
    }

    /// draft §3.4: stop using the path, re-send what it carried elsewhere, drop it after 3 PTOs.
    func abandon(_ p: Path, now: Timestamp) {
        p.state = .abandoned
        p.abandonDeadline = now + p.rtt.probeTimeout(maxAckDelay: peerMaxAckDelay) * 3
        // Everything in flight on the path is treated as lost: stream data and control frames are
        // re-sent on the remaining paths (datagrams are not: RFC 9221 §5.2).
        for sent in p.space.discardSent() {
            for f in sent.frames { onFrameLost(f, space: p.space) }
        }
        p.bytesInFlight = 0
        p.lossDetectionDeadline = nil
        p.pacingDeadline = nil
        p.challenge = nil
        p.challengeNeedsSending = false
        p.space.ackPending = false
        p.space.ackDeadline = nil
        // Its queued datagrams move to the connection queue so the scheduler can reroute them.
        for d in p.urgentDatagrams.drain() + p.datagrams.drain() {
            if let dropped = datagramsToSend.append(d, limit: config.datagramSendQueueLimit) { releaseSlot(of: dropped) }
        }
        emit(.pathClosed(pathID: p.id))
        qlog?.record(time: now, name: "quic:path_updated", data: "{\"path_id\":\(p.id),\"state\":\"abandoned\"}")
    }

    func forgetPath(_ p: Path) {
        p.abandonDeadline = nil
        p.state = .closed
        guard p.id != 0 else { return }
        for d in p.urgentDatagrams.drain() + p.datagrams.drain() { releaseSlot(of: d) }
        leaveCoupling(p.congestion)
        paths[p.id] = nil
        multipath.retiredPathIDs.insert(p.id)
        for (_, cid) in multipath.localCIDs[p.id] ?? [:] {
            multipath.pathIDForLocalCID[cid] = nil
            emit(.connectionIDRetired(cid))
        }
        multipath.localCIDs[p.id] = nil
        multipath.peerCIDs[p.id] = nil
        multipath.pathIDsPeerCanAnswer.remove(p.id)
        // The retired path ID frees room for the next one.
        issuePathConnectionIDs()
    }

    func handleMultipathFrame(_ frame: Frame, arrivedOn packetPath: Path, now: Timestamp) throws {
        switch frame {
        case .pathAck(let id, let ack):
            guard id <= UInt64(UInt32.max) else {
                throw TransportError(.protocolViolation, frameType: FrameType.pathAck, "path ID out of range")
            }
            guard let p = paths[UInt32(id)] else { return }  // already forgotten
            try onAckReceived(ack, space: p.space, path: p, now: now)
        case .pathAbandon(let id, _):
            guard id <= UInt64(multipath.localMaxPathID) || (id <= UInt64(UInt32.max) && paths[UInt32(id)] != nil) else {
                throw TransportError(.protocolViolation, frameType: FrameType.pathAbandon, "PATH_ABANDON for unknown path ID \(id)")
            }
            if let p = paths[UInt32(id)], p.state != .abandoned, p.state != .closed {
                // draft §3.4: answer with our own PATH_ABANDON.
                p.abandonToSend = 0
                abandon(p, now: now)
            }
        case .pathStatusBackup(let id, let seq), .pathStatusAvailable(let id, let seq):
            guard let p = paths[UInt32(truncatingIfNeeded: id)], id <= UInt64(UInt32.max) else { return }
            // draft §3.3: only a status with a higher sequence number than the last one counts.
            if let last = p.peerStatusSequence, seq <= last { return }
            p.peerStatusSequence = seq
            var backup = false
            if case .pathStatusBackup = frame { backup = true }
            p.peerBackup = backup
            emit(.peerPathStatus(pathID: p.id, backup: backup))
        case .pathNewConnectionID(0, let f):
            // draft-21 §3.2: path 0's connection IDs are one set, whichever frame carries them.
            try handleNewConnectionID(f, frameType: FrameType.pathNewConnectionID)
        case .pathNewConnectionID(let id, let f):
            // draft §4.6: connection IDs for a path ID above our limit are a PROTOCOL_VIOLATION.
            guard id <= UInt64(multipath.localMaxPathID) else {
                throw TransportError(.protocolViolation, frameType: FrameType.pathNewConnectionID, "path ID \(id) above our maximum")
            }
            let pid = UInt32(id)
            if multipath.retiredPathIDs.contains(pid) { return }
            var table = multipath.peerCIDs[pid] ?? [:]
            if let existing = table[f.sequenceNumber], existing.cid != f.connectionID {
                throw TransportError(.protocolViolation, frameType: FrameType.pathNewConnectionID, "sequence reused with a different CID")
            }
            table[f.sequenceNumber] = (f.connectionID, f.statelessResetToken)
            for seq in table.keys where seq < f.retirePriorTo {
                table[seq] = nil
                multipath.peerCIDsToRetire.append((pid, seq))
            }
            if UInt64(table.count) > config.activeConnectionIDLimit {
                throw TransportError(.connectionIDLimitError, frameType: FrameType.pathNewConnectionID, "too many CIDs for path \(pid)")
            }
            multipath.peerCIDs[pid] = table
            if let p = paths[pid], table[p.destinationCIDSequence] == nil, let (seq, e) = table.min(by: { $0.key < $1.key }) {
                p.destinationCID = e.cid
                p.destinationCIDSequence = seq
            }
        case .pathRetireConnectionID(0, let seq):
            // draft-21 §3.2: retiring one of path 0's connection IDs, as RETIRE_CONNECTION_ID does.
            try retireLocalConnectionID(seq, frameType: FrameType.pathRetireConnectionID)
        case .pathRetireConnectionID(let id, let seq):
            guard id <= UInt64(UInt32.max) else { return }
            let pid = UInt32(id)
            if let cid = multipath.localCIDs[pid]?.removeValue(forKey: seq) {
                multipath.pathIDForLocalCID[cid] = nil
                emit(.connectionIDRetired(cid))
                issuePathConnectionIDs()
            }
        case .maxPathID(let m):
            // draft §4.7: MAX_PATH_ID never decreases.
            multipath.peerMaxPathID = max(multipath.peerMaxPathID, UInt32(min(m, UInt64(UInt32.max))))
            issuePathConnectionIDs()
        case .pathsBlocked, .pathCIDsBlocked:
            issuePathConnectionIDs()
        default:
            break
        }
    }

    /// Writes pending multipath control frames through `put` (which returns false when full).
    func writeMultipathControlFrames(_ put: (Frame, SentFrame) -> Bool) {
        guard multipath.enabled else { return }
        if multipath.maxPathIDToSend, put(.maxPathID(UInt64(multipath.localMaxPathID)), .maxPathID) {
            multipath.maxPathIDToSend = false
        }
        if let m = multipath.pathsBlockedToSend, put(.pathsBlocked(maximumPathID: UInt64(m)), .ping) {
            multipath.pathsBlockedToSend = nil
        }
        while let (pid, seq) = multipath.localCIDsToAnnounce.first {
            guard let cid = multipath.localCIDs[pid]?[seq] else {
                multipath.localCIDsToAnnounce.removeFirst()
                continue
            }
            let f = NewConnectionIDFrame(
                sequenceNumber: seq, retirePriorTo: 0, connectionID: cid,
                statelessResetToken: StatelessResetTokens.token(for: cid, key: config.statelessResetKey))
            guard put(.pathNewConnectionID(pathID: UInt64(pid), f), .pathNewConnectionID(pathID: pid, sequence: seq)) else { break }
            multipath.localCIDsToAnnounce.removeFirst()
        }
        while let (pid, seq) = multipath.peerCIDsToRetire.first,
            put(.pathRetireConnectionID(pathID: UInt64(pid), sequenceNumber: seq), .pathRetireConnectionID(pathID: pid, sequence: seq))
        {
            multipath.peerCIDsToRetire.removeFirst()
        }
        for p in pathList {
            if p.statusToSend {
                let f: Frame =
                    p.isBackup
                    ? .pathStatusBackup(pathID: UInt64(p.id), sequenceNumber: p.statusSequence)
                    : .pathStatusAvailable(pathID: UInt64(p.id), sequenceNumber: p.statusSequence)
                if put(f, .pathStatus(pathID: p.id)) { p.statusToSend = false }
            }
            if let code = p.abandonToSend, put(.pathAbandon(pathID: UInt64(p.id), errorCode: code), .pathAbandon(pathID: p.id)) {
                p.abandonToSend = nil
            }
        }
    }

    /// Is `p` allowed to carry application data now? Backup paths only when no available path works.
    func carriesData(_ p: Path) -> Bool {
        guard p.isUsable else { return false }
        if !p.isBackup { return true }
        return !pathList.contains { $0.isUsable && !$0.isBackup }
    }
}
