// The receive path: a UDP datagram is split into coalesced packets (RFC 9000 §12.2), each packet
// has its protection removed (RFC 9001 §5), is checked for duplicates, and its frames are applied.
// Anything malformed is dropped and counted; protocol violations close the connection.
import Congestion

extension Connection {
    /// Processes one received UDP datagram; `ecn` is the ECN codepoint of its IP header.
    public func receive(datagram: [UInt8], from remote: SocketAddress, now: Timestamp, ecn: ECNCodepoint = .notECT) {
        var buffer = datagram
        receive(datagram: &buffer, from: remote, now: now, ecn: ecn)
    }

    /// As `receive(datagram:from:now:ecn:)`, but packets are opened in place in `buf`, whose
    /// contents are undefined afterwards: a caller that reuses one receive buffer copies nothing.
    public func receive(datagram buf: inout [UInt8], from remote: SocketAddress, now: Timestamp, ecn: ECNCodepoint = .notECT) {
        receive(datagram: &buf, from: remote, now: now, ecn: ecn, firstHeader: nil)
    }

    /// As above; `firstHeader` is the first packet's header when the caller (the endpoint, which
    /// routes on it) has parsed it already with this connection's connection ID length.
    func receive(
        datagram buf: inout [UInt8], from remote: SocketAddress, now: Timestamp, ecn: ECNCodepoint,
        firstHeader: PacketHeader?
    ) {
        guard state != .closed, state != .draining else { return }
        if remote == path.remote { path.bytesReceived += buf.count }
        let datagramSize = buf.count
        // RFC 9000 §10.3.1: a stateless reset ends in a token; read it before the packets are
        // opened in place (a failed open may leave the bytes changed).
        let resetToken = datagramSize >= 21 && buf[0] & 0x80 == 0 ? StatelessResetToken(lastBytesOf: buf) : nil
        var offset = 0
        var firstDCID: ConnectionID?
        var anyProcessed = false
        while offset < buf.count {
            guard
                let header = offset == 0 && firstHeader != nil
                    ? firstHeader : try? PacketHeader.parse(buf, at: offset, shortHeaderCIDLength: sourceCID.length),
                header.packetEnd <= buf.count
            else {
                stats.packetsDropped += 1
                break
            }
            // RFC 9000 §12.2: coalesced packets with a different DCID are dropped.
            if let f = firstDCID, header.destinationConnectionID != f, header.type != .versionNegotiation {
                stats.packetsDropped += 1
                break
            }
            firstDCID = header.destinationConnectionID
            if processPacket(&buf, header: header, remote: remote, datagramSize: datagramSize, ecn: ecn, now: now) {
                anyProcessed = true
            }
            if state == .closed || state == .draining { return }
            offset = header.packetEnd
        }
        if anyProcessed, !packetsAwaitingKeys.isEmpty { processPacketsAwaitingKeys(now: now) }
        if state == .closed || state == .draining { return }
        if !anyProcessed, state != .closed, let resetToken, isStatelessReset(token: resetToken) {
            // RFC 9000 §10.3.1: a datagram ending in a known reset token ends the connection.
            enterDraining(reason: .statelessReset, now: now)
            finishClose(now: now)
            return
        }
        if anyProcessed && state == .closing {
            // RFC 9000 §10.2.1: answer packets received while closing with CONNECTION_CLOSE.
            sendCloseFrame = true
        }
    }

    /// RFC 9000 §10.3.1: a datagram of at least 21 bytes in short-header form whose last 16 bytes
    /// are a token the peer gave us.
    func isStatelessReset(token: StatelessResetToken) -> Bool {
        peerCIDs.values.contains { $0.token == token }
    }

    /// Returns true if the packet was authenticated and processed.
    func processPacket(
        _ buf: inout [UInt8], header: PacketHeader, remote: SocketAddress, datagramSize: Int,
        ecn: ECNCodepoint, now: Timestamp
    ) -> Bool {
        switch header.type {
        case .versionNegotiation:
            handleVersionNegotiation(header, now: now)
            return false
        case .retry:
            handleRetry(buf, header: header, now: now)
            return false
        default: break
        }
        guard header.version == QUICVersion.v1 else {
            stats.packetsDropped += 1
            return false
        }
        // RFC 9000 §7.2: once the client has a valid Initial from the server, it discards long-header
        // packets with another Source Connection ID.
        if !isServer, receivedFirstServerPacket, header.isLongHeader, header.sourceConnectionID != handshakeDestinationCID {
            stats.packetsDropped += 1
            return false
        }
        let level: EncryptionLevel
        switch header.type {
        case .initial: level = .initial
        case .handshake: level = .handshake
        case .zeroRTT:
            guard isServer else {
                stats.packetsDropped += 1
                return false
            }
            level = .earlyData
        default: level = .application
        }
        // draft-ietf-quic-multipath §2: a 1-RTT packet's path is the path ID of the connection ID it
        // was sent to; everything else belongs to path 0.
        var pathID: UInt32 = 0
        if level == .application, multipath.enabled, let id = multipath.pathIDForLocalCID[header.destinationConnectionID] {
            pathID = id
        }
        // Path 0 is `path` for the connection's whole life (never removed from `paths`): passed
        // straight from the `let`, it needs no retain (chosen among the paths, it would).
        if pathID == 0 {
            return processPacket(
                &buf, header: header, level: level, pathID: 0, on: path, remote: remote,
                datagramSize: datagramSize, ecn: ecn, now: now)
        }
        guard let packetPath = paths[pathID] ?? peerOpenedPath(pathID, remote: remote, now: now) else {
            stats.packetsDropped += 1
            return false
        }
        return processPacket(
            &buf, header: header, level: level, pathID: pathID, on: packetPath, remote: remote,
            datagramSize: datagramSize, ecn: ecn, now: now)
    }

    /// The rest of `processPacket`, once the packet's path is known.
    private func processPacket(
        _ buf: inout [UInt8], header: PacketHeader, level: EncryptionLevel, pathID: UInt32,
        on packetPath: Path, remote: SocketAddress, datagramSize: Int, ecn: ECNCodepoint,
        now: Timestamp
    ) -> Bool {
        let space = level == .initial ? initialSpace : level == .handshake ? handshakeSpace : packetPath.space
        guard !space.discarded else {
            stats.packetsDropped += 1
            return false
        }
        guard let currentKeys = readKeys[level.rawValue] else {
            // RFC 9001 §5.7: keys not there yet: keep the packet to open it once they are.
            keepUntilKeysArrive(buf, header: header, level: level, remote: remote, ecn: ecn)
            return false
        }
        guard let hp = PacketProtection.removeHeaderProtection(&buf, header: header, hp: currentKeys.headerProtection) else {
            stats.packetsDropped += 1
            return false
        }
        let pn = PacketNumberCoding.decode(largest: space.largestReceived, truncated: hp.truncatedPN, bits: hp.pnLength * 8)

        // RFC 9001 §6: pick the key phase for 1-RTT packets.
        let keys: PacketKeys
        var isNextPhase = false
        if level == .application, (hp.firstByte & 0x04 != 0) != keyUpdate.readPhase {
            if let prev = keyUpdate.previousRead, let low = packetPath.lowestPNInReadPhase, pn < low {
                keys = prev
            } else if let next = keyUpdate.nextRead {
                keys = next
                isNextPhase = true
            } else {
                keys = currentKeys
            }
        } else {
            keys = currentKeys
        }
        guard
            let payloadEnd = PacketProtection.openPayload(
                &buf, header: header, pnLength: hp.pnLength, packetNumber: pn,
                keys: keys, pathID: pathID)
        else {
            stats.decryptionFailures += 1
            keys.usageCount += 1
            // RFC 9001 §6.6: too many forged packets under one key ends the connection.
            if keys.usageCount >= keys.suite.integrityLimit {
                closeWithError(TransportError(.aeadLimitReached, "integrity limit reached"), now: now)
            }
            return false
        }
        // RFC 9000 §17.2/§17.3.1: reserved bits must be zero after header protection is removed.
        let reservedMask: UInt8 = header.isLongHeader ? 0x0c : 0x18
        if hp.firstByte & reservedMask != 0 {
            closeWithError(TransportError(.protocolViolation, "reserved header bits set"), now: now)
            return true
        }
        if space.isDuplicate(pn) {
            stats.packetsDropped += 1
            return true
        }
        if isNextPhase { rotateReadKeys(path: packetPath, firstPacketNumber: pn, now: now) }
        // The current read keys: `currentKeys`, or `keys` if they just became current.
        if level == .application, isNextPhase || keys === currentKeys {
            packetPath.lowestPNInReadPhase = min(packetPath.lowestPNInReadPhase ?? pn, pn)
        }

        if !isServer && !receivedFirstServerPacket && header.type == .initial {
            // RFC 9000 §7.2: the client switches its DCID to the server's first SCID, once.
            receivedFirstServerPacket = true
            handshakeDestinationCID = header.sourceConnectionID
            destinationCID = header.sourceConnectionID
            peerCIDs[0] = (header.sourceConnectionID, peerCIDs[0]?.token)
        }
        if isServer && level == .handshake && !path.addressValidated {
            // RFC 9000 §8.1: a Handshake packet proves the client received our Initial.
            path.addressValidated = true
        }

        stats.packetsReceived += 1
        packetPath.packetsReceived += 1
        packetPath.lastActivity = now
        if packetPath.id != 0 && remote == packetPath.remote { packetPath.bytesReceived += datagramSize }
        let payloadStart = header.packetNumberOffset + hp.pnLength
        let packetType: PacketType = header.type
        qlogPacket(
            "quic:packet_received", type: qlogPacketType(space.id), pn: pn, size: header.packetEnd - header.packetStart, frames: 0, now: now
        )

        var reader = ByteReader(buf, from: payloadStart, to: payloadEnd)
        var ackEliciting = false
        var nonProbing = false
        var sawCrypto = false
        do {
            if reader.isAtEnd {
                // RFC 9000 §12.4: a packet with no frames is a PROTOCOL_VIOLATION.
                throw TransportError(.protocolViolation, "packet without frames")
            }
            while !reader.isAtEnd {
                let frame = try Frame.decode(from: &reader, packetType: packetType)
                if frame.isAckEliciting { ackEliciting = true }
                switch frame {
                case .padding, .pathChallenge, .pathResponse, .newConnectionID: break
                default: nonProbing = true
                }
                if case .crypto = frame { sawCrypto = true }
                try handleFrame(frame, space: space, level: level, path: packetPath, remote: remote, now: now)
                if state == .draining || state == .closed { return true }
            }
            if sawCrypto { try driveTLS(now: now) }
        } catch let e as TransportError {
            closeWithError(e, now: now)
            return true
        } catch {
            closeWithError(TransportError(.internalError, "\(error)"), now: now)
            return true
        }

        space.onPacketReceived(pn, ackEliciting: ackEliciting, now: now)
        // RFC 9000 §13.4.1: count the codepoint of each packet processed in this space.
        space.ecnCounts.count(ecn)
        if ecn == .ce && ackEliciting {
            // RFC 9000 §13.2.1: a CE-marked packet is acknowledged at once, so the sender reacts quickly.
            space.ackDeadline = now
        }
        if ackEliciting {
            // RFC 9000 §13.2.1: Initial and Handshake ACKs go out at once; 1-RTT ACKs after two
            // ack-eliciting packets, on reordering, or within max_ack_delay.
            let outOfOrder = (space.largestReceived ?? pn) > pn
            if space.id != .applicationData || space.ackElicitingSinceLastAck >= 2 || outOfOrder || !handshakeComplete {
                space.ackDeadline = now
            } else if space.ackDeadline == nil {
                space.ackDeadline = now + config.maxAckDelay
            }
        }
        if isServer && level == .handshake { discardKeys(.initial, now: now) }
        if packetPath.state == .validating && !isServer && packetPath.addressValidated && packetPath.challenge == nil {
            activate(packetPath, now: now)
        }
        lastReceiveTime = now
        ackElicitingSentSinceReceive = false
        resetIdleTimer(now: now)

        // RFC 9000 §9.3: the peer moved (NAT rebinding or migration): a non-probing packet with the
        // highest packet number from a new address makes us send there, after validating it.
        if isServer, level == .application, nonProbing, remote != packetPath.remote, pn == space.largestReceived {
            migrate(packetPath, to: remote, now: now)
        }
        return true
    }

    private func rotateReadKeys(path packetPath: Path, firstPacketNumber pn: UInt64, now: Timestamp) {
        guard let next = keyUpdate.nextRead else { return }
        let peerInitiated = keyUpdate.writePhase == keyUpdate.readPhase
        keyUpdate.previousRead = readKeys[EncryptionLevel.application.rawValue]
        readKeys[EncryptionLevel.application.rawValue] = next
        keyUpdate.nextRead = next.nextGeneration()
        keyUpdate.readPhase.toggle()
        for p in paths.values { p.lowestPNInReadPhase = nil }
        packetPath.lowestPNInReadPhase = pn
        keyUpdate.discardPreviousAt = now + path.rtt.probeTimeout(maxAckDelay: peerMaxAckDelay) * 3
        if peerInitiated, let w = writeKeys[EncryptionLevel.application.rawValue] {
            // RFC 9001 §6.2: respond to the peer's update by updating our write keys too.
            writeKeys[EncryptionLevel.application.rawValue] = w.nextGeneration()
            keyUpdate.writePhase.toggle()
            for p in paths.values { p.keyPhaseStartPN = p.space.nextPacketNumber }
            keyUpdate.currentPhaseAcked = false
            keyUpdate.generation += 1
        }
    }

    private func migrate(_ path: Path, to remote: SocketAddress, now: Timestamp) {
        let previous = path.remote
        path.remote = remote
        // RFC 9000 §9.3: until validated, the new address is subject to the amplification limit.
        path.addressValidated = false
        path.bytesReceived = 0
        path.bytesSent = 0
        path.challenge = random.nextUInt64()
        path.challengeNeedsSending = true
        path.challengeSentAt = nil
        // RFC 9000 §9.4 lets congestion state be kept across a NAT rebinding; we keep it. A new
        // IP address is likely a new network path, whose MTU is unknown (RFC 8899 §3).
        if remote.ip != previous.ip { restartPathMTUDiscovery(path, now: now) }
        emit(.peerAddressChanged(remote))
        qlog?.record(
            time: now, name: "quic:path_assigned",
            data: "{\"path_id\":\(path.id),\"path_remote\":\(QlogWriter.quote(remote.description))}")
    }

    private func handleVersionNegotiation(_ header: PacketHeader, now: Timestamp) {
        // RFC 9000 §6.2: only a client, only before any other server packet; ignore a VN that
        // lists the version we chose.
        guard !isServer, !receivedFirstServerPacket, !receivedRetry, header.destinationConnectionID == sourceCID else { return }
        if header.supportedVersions.contains(QUICVersion.v1) { return }
        closeReason = .versionNegotiationFailed
        state = .draining
        finishClose(now: now)
    }

    private func handleRetry(_ buf: [UInt8], header: PacketHeader, now: Timestamp) {
        // RFC 9000 §17.2.5.2: a client accepts at most one Retry, only before any other server
        // packet; it must carry a non-empty token and a valid integrity tag (RFC 9001 §5.8).
        guard !isServer, !receivedRetry, !receivedFirstServerPacket, !header.token.isEmpty else { return }
        let packet = Array(buf[header.packetStart..<header.packetEnd])
        guard RetryIntegrity.isValid(originalDestinationConnectionID: originalDestinationCID, retryPacket: packet) else {
            stats.packetsDropped += 1
            return
        }
        receivedRetry = true
        retrySourceCID = header.sourceConnectionID
        retryToken = Array(header.token)
        handshakeDestinationCID = header.sourceConnectionID
        destinationCID = header.sourceConnectionID
        peerCIDs[0] = (header.sourceConnectionID, nil)
        installInitialKeys(dcid: header.sourceConnectionID)
        // Resend the ClientHello in a new Initial with the token; forget the old Initials.
        let space = spaces[0]
        for p in space.discardSent() where p.inFlight { path.bytesInFlight -= p.size }
        cryptoSend[0].markAllSentAsLost()
        setLossDetectionTimer(now: now)
    }

    // MARK: - Frames

    private func handleFrame(
        _ frame: Frame, space: PacketNumberSpace, level: EncryptionLevel, path packetPath: Path,
        remote: SocketAddress, now: Timestamp
    ) throws {
        switch frame {
        case .padding, .ping:
            break
        case .ack(let ack):
            // 0-RTT packets cannot carry ACK (the decoder rejects them). With multipath an ACK frame
            // acknowledges path 0 whichever path carried it (draft-ietf-quic-multipath §4.1).
            if space.id == .applicationData {
                try onAckReceived(ack, space: path.space, path: path, now: now)
            } else {
                try onAckReceived(ack, space: space, path: path, now: now)
            }
        case .crypto(let offset, let data):
            guard level != .earlyData else { throw TransportError(.protocolViolation, frameType: FrameType.crypto, "CRYPTO in 0-RTT") }
            let buffer = cryptoRecv[space.id.rawValue]
            // RFC 9000 §7.5: limit buffered out-of-order CRYPTO data.
            if offset + UInt64(data.count) > buffer.readOffset + 256 * 1024 {
                throw TransportError(.cryptoBufferExceeded, frameType: FrameType.crypto, "CRYPTO data too far ahead")
            }
            try cryptoRecv[space.id.rawValue].insert(offset: offset, data: data, fin: false)
        case .newToken(let token):
            // RFC 9000 §19.7: servers must not receive NEW_TOKEN.
            guard !isServer else { throw TransportError(.protocolViolation, frameType: FrameType.newToken, "NEW_TOKEN from client") }
            newTokenReceived = Array(token)
        case .stream(let f):
            try handleStreamFrame(f)
        case .resetStream(let id, let code, let finalSize):
            guard let s = try streamForReceivedFrame(id, frameType: FrameType.resetStream, sending: false) else { return }
            guard s.canReceive else {
                throw TransportError(.streamStateError, frameType: FrameType.resetStream, "RESET_STREAM on send-only stream")
            }
            // RFC 9000 §4.5: the final size must be consistent with data received.
            if let fs = s.recv.finalSize, fs != finalSize {
                throw TransportError(.finalSizeError, frameType: FrameType.resetStream, "final size changed")
            }
            if finalSize < s.recv.highestOffset {
                throw TransportError(.finalSizeError, frameType: FrameType.resetStream, "final size below received data")
            }
            if s.resetReceived == nil {
                // RFC 9000 §4.5: the final size is the credit the stream consumed, so it obeys the
                // stream's limit too (§4.1: FLOW_CONTROL_ERROR).
                if finalSize > s.recvLimit {
                    throw TransportError(.flowControlError, frameType: FrameType.resetStream, "final size beyond the stream limit")
                }
                try chargeFlowControl(s, newHighest: finalSize, frameType: FrameType.resetStream)
                s.resetReceived = (code, finalSize)
                emit(.streamReset(id: id, errorCode: code))
                maybeCollectStream(s)
            }
        case .stopSending(let id, let code):
            guard let s = try streamForReceivedFrame(id, frameType: FrameType.stopSending, sending: true) else { return }
            guard s.canSend else {
                throw TransportError(.streamStateError, frameType: FrameType.stopSending, "STOP_SENDING on receive-only stream")
            }
            // RFC 9000 §3.5: respond with RESET_STREAM.
            emit(.stopSending(id: id, errorCode: code))
            resetStream(id, errorCode: code)
        case .maxData(let m):
            if m > peerMaxData { peerMaxData = m }
        case .maxStreamData(let id, let m):
            guard let s = try streamForReceivedFrame(id, frameType: FrameType.maxStreamData, sending: true) else { return }
            guard s.canSend else {
                throw TransportError(.streamStateError, frameType: FrameType.maxStreamData, "MAX_STREAM_DATA on receive-only stream")
            }
            if m > s.sendLimit {
                s.sendLimit = m
                scheduleSend(id)
                emit(.streamWritable(id: id))
            }
        case .maxStreams(let bidi, let m):
            if bidi { peerMaxStreamsBidi = max(peerMaxStreamsBidi, m) } else { peerMaxStreamsUni = max(peerMaxStreamsUni, m) }
        case .dataBlocked(let limit):
            // RFC 9000 §4.1: informational; the peer would send more if we raised MAX_DATA.
            stats.dataBlockedReceived += 1
            stats.lastDataBlockedLimit = limit
        case .streamDataBlocked(let id, let limit):
            // RFC 9000 §19.13: on a send-only stream it is a STREAM_STATE_ERROR; like STREAM it opens
            // the peer's stream (§3.2) and obeys the stream limit (§4.6).
            guard let s = try streamForReceivedFrame(id, frameType: FrameType.streamDataBlocked, sending: false) else { return }
            guard s.canReceive else {
                throw TransportError(.streamStateError, frameType: FrameType.streamDataBlocked, "STREAM_DATA_BLOCKED on send-only stream")
            }
            stats.streamDataBlockedReceived += 1
            stats.lastStreamDataBlocked = (id, limit)
        case .streamsBlocked:
            stats.streamsBlockedReceived += 1
        case .newConnectionID(let f):
            try handleNewConnectionID(f)
        case .retireConnectionID(let seq):
            try retireLocalConnectionID(seq, frameType: FrameType.retireConnectionID)
        case .pathChallenge(let data):
            // RFC 9000 §8.2.2: echo the data in a PATH_RESPONSE on the path it arrived on.
            if packetPath.responsesToSend.count < 8 { packetPath.responsesToSend.append(data) }
        case .pathResponse(let data):
            // RFC 9000 §8.2.3: a matching response validates the path it was challenged on.
            if let p = paths.values.first(where: { $0.challenge == data }) {
                p.challenge = nil
                p.challengeNeedsSending = false
                p.addressValidated = true
                if p.state == .validating { activate(p, now: now) }
            }
        case .connectionClose(let f):
            let reason = String(decoding: f.reason, as: UTF8.self)
            if f.isApplication {
                enterDraining(reason: .peerApplication(code: f.errorCode, reason: reason), now: now)
            } else {
                enterDraining(
                    reason: .peerTransport(code: TransportErrorCode(rawValue: f.errorCode), frameType: f.frameType, reason: reason),
                    now: now)
            }
        case .handshakeDone:
            // RFC 9000 §19.20: a server receiving HANDSHAKE_DONE treats it as PROTOCOL_VIOLATION.
            guard !isServer else {
                throw TransportError(.protocolViolation, frameType: FrameType.handshakeDone, "HANDSHAKE_DONE from client")
            }
            if !handshakeConfirmed {
                handshakeConfirmed = true
                // RFC 9001 §4.9.2: the client discards Handshake keys once confirmed.
                discardKeys(.handshake, now: now)
            }
        case .datagram(let data, _):
            // RFC 9221 §3: DATAGRAM without having advertised support is a PROTOCOL_VIOLATION.
            guard let maxSize = config.maxDatagramFrameSize, UInt64(data.count) <= maxSize else {
                throw TransportError(.protocolViolation, frameType: FrameType.datagram, "unexpected or oversized DATAGRAM")
            }
            stats.datagramsReceived += 1
            if let onDatagram {
                data.withUnsafeBytes { onDatagram($0, packetPath.id) }
            } else {
                emit(.datagramReceived(Array(data)))
            }
        case .pathAck, .pathAbandon, .pathStatusBackup, .pathStatusAvailable, .pathNewConnectionID,
            .pathRetireConnectionID, .maxPathID, .pathsBlocked, .pathCIDsBlocked:
            // Multipath frames are only valid once negotiated (draft-ietf-quic-multipath §2.1).
            guard multipath.enabled else {
                throw TransportError(.protocolViolation, frameType: frame.frameType, "multipath frame without negotiation")
            }
            try handleMultipathFrame(frame, arrivedOn: packetPath, now: now)
        }
    }

    private func handleStreamFrame(_ f: StreamFrame) throws {
        guard let s = try streamForReceivedFrame(f.streamID, frameType: FrameType.streamBase, sending: false) else { return }
        // RFC 9000 §19.8: STREAM on a locally initiated unidirectional stream is STREAM_STATE_ERROR.
        guard s.canReceive else { throw TransportError(.streamStateError, frameType: FrameType.streamBase, "STREAM on send-only stream") }
        if s.resetReceived != nil { return }
        let end = f.offset + UInt64(f.data.count)
        // RFC 9000 §4.1: data beyond the advertised limit is a FLOW_CONTROL_ERROR.
        if end > s.recvLimit {
            throw TransportError(.flowControlError, frameType: FrameType.streamBase, "stream \(f.streamID) limit exceeded")
        }
        try chargeFlowControl(s, newHighest: end, frameType: FrameType.streamBase)
        let before = s.recv.contiguousEnd
        let hadFin = s.recv.finalSize != nil
        do {
            try s.recv.insert(offset: f.offset, data: f.data, fin: f.fin)
        } catch var e as TransportError {
            e.frameType = FrameType.streamBase
            throw e
        }
        stats.streamBytesReceived += UInt64(f.data.count)
        if s.recv.contiguousEnd > before || (s.recv.allDataReceived && !hadFin) {
            emit(.streamReadable(id: f.streamID))
        }
    }

    /// Connection-level flow control (RFC 9000 §4.1): counts the highest offset of every stream.
    private func chargeFlowControl(_ s: Stream, newHighest: UInt64, frameType: UInt64) throws {
        let previous = s.recv.highestOffset
        guard newHighest > previous else { return }
        dataReceived += newHighest - previous
        if dataReceived > localMaxData {
            throw TransportError(.flowControlError, frameType: frameType, "connection data limit exceeded")
        }
    }

    /// Path 0's connection IDs from the peer: NEW_CONNECTION_ID, or PATH_NEW_CONNECTION_ID with path
    /// ID 0 (draft-ietf-quic-multipath-21 §3.2: both act on the one set path 0 has, whose sequence 0
    /// is the handshake's connection ID). `frameType` names the frame in errors.
    func handleNewConnectionID(_ f: NewConnectionIDFrame, frameType: UInt64 = FrameType.newConnectionID) throws {
        // RFC 9000 §19.15: a zero-length-CID peer must not send NEW_CONNECTION_ID.
        guard !destinationCID.isEmpty else {
            throw TransportError(.protocolViolation, frameType: frameType, "NEW_CONNECTION_ID with zero-length CIDs")
        }
        if let existing = peerCIDs[f.sequenceNumber] {
            // RFC 9000 §19.15: the same sequence number with a different CID is a PROTOCOL_VIOLATION.
            if existing.cid != f.connectionID {
                throw TransportError(.protocolViolation, frameType: frameType, "sequence reused with a different CID")
            }
            return
        }
        if f.sequenceNumber < peerCIDRetirePriorTo {
            // Already retired: retire it right away (RFC 9000 §19.15).
            peerCIDsToRetire.append(f.sequenceNumber)
            return
        }
        peerCIDs[f.sequenceNumber] = (f.connectionID, f.statelessResetToken)
        if f.retirePriorTo > peerCIDRetirePriorTo {
            peerCIDRetirePriorTo = f.retirePriorTo
            for seq in peerCIDs.keys where seq < f.retirePriorTo {
                peerCIDs[seq] = nil
                peerCIDsToRetire.append(seq)
            }
            if activePeerCIDSequence < f.retirePriorTo, let next = peerCIDs.keys.min(), let e = peerCIDs[next] {
                activePeerCIDSequence = next
                destinationCID = e.cid
            }
        }
        // RFC 9000 §5.1.1: more active CIDs than our limit is CONNECTION_ID_LIMIT_ERROR.
        if UInt64(peerCIDs.count) > config.activeConnectionIDLimit {
            throw TransportError(.connectionIDLimitError, frameType: frameType, "too many connection IDs")
        }
    }

    /// The peer retires one of path 0's connection IDs of ours: RETIRE_CONNECTION_ID, or
    /// PATH_RETIRE_CONNECTION_ID with path ID 0 (draft-ietf-quic-multipath-21 §3.2).
    func retireLocalConnectionID(_ seq: UInt64, frameType: UInt64) throws {
        // RFC 9000 §19.16: retiring a sequence number never issued is a PROTOCOL_VIOLATION.
        guard seq < nextLocalCIDSequence else {
            throw TransportError(.protocolViolation, frameType: frameType, "retiring unissued CID \(seq)")
        }
        if let cid = localCIDs.removeValue(forKey: seq) {
            emit(.connectionIDRetired(cid))
            if handshakeComplete { issueConnectionIDs() }
        }
    }
}
