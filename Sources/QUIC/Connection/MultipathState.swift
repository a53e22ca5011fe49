// draft-ietf-quic-multipath bookkeeping that is per connection, not per path: whether the
// extension was negotiated, the path ID limits, and the connection IDs issued per path ID
// (PATH_NEW_CONNECTION_ID / PATH_RETIRE_CONNECTION_ID). Path 0 keeps using the RFC 9000 tables.

struct MultipathState {
    /// Both endpoints sent initial_max_path_id (draft-ietf-quic-multipath §2.1).
    var enabled = false
    /// The largest path ID we allow the peer to use (initial_max_path_id, MAX_PATH_ID).
    var localMaxPathID: UInt32 = 0
    var maxPathIDToSend = false
    /// The largest path ID the peer allows.
    var peerMaxPathID: UInt32 = 0
    /// Connection IDs we issued for path IDs >= 1, by path ID and sequence number.
    var localCIDs: [UInt32: [UInt64: ConnectionID]] = [:]
    var nextLocalCIDSequence: [UInt32: UInt64] = [:]
    var localCIDsToAnnounce: [(pathID: UInt32, sequence: UInt64)] = []
    var pathIDForLocalCID: [ConnectionID: UInt32] = [:]
    /// Path IDs for which the peer acknowledged a PATH_NEW_CONNECTION_ID of ours: it holds a
    /// connection ID to answer on such a path (draft-21 §3.1), so we may open it.
    var pathIDsPeerCanAnswer: Set<UInt32> = []
    /// Connection IDs the peer issued for path IDs >= 1.
    var peerCIDs: [UInt32: [UInt64: (cid: ConnectionID, token: StatelessResetToken)]] = [:]
    var peerCIDsToRetire: [(pathID: UInt32, sequence: UInt64)] = []
    /// Path IDs that were abandoned: never reused (draft-ietf-quic-multipath §2).
    var retiredPathIDs: Set<UInt32> = []
    /// Path statuses / abandons to (re)send are kept on the paths themselves.
    var pathsBlockedToSend: UInt32?
}
