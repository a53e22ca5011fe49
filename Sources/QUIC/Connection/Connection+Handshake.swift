// The TLS side of the connection (RFC 9001 §4): CRYPTO bytes to and from TLS, installing and
// discarding keys per encryption level, applying the peer's transport parameters, and the
// handshake completing and being confirmed.
import Congestion

extension Connection {
    /// Hands received CRYPTO data to TLS, runs it, and applies whatever it produced.
    func driveTLS(now: Timestamp) throws {
        for level in [EncryptionLevel.initial, .handshake, .application] {
            let s = level.space.rawValue
            if cryptoRecv[s].readableBytes > 0 {
                let data = cryptoRecv[s].readAll()
                try tls.provide(level: level, data: data[...])
            }
        }
        try tls.advance()
        try applyTLSOutput(now: now)
    }

    func applyTLSOutput(now: Timestamp) throws {
        for secret in tls.newSecrets {
            let keys = PacketKeys(secret: secret.secret, suite: secret.suite)
            if secret.isWrite {
                writeKeys[secret.level.rawValue] = keys
            } else {
                readKeys[secret.level.rawValue] = keys
                if secret.level == .application {
                    keyUpdate.nextRead = keys.nextGeneration()
                }
            }
            if secret.level == .handshake && !secret.isWrite && isServer == false {
                // Server's transport parameters arrive in EncryptedExtensions, read at Handshake level.
            }
        }
        tls.newSecrets.removeAll()
        for (level, data) in tls.outgoingHandshakeData {
            cryptoSend[level.space.rawValue].append(data)
        }
        tls.outgoingHandshakeData.removeAll()
        if peerParameters == nil, let raw = tls.peerTransportParameters {
            try applyPeerParameters(raw, now: now)
        }
        if !handshakeComplete && tls.handshakeComplete {
            handshakeComplete = true
            if !isServer && rememberedParameters != nil && !tls.earlyDataAccepted {
                // RFC 9001 §4.6.2: 0-RTT was rejected: everything sent in it must be sent again.
                let space = spaces[2]
                for p in space.discardSent() where p.inFlight { path.bytesInFlight -= p.size }
                for s in streams.values where s.canSend {
                    s.send.markAllSentAsLost()
                    if s.finSent && !s.finAcked { s.finSent = false }
                    scheduleSend(s.id)
                }
            }
            if state == .handshaking { state = .established }
            emit(.handshakeCompleted(alpn: tls.negotiatedALPN))
            qlogConnectionState("handshake_completed", now: now)
            if isServer {
                // RFC 9001 §4.1.2: the server's handshake is confirmed at completion; it sends
                // HANDSHAKE_DONE (RFC 9000 §19.20) and can discard Handshake keys.
                handshakeConfirmed = true
                handshakeDoneToSend = true
                discardKeys(.handshake, now: now)
                issueConnectionIDs()
            }
            issuePathConnectionIDs()
        }
        for ticket in tls.receivedSessionTickets { emit(.sessionTicket(ticket)) }
        tls.receivedSessionTickets.removeAll()
    }

    func applyPeerParameters(_ raw: [UInt8], now: Timestamp) throws {
        let p = try TransportParameters.decode(raw, isServer: !isServer)
        // RFC 9000 §7.3: authenticate the connection IDs used during the handshake.
        try p.validateConnectionIDs(
            sentByServer: !isServer, expectedInitialSource: handshakeDestinationCID,
            expectedOriginalDestination: isServer ? nil : originalDestinationCID,
            expectedRetrySource: isServer ? nil : (receivedRetry ? retrySourceCID : nil))
        peerParameters = p
        peerMaxData = p.initialMaxData
        peerMaxStreamsBidi = p.initialMaxStreamsBidi
        peerMaxStreamsUni = p.initialMaxStreamsUni
        if let token = p.statelessResetToken, var first = peerCIDs[0] {
            first.token = token
            peerCIDs[0] = first
        }
        // RFC 9000 §18.2: never send datagrams larger than the peer's max_udp_payload_size.
        onPeerMaxUDPPayloadSize(Int(min(p.maxUDPPayloadSize, 65527)), now: now)
        // Streams opened before the parameters arrived (0-RTT) get their limits now.
        for (id, s) in streams where s.canSend {
            s.sendLimit = max(s.sendLimit, initialSendLimit(for: id))
        }
        try negotiateMultipath(peer: p)
        if !isServer { issueConnectionIDs() }
        resetIdleTimer(now: now)
    }

    /// The peer's initial flow control limit for a stream we send on (RFC 9000 §18.2).
    func initialSendLimit(for id: UInt64) -> UInt64 {
        guard let p = effectivePeerParameters else { return 0 }
        if !StreamID.isBidirectional(id) { return p.initialMaxStreamDataUni }
        // "bidi_local" is for streams the peer opened; "bidi_remote" for streams we opened.
        return StreamID.isLocal(id, isServer: isServer) ? p.initialMaxStreamDataBidiRemote : p.initialMaxStreamDataBidiLocal
    }

    /// RFC 9001 §4.9: discard keys and the packet number space's state.
    func discardKeys(_ level: EncryptionLevel, now: Timestamp) {
        let space = spaces[level.space.rawValue]
        guard !space.discarded, level != .application else { return }
        readKeys[level.rawValue] = nil
        writeKeys[level.rawValue] = nil
        space.discarded = true
        // RFC 9002 §6.4: remove the space's packets from bytes in flight; they will not be acked.
        for p in space.discardSent() where p.inFlight { path.bytesInFlight -= p.size }
        space.ackPending = false
        space.ackDeadline = nil
        path.ptoCount = 0
        cryptoSend[level.space.rawValue].discardAll()
        setLossDetectionTimer(now: now)
    }

    /// Issue NEW_CONNECTION_ID up to the peer's active_connection_id_limit (RFC 9000 §5.1.1).
    func issueConnectionIDs() {
        let limit = min(peerParameters?.activeConnectionIDLimit ?? 2, 8)
        while UInt64(localCIDs.count) < limit {
            let cid = config.connectionIDGenerator.generate(random: random)
            let seq = nextLocalCIDSequence
            nextLocalCIDSequence += 1
            localCIDs[seq] = cid
            localCIDsToAnnounce.append(seq)
            emit(.connectionIDIssued(cid, StatelessResetTokens.token(for: cid, key: config.statelessResetKey)))
        }
    }
}
