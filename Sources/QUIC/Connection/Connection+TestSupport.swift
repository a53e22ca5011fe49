// Test support, behind `@_spi(Testing)`: what a fuzz harness or a test needs to play this
// connection's peer without going through its send path. `testingSealOneRTTPacket` protects
// arbitrary payload bytes as a 1-RTT packet with this connection's current write keys (so a
// harness holding the client can hand the server any frames it likes), and `testingSnapshot`
// is a read-only look at the receive-side state an oracle predicts close errors from.
// Nothing here is part of the API the daemon uses; nothing here changes connection state.
import CNIOBoringSSL

extension TLSContext {
    /// Offers and accepts only X25519 key shares (no hybrid post-quantum share): a cheaper
    /// handshake for harnesses that run one per input. Call before creating connections.
    @_spi(Testing) public func testingUseX25519Only() {
        precondition(SSL_CTX_set1_groups_list(ctx, "X25519") == 1, "SSL_CTX_set1_groups_list failed")
    }
}

extension Connection {
    /// Where a 1-RTT packet to this connection's peer goes on a path: the peer's connection ID
    /// and the packet number this connection would use next there (0 for a path it never used).
    /// Returns nil without 1-RTT keys or without a peer connection ID for the path.
    @_spi(Testing) public func testingOneRTTDestination(pathID: UInt32 = 0) -> (cid: ConnectionID, nextPacketNumber: UInt64)? {
        guard writeKeys[EncryptionLevel.application.rawValue] != nil else { return nil }
        if let p = paths[pathID] { return (p.destinationCID, p.space.nextPacketNumber) }
        guard let (_, entry) = multipath.peerCIDs[pathID]?.min(by: { $0.key < $1.key }) else { return nil }
        return (entry.cid, 0)
    }

    /// Seals `payload` (any bytes: frames, garbage, nothing) as one 1-RTT packet: short header
    /// (RFC 9000 §17.3.1, spin and reserved bits 0, a 4-byte packet number), AEAD with the path
    /// ID in the nonce (draft-ietf-quic-multipath §2.4) and header protection (RFC 9001 §5.4),
    /// using this connection's current write keys, or the keys `keyUpdates` generations later
    /// with the key phase bit to match (RFC 9001 §6). The connection's own packet numbers,
    /// sent-packet records and key usage counters are left alone.
    /// - Returns: the datagram, or nil without 1-RTT write keys.
    @_spi(Testing) public func testingSealOneRTTPacket(
        payload: [UInt8], destinationCID: ConnectionID, packetNumber: UInt64,
        pathID: UInt32 = 0, keyUpdates: Int = 0
    ) -> [UInt8]? {
        guard var keys = writeKeys[EncryptionLevel.application.rawValue] else { return nil }
        for _ in 0..<max(0, keyUpdates) { keys = keys.nextGeneration() }
        let phase = keyUpdate.writePhase != (keyUpdates % 2 == 1)
        let pnLength = 4
        var w = ByteWriter(capacity: 1 + destinationCID.length + pnLength + payload.count + keys.suite.tagLength)
        w.writeUInt8(0x40 | (phase ? 0x04 : 0) | UInt8(pnLength - 1))
        destinationCID.write(to: &w)
        let pnOffset = w.count
        w.writeUInt(packetNumber & 0xffff_ffff, bytes: pnLength)
        w.writeBytes(payload)
        var bytes = w.bytes
        let usage = keys.usageCount
        PacketProtection.seal(
            &bytes, start: 0, pnOffset: pnOffset, pnLength: pnLength, payloadEnd: bytes.count,
            packetNumber: packetNumber, keys: keys, pathID: pathID)
        keys.usageCount = usage
        return bytes
    }

    /// The receive-side state a fuzz oracle needs, copied out (see `testingSnapshot`).
    @_spi(Testing) public struct TestingSnapshot {
        public struct StreamState {
            public var canSend: Bool
            public var canReceive: Bool
            public var recvLimit: UInt64
            public var recvWindow: UInt64
            public var readOffset: UInt64
            public var highestOffset: UInt64
            public var finalSize: UInt64?
            public var resetReceived: Bool
            /// Bytes held for the reader: contiguous unread plus out-of-order chunks.
            public var bufferedBytes: Int
            public var outOfOrderChunks: Int
        }

        public struct PathState {
            public var nextPacketNumber: UInt64
            public var state: String
            public var responsesToSend: Int
            public var queuedDatagrams: Int
        }

        public var streams: [UInt64: StreamState] = [:]
        public var localMaxData: UInt64 = 0
        public var dataReceived: UInt64 = 0
        public var localMaxStreamsBidi: UInt64 = 0
        public var localMaxStreamsUni: UInt64 = 0
        public var remoteStreamsOpenedBidi: UInt64 = 0
        public var remoteStreamsOpenedUni: UInt64 = 0
        public var nextLocalBidiIndex: UInt64 = 0
        public var nextLocalUniIndex: UInt64 = 0
        /// The peer's connection IDs (RFC 9000 tables, path 0) by sequence number.
        public var peerCIDs: [UInt64: ConnectionID] = [:]
        public var peerCIDRetirePriorTo: UInt64 = 0
        public var activeConnectionIDLimit: UInt64 = 0
        /// Our connection IDs by sequence number, and the next sequence number we would issue.
        public var localCIDs: [UInt64: ConnectionID] = [:]
        public var nextLocalCIDSequence: UInt64 = 0
        public var paths: [UInt32: PathState] = [:]
        public var multipathEnabled = false
        public var localMaxPathID: UInt32 = 0
        public var peerMaxPathID: UInt32 = 0
        /// The peer's connection IDs for path IDs >= 1: path ID -> sequence number -> CID.
        public var multipathPeerCIDs: [UInt32: [UInt64: ConnectionID]] = [:]
        public var multipathLocalCIDs: [UInt32: [UInt64: ConnectionID]] = [:]
        public var retiredPathIDs: Set<UInt32> = []
        // Queues whose growth a harness bounds.
        public var pendingEvents = 0
        public var peerCIDsToRetire = 0
        public var multipathPeerCIDsToRetire = 0
        public var localCIDsToAnnounce = 0
        public var multipathLocalCIDsToAnnounce = 0
        public var sendQueue = 0
        public var queuedDatagrams = 0
        public var cryptoBufferedBytes = 0
    }

    @_spi(Testing) public func testingSnapshot() -> TestingSnapshot {
        var s = TestingSnapshot()
        for (id, st) in streams {
            s.streams[id] = .init(
                canSend: st.canSend, canReceive: st.canReceive, recvLimit: st.recvLimit, recvWindow: st.recvWindow,
                readOffset: st.recv.readOffset, highestOffset: st.recv.highestOffset,
                finalSize: st.recv.finalSize, resetReceived: st.resetReceived != nil,
                bufferedBytes: st.recv.bufferedBytes, outOfOrderChunks: st.recv.outOfOrderChunks)
        }
        s.localMaxData = localMaxData
        s.dataReceived = dataReceived
        s.localMaxStreamsBidi = localMaxStreamsBidi
        s.localMaxStreamsUni = localMaxStreamsUni
        s.remoteStreamsOpenedBidi = remoteStreamsOpenedBidi
        s.remoteStreamsOpenedUni = remoteStreamsOpenedUni
        s.nextLocalBidiIndex = nextLocalBidiIndex
        s.nextLocalUniIndex = nextLocalUniIndex
        s.peerCIDs = peerCIDs.mapValues(\.cid)
        s.peerCIDRetirePriorTo = peerCIDRetirePriorTo
        s.activeConnectionIDLimit = config.activeConnectionIDLimit
        s.localCIDs = localCIDs
        s.nextLocalCIDSequence = nextLocalCIDSequence
        for (id, p) in paths {
            s.paths[id] = .init(
                nextPacketNumber: p.space.nextPacketNumber, state: p.state.rawValue,
                responsesToSend: p.responsesToSend.count, queuedDatagrams: p.queuedDatagrams)
        }
        s.multipathEnabled = multipath.enabled
        s.localMaxPathID = multipath.localMaxPathID
        s.peerMaxPathID = multipath.peerMaxPathID
        s.multipathPeerCIDs = multipath.peerCIDs.mapValues { $0.mapValues(\.cid) }
        s.multipathLocalCIDs = multipath.localCIDs
        s.retiredPathIDs = multipath.retiredPathIDs
        s.pendingEvents = events.count - eventsHead
        s.peerCIDsToRetire = peerCIDsToRetire.count
        s.multipathPeerCIDsToRetire = multipath.peerCIDsToRetire.count
        s.localCIDsToAnnounce = localCIDsToAnnounce.count
        s.multipathLocalCIDsToAnnounce = multipath.localCIDsToAnnounce.count
        s.sendQueue = sendQueue.count
        s.queuedDatagrams = datagramsToSend.count
        s.cryptoBufferedBytes = cryptoRecv.reduce(0) { $0 + $1.bufferedBytes }
        return s
    }
}
