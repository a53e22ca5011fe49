// The send path: `poll` fills one UDP datagram with up to three coalesced packets (Initial,
// Handshake, then 0-RTT/1-RTT; RFC 9000 §12.2), choosing frames by priority (ACKs, close,
// CRYPTO, control frames, datagrams, stream data) within the congestion window and the
// anti-amplification budget, pads where RFC 9000 §14.1 requires, then seals every packet in place.
// A PMTU probe (`Connection+PathMTU.swift`) takes a datagram of its own.
import Congestion

extension Connection {
    /// A packet written into `datagramWriter` but not sealed yet.
    struct PendingPacket {
        var start: Int
        var lengthFieldOffset: Int?  // long header Length (2-byte varint)
        var pnOffset: Int
        var pnLength: Int
        var payloadStart: Int
        var payloadEnd: Int
        var packetNumber: UInt64
        /// Its keys and space follow from the level (`writeKeys`, `sendSpace`): no class
        /// references here, so building and dropping a pending packet retains nothing.
        var level: EncryptionLevel
        var sent: SentPacket
        var packetType: PacketType
    }

    /// Returns the next datagram to send, or nil if there is nothing to send now.
    public func poll(now: Timestamp) -> Transmit? {
        guard state != .closed, state != .draining else { return nil }
        if state == .closing && !sendCloseFrame { return nil }
        if keyUpdate.updateRequested { _ = tryStartKeyUpdate() }
        // RFC 9001 §6.6: update keys well before the confidentiality limit.
        // (Read through optional chaining: binding the keys would retain and release them per poll.)
        if let used = writeKeys[EncryptionLevel.application.rawValue]?.usageCount,
            let limit = writeKeys[EncryptionLevel.application.rawValue]?.suite.confidentialityLimit, used >= limit / 2
        {
            keyUpdate.updateRequested = true
            _ = tryStartKeyUpdate()
        }

        // Paths take turns so none starves (the bonding scheduler steers datagrams explicitly).
        // One path: it is `path` (no array to walk and retain).
        if pathList.count == 1 {
            guard let t = poll(path: path, now: now) else { return nil }
            pollCursor = 0  // as the loop below would leave it
            return t
        }
        let list = pathList
        for k in 0..<list.count {
            if let t = poll(path: list[(pollCursor + k) % list.count], now: now) {
                pollCursor = (pollCursor + k + 1) % max(list.count, 1)
                return t
            }
        }
        return nil
    }

    private func poll(path: Path, now: Timestamp) -> Transmit? {
        guard path.state != .closed, path.state != .abandoned else { return nil }
        // CONNECTION_CLOSE goes on the initial path (or any usable one if it is gone).
        if state == .closing && path.id != 0 && paths[0]?.isUsable == true { return nil }
        let destination = path.remote
        datagramWriter.removeAll()
        // RFC 8899 §3 item 1: nothing but a PMTU probe is larger than the path's PLPMTU.
        var datagramLimit = path.maxDatagramSize
        if !path.addressValidated && isServer {
            // RFC 9000 §8.1/§9.3: at most three times the bytes received from an unvalidated
            // peer address (the client knows the server's address is real).
            datagramLimit = min(datagramLimit, path.amplificationBudget)
            if datagramLimit <= 0 { return nil }
        }
        // The packets of this datagram, built in the connection's scratch array in place (nothing
        // else touches it while a datagram is assembled).
        defer { if !pendingScratch.isEmpty { pendingScratch.removeAll(keepingCapacity: true) } }
        var containsInitial = false
        var ackElicitingInitial = false

        // Once the handshake spaces are discarded (buildPacket would skip them), 1-RTT only.
        let handshakeSpacesLive = path.id == 0 && !(initialSpace.discarded && handshakeSpace.discarded)
        if path.space.probes > 0 && config.pmtuDiscovery {
            // PTO probes at the base size: if the path's MTU fell, they still get through, and
            // their acknowledgement declares the large packets lost, which is what black-hole
            // detection looks for (`PathMTUDiscovery.onSuspiciousLoss`).
            datagramLimit = min(datagramLimit, PathMTUDiscovery.basePLPMTU)
        }
        var probing = false
        if !handshakeSpacesLive, let size = pmtuProbeSize(path: path, now: now) {
            probing = buildPMTUProbe(size: size, path: path, now: now, into: &pendingScratch)
        }
        if !probing && handshakeSpacesLive {
            for level in [EncryptionLevel.initial, .handshake, .application] {
                let budget = datagramLimit - datagramWriter.count
                guard budget > 48 else { break }
                // Built straight into the array: a large struct returned by value is copied twice.
                if buildPacket(
                    level: level, space: sendSpace(level, path: path), budget: budget, path: path, now: now,
                    into: &pendingScratch)
                {
                    let last = pendingScratch.count - 1
                    if pendingScratch[last].level == .initial {
                        containsInitial = true
                        if pendingScratch[last].sent.ackEliciting { ackElicitingInitial = true }
                    }
                }
            }
        } else if !probing && datagramLimit - datagramWriter.count > 48 {
            // 1-RTT only, in the path's own space: passed straight from the `let`, it needs no
            // retain (chosen among the spaces, it would, on every poll).
            _ = buildPacket(
                level: .application, space: path.space, budget: datagramLimit - datagramWriter.count, path: path,
                now: now, into: &pendingScratch)
        }
        guard !pendingScratch.isEmpty else { return nil }

        // RFC 9000 §14.1: a client pads every datagram carrying an Initial packet to 1200 bytes;
        // a server pads datagrams carrying ack-eliciting Initial packets.
        // RFC 9000 §8.2.1/§8.2.2: datagrams carrying PATH_CHALLENGE or PATH_RESPONSE are expanded
        // to 1200 bytes too (within the anti-amplification limit), to check the path's MTU.
        // (Index loops here and below: iterating the array copies each packet.)
        var probesPath = false
        var allApplication = true
        for i in pendingScratch.indices {
            if pendingScratch[i].sent.frames.containsPathProbe { probesPath = true }
            if pendingScratch[i].level != .application { allApplication = false }
        }
        if (containsInitial && (!isServer || ackElicitingInitial) || probesPath) && datagramWriter.count < 1200 {
            let padding = min(1200, datagramLimit) - datagramWriter.count
            if padding > 0 { padLastPacket(&pendingScratch, by: padding) }
        }

        // RFC 9000 §13.4.2: ECT(0) on 1-RTT datagrams while the path tests or trusts ECN (the
        // handshake spaces are not validated, so their packets go unmarked).
        let marked = path.ecn.marksOutgoing && allApplication
        // Seal every packet in place, then record it as sent.
        for i in pendingScratch.indices {
            let level = pendingScratch[i].level
            let keys = writeKeys[level.rawValue]!
            let space = sendSpace(level, path: path)
            let start = pendingScratch[i].start
            let pnOffset = pendingScratch[i].pnOffset
            let payloadEnd = pendingScratch[i].payloadEnd
            let pn = pendingScratch[i].packetNumber
            let tagLength = keys.suite.tagLength
            if let lengthOffset = pendingScratch[i].lengthFieldOffset {
                // RFC 9000 §17.2: Length covers the packet number, payload and AEAD tag.
                let length = payloadEnd + tagLength - pnOffset
                datagramWriter.patchVarInt(UInt64(length), at: lengthOffset, length: 2)
            }
            // draft-ietf-quic-multipath §2.4: the path ID goes into the nonce of 1-RTT packets.
            let noncePathID: UInt32 = level == .application ? path.id : 0
            PacketProtection.seal(
                &datagramWriter.bytes, start: start, pnOffset: pnOffset, pnLength: pendingScratch[i].pnLength,
                payloadEnd: payloadEnd, packetNumber: pn, keys: keys, pathID: noncePathID)
            pendingScratch[i].sent.size = payloadEnd + tagLength - start
            pendingScratch[i].sent.ecnMarked = marked
            if marked { path.ecn.onMarkedPacketSent() }
            onPacketSent(&pendingScratch[i].sent, space: space, path: path, now: now)
            if qlog != nil {
                let type = pendingScratch[i].packetType == .zeroRTT ? "0RTT" : qlogPacketType(space.id)
                qlogPacket(
                    "quic:packet_sent", type: type, pn: pn, size: pendingScratch[i].sent.size,
                    frames: pendingScratch[i].sent.frames.count, now: now)
            }
            // RFC 9001 §4.9.1: a client discards Initial keys when it first sends a Handshake packet.
            if !isServer && level == .handshake { discardKeys(.initial, now: now) }
        }
        if state == .closing { sendCloseFrame = false }
        path.bytesSent += datagramWriter.count
        path.bytesSentTotal += UInt64(datagramWriter.count)
        stats.packetsSent += UInt64(pendingScratch.count)
        return Transmit(
            bytes: datagramWriter.bytes, destination: destination, pathID: path.id, source: path.local,
            ecn: marked ? .ect0 : .notECT)
    }

    private func onPacketSent(_ p: inout SentPacket, space: PacketNumberSpace, path: Path, now: Timestamp) {
        if p.inFlight {
            if space.id == .applicationData { path.pacer.onSent(bytes: p.size) }
            p.delivery = path.delivery.onPacketSent(bytes: p.size, bytesInFlight: path.bytesInFlight, now: now)
            path.bytesInFlight += p.size
            path.congestion.onPacketSent(bytes: p.size, bytesInFlight: path.bytesInFlight, now: now)
        }
        path.packetsSent += 1
        if p.ackEliciting || p.inFlight { space.onPacketSent(p) }
        if p.ackEliciting && !p.isPMTUProbe { path.lastAckElicitingSent = now }
        if p.ackEliciting {
            // RFC 9000 §10.1: sending the first ack-eliciting packet after receiving restarts the idle timer.
            if !ackElicitingSentSinceReceive { resetIdleTimer(now: now) }
            ackElicitingSentSinceReceive = true
            setLossDetectionTimer(path: path, now: now)
        }
    }

    private func padLastPacket(_ packets: inout [PendingPacket], by n: Int) {
        // PADDING frames (0x00) go between the payload and the tag placeholder; both are zeros,
        // so appending n zeros is the same as moving the placeholder back by n.
        datagramWriter.bytes.append(contentsOf: repeatElement(0, count: n))
        packets[packets.count - 1].payloadEnd += n
        packets[packets.count - 1].sent.inFlight = true
    }

    /// Writes one packet of `level` into the datagram if there is anything to send in it, and
    /// appends it to `packets` (returns true then).
    /// - Precondition: `space` is `sendSpace(requested, path: path)`.
    private func buildPacket(
        level requested: EncryptionLevel, space: PacketNumberSpace, budget: Int, path: Path,
        now: Timestamp, into packets: inout [PendingPacket]
    ) -> Bool {
        guard !space.discarded else { return false }
        // Which keys, tested without taking them: most polls find nothing to send, and holding the
        // keys would cost each of those a retain and a release. (`let`s, not an optional `var`
        // rebound: each rebinding costs a retain and a release.)
        let level: EncryptionLevel
        let packetType: PacketType
        if writeKeys[requested.rawValue] != nil {
            level = requested
            packetType = level == .initial ? .initial : level == .handshake ? .handshake : .oneRTT
        } else {
            // 0-RTT (RFC 9001 §4.6.1): client only, only until 1-RTT keys exist.
            guard requested == .application, !isServer, writeKeys[EncryptionLevel.earlyData.rawValue] != nil else { return false }
            level = .earlyData
            packetType = .zeroRTT
        }

        let closing = state == .closing
        let probe = space.probes > 0 && path.isUsable
        let ackDue = space.ackPending && (space.ackDeadline.map { now >= $0 } ?? false)
        // Handshake data is exempt from the congestion window: it is small, and a lost Finished
        // behind a window full of undecryptable 1-RTT packets would otherwise deadlock the handshake.
        let congestion = path.congestion
        var cwndAvailable = path.bytesInFlight < congestion.congestionWindow || probe || space.id != .applicationData
        if cwndAvailable && space.id == .applicationData && !probe {
            // RFC 9002 §7.7: pace ack-eliciting data; ACK-only packets are not held back.
            let rate = Pacer.rate(
                congestionWindow: congestion.congestionWindow, smoothedRTT: path.rtt.smoothed,
                controllerRate: congestion.pacingRate)
            if let wait = path.pacer.delay(for: path.maxDatagramSize, rate: rate, now: now) {
                path.pacingDeadline = wait
                cwndAvailable = false
            } else {
                path.pacingDeadline = nil
            }
        }
        let hasData = !closing && cwndAvailable && hasDataToSend(space: space, level: level, path: path)
        if space.id == .applicationData && cwndAvailable && !hasData && !closing && path.isUsable {
            // Room in the window and nothing to send: rate samples from now on say nothing about
            // the path's capacity (draft-cheng-iccrg-delivery-rate-estimation §3.4).
            path.delivery.onAppLimited(bytesInFlight: path.bytesInFlight)
        }
        let closeHere = closing && sendCloseFrame && closeFrameLevelOK(level)
        // RFC 9000 §10.1.2: nothing ack-eliciting left this path for the keep-alive interval.
        let keepAlive = level == .application && !closing && keepAliveDue(path, now: now)
        guard ackDue || hasData || probe || closeHere || keepAlive || (space.ackPending && hasData) else { return false }

        // MARK: header
        let pn = space.nextPacketNumber
        let pnLength = PacketNumberCoding.encodedLength(packetNumber: pn, largestAcked: space.largestAcked)
        let start = datagramWriter.count
        var lengthFieldOffset: Int?
        if packetType == .oneRTT {
            // RFC 9000 §17.3.1: 0b01 | spin 0 | reserved 00 | key phase | pn length.
            datagramWriter.writeUInt8(0x40 | (keyUpdate.writePhase ? 0x04 : 0) | UInt8(pnLength - 1))
            path.destinationCID.write(to: &datagramWriter)
        } else {
            datagramWriter.writeUInt8(0xC0 | (packetType.longHeaderTypeBits! << 4) | UInt8(pnLength - 1))
            datagramWriter.writeUInt32(QUICVersion.v1)
            datagramWriter.writeUInt8(UInt8(handshakeDestinationCID.length))
            handshakeDestinationCID.write(to: &datagramWriter)
            datagramWriter.writeUInt8(UInt8(sourceCID.length))
            sourceCID.write(to: &datagramWriter)
            if packetType == .initial {
                let token = isServer ? [] : retryToken
                datagramWriter.writeVarInt(UInt64(token.count))
                datagramWriter.writeBytes(token)
            }
            lengthFieldOffset = datagramWriter.count
            datagramWriter.writeVarInt(0, length: 2)
        }
        let pnOffset = datagramWriter.count
        datagramWriter.writeUInt(pn, bytes: pnLength)
        let payloadStart = datagramWriter.count
        let tag = writeKeys[level.rawValue]!.suite.tagLength
        let payloadLimit = start + budget - tag
        guard payloadLimit - payloadStart > 8 else {
            datagramWriter.bytes.removeLast(datagramWriter.count - start)
            return false
        }

        var frames = SentFrames()
        var ackEliciting = false
        var remaining: Int { payloadLimit - datagramWriter.count }

        // ACK first (RFC 9000 §13.2): when one is due or pending, and in every packet that is sent
        // anyway while the peer has not confirmed our last ACK (a lost ACK would otherwise only
        // be repeated after the peer's probe timeout).
        let refreshAck = (hasData || probe) && space.hasUnconfirmedAckInformation
        if space.ackPending || ackDue || refreshAck, var a = space.makeAckFrame(now: now, ackDelayExponent: config.ackDelayExponent) {
            // Trim ranges until the frame fits. (Lengths as Frame.ack(a).encodedLength, without
            // wrapping the frame in the enum for every test.)
            var ackLength = 1 + Frame.ackBodyLength(a)
            while ackLength > remaining - 16 && a.ranges.count > 1 {
                a.ranges.removeLast()
                ackLength = 1 + Frame.ackBodyLength(a)
            }
            var include = ackLength <= remaining
            if include && !ackDue && space.id == .applicationData,
                let headLength = path.urgentDatagrams.firstLength ?? path.datagrams.firstLength ?? datagramsToSend.firstLength
            {
                // An ACK that is not yet due (a refresh, or one pending before its deadline) must
                // not push a full-size datagram out of the packet: a refresh would do so in every
                // packet and starve the datagram, and a pending one costs an extra ACK-only packet
                // that ends the GSO train (the router sent one per two received datagrams). A due
                // ACK still goes first.
                let need = Frame.datagramHeaderLength(length: headLength, hasLength: true) + headLength
                if remaining - ackLength < need { include = false }
            }
            // draft-ietf-quic-multipath §4.1: PATH_ACK names the path; ACK stays for path 0.
            let pathAckID: UInt64? = space.id == .applicationData && path.id != 0 ? UInt64(path.id) : nil
            if let id = pathAckID { ackLength += VarInt.encodedLength(id) }
            if include && ackLength <= remaining {
                if let id = pathAckID {
                    datagramWriter.writeVarInt(a.ecn == nil ? FrameType.pathAck : FrameType.pathAckECN)
                    datagramWriter.writeVarInt(id)
                } else {
                    datagramWriter.writeVarInt(a.ecn == nil ? FrameType.ack : FrameType.ackECN)
                }
                Frame.encodeAckBody(a, to: &datagramWriter)
                frames.append(.ack(largest: a.largestAcknowledged))
                space.onAckSent()
            }
        }

        if closeHere, let close = closeFrame {
            var f = close
            if level != .application && f.isApplication {
                // RFC 9000 §10.2.3: application closes become APPLICATION_ERROR in handshake packets.
                f = ConnectionCloseFrame(isApplication: false, errorCode: TransportErrorCode.applicationError.rawValue)
            }
            if f.reason.count > remaining - 24 { f.reason = f.reason.prefix(max(0, remaining - 24)) }
            Frame.connectionClose(f).encode(to: &datagramWriter)
            frames.append(.connectionClose)
        } else if hasData || probe {
            writeFrames(
                space: space, level: level, path: path, payloadLimit: payloadLimit, frames: &frames,
                ackEliciting: &ackEliciting, now: now)
            if probe && !ackEliciting {
                // RFC 9002 §6.2.4: a probe must be ack-eliciting.
                Frame.ping.encode(to: &datagramWriter)
                frames.append(.ping)
                ackEliciting = true
            }
            if probe { space.probes -= 1 }
        }
        if keepAlive && !ackEliciting && !closeHere {
            Frame.ping.encode(to: &datagramWriter)
            frames.append(.ping)
            ackEliciting = true
            path.keepAlivesSent += 1
            stats.keepAlivesSent += 1
        }
        if frames.isEmpty {
            datagramWriter.bytes.removeLast(datagramWriter.count - start)
            return false
        }
        // RFC 9001 §5.4.2: the header protection sample needs 4 bytes after the PN start.
        let minPayload = 4 - pnLength
        while datagramWriter.count - payloadStart < max(1, minPayload) { datagramWriter.writeUInt8(0) }
        let payloadEnd = datagramWriter.count
        datagramWriter.bytes.append(contentsOf: repeatElement(0, count: tag))
        space.nextPacketNumber += 1

        packets.append(
            PendingPacket(
                start: start, lengthFieldOffset: lengthFieldOffset, pnOffset: pnOffset, pnLength: pnLength,
                payloadStart: payloadStart, payloadEnd: payloadEnd, packetNumber: pn, level: level,
                sent: SentPacket(
                    packetNumber: pn, timeSent: now, size: 0, ackEliciting: ackEliciting,
                    inFlight: ackEliciting, frames: frames),
                packetType: packetType))
        return true
    }

    /// The packet number space a packet of `level` goes in on `path` (RFC 9000 §12.3): the
    /// handshake spaces, or the path's own for 0-RTT and 1-RTT. All `let`s of guaranteed
    /// objects, so reading one needs no retain (an element of `spaces` would).
    @inline(__always)
    func sendSpace(_ level: EncryptionLevel, path: Path) -> PacketNumberSpace {
        level == .initial ? initialSpace : level == .handshake ? handshakeSpace : path.space
    }

    private func closeFrameLevelOK(_ level: EncryptionLevel) -> Bool {
        // Send CONNECTION_CLOSE at the highest level the peer can read (RFC 9000 §10.2.3):
        // 1-RTT once the handshake is done; otherwise Handshake if available, else Initial.
        if handshakeComplete { return level == .application }
        if writeKeys[EncryptionLevel.handshake.rawValue] != nil && !spaces[1].discarded {
            return level == .handshake || (level == .initial && !isServer)
        }
        return level == .initial
    }

    private func hasDataToSend(space: PacketNumberSpace, level: EncryptionLevel, path: Path) -> Bool {
        if cryptoSend[space.id.rawValue].hasUnsentData && level != .earlyData && path.id == 0 { return true }
        guard space.id == .applicationData else { return false }
        if path.challengeNeedsSending || !path.responsesToSend.isEmpty { return true }
        guard path.isUsable else { return false }
        if path.queuedDatagrams > 0 { return true }
        let data = carriesData(path)
        if level == .earlyData {
            return !sendQueue.isEmpty || queuedDatagrams > 0
        }
        // The tunnel's case first: every check below only answers true, so the order is free.
        if data && queuedDatagrams > 0 { return true }
        if dataBlockedToSend != nil { return true }
        if handshakeDoneToSend || newTokenToSend || maxDataToSend || maxStreamsBidiToSend || maxStreamsUniToSend { return true }
        if !localCIDsToAnnounce.isEmpty || !peerCIDsToRetire.isEmpty { return true }
        if !multipath.localCIDsToAnnounce.isEmpty || !multipath.peerCIDsToRetire.isEmpty || multipath.maxPathIDToSend { return true }
        if pathList.contains(where: { $0.statusToSend || $0.abandonToSend != nil }) { return true }
        if data {
            // A stream blocked by the connection's limit has nothing to send: answering "yes" here
            // made every poll build a packet of nothing but a refreshed ACK, without end (a debug
            // test once grew to 12 GB that way).
            let connectionRoom = peerMaxData > dataSent ? peerMaxData - dataSent : 0
            for id in sendQueue { if let s = streams[id], s.canSendNow(connectionRoom: connectionRoom) { return true } }
        }
        for s in streams.values where s.maxStreamDataToSend || s.stopSendingToSend != nil || s.streamDataBlockedToSend != nil {
            return true
        }
        return false
    }

    /// Appends frames in priority order until the packet is full.
    private func writeFrames(
        space: PacketNumberSpace, level: EncryptionLevel, path: Path, payloadLimit: Int,
        frames: inout SentFrames, ackEliciting: inout Bool, now: Timestamp
    ) {
        var remaining: Int { payloadLimit - datagramWriter.count }
        func put(_ f: Frame, _ record: SentFrame) -> Bool {
            guard f.encodedLength <= remaining else { return false }
            f.encode(to: &datagramWriter)
            frames.append(record)
            if f.isAckEliciting { ackEliciting = true }
            return true
        }

        // CRYPTO (Initial, Handshake, and post-handshake messages in 1-RTT), on the initial path.
        if level != .earlyData && path.id == 0 {
            let si = space.id.rawValue
            while remaining > 8 {
                let offsetGuess = cryptoSend[si].nextNewOffset
                let maxLen = Frame.maxCryptoDataLength(offset: offsetGuess + 65536, budget: remaining)
                guard maxLen > 0, let chunk = cryptoSend[si].nextChunk(maxLength: maxLen, limit: UInt64.max) else { break }
                Frame.encodeCryptoHeader(offset: chunk.offset, length: chunk.data.count, to: &datagramWriter)
                datagramWriter.writeBytes(chunk.data)
                frames.append(.crypto(offset: chunk.offset, length: chunk.data.count))
                ackEliciting = true
            }
        }
        guard space.id == .applicationData else { return }

        if level == .application {
            // Path probing first: it is what this path is for until validated (RFC 9000 §8.2).
            if path.challengeNeedsSending, let c = path.challenge, put(.pathChallenge(data: c), .pathChallenge) {
                path.challengeNeedsSending = false
                // The validation timeout runs from the first PATH_CHALLENGE (RFC 9000 §8.2.4).
                if path.challengeSentAt == nil { path.challengeSentAt = now }
            }
            while let r = path.responsesToSend.first, put(.pathResponse(data: r), .pathResponse) { path.responsesToSend.removeFirst() }
            // A path under validation carries only probing frames.
            guard path.isUsable else { return }
            if handshakeDoneToSend, put(.handshakeDone, .handshakeDone) { handshakeDoneToSend = false }
            if newTokenToSend, let token = newTokenIssued, put(.newToken(token: token[...]), .newToken) { newTokenToSend = false }
            if maxDataToSend, put(.maxData(localMaxData), .maxData) { maxDataToSend = false }
            if maxStreamsBidiToSend, put(.maxStreams(bidirectional: true, maximum: localMaxStreamsBidi), .maxStreams(bidirectional: true)) {
                maxStreamsBidiToSend = false
            }
            if maxStreamsUniToSend, put(.maxStreams(bidirectional: false, maximum: localMaxStreamsUni), .maxStreams(bidirectional: false)) {
                maxStreamsUniToSend = false
            }
            while let seq = localCIDsToAnnounce.first {
                guard let cid = localCIDs[seq] else {
                    localCIDsToAnnounce.removeFirst()
                    continue
                }
                let f = NewConnectionIDFrame(
                    sequenceNumber: seq, retirePriorTo: 0, connectionID: cid,
                    statelessResetToken: StatelessResetTokens.token(for: cid, key: config.statelessResetKey))
                guard put(.newConnectionID(f), .newConnectionID(sequence: seq)) else { break }
                localCIDsToAnnounce.removeFirst()
            }
            while let seq = peerCIDsToRetire.first, put(.retireConnectionID(sequenceNumber: seq), .retireConnectionID(sequence: seq)) {
                peerCIDsToRetire.removeFirst()
            }
            if let limit = dataBlockedToSend, put(.dataBlocked(limit: limit), .dataBlocked) {
                dataBlockedToSend = nil
                dataBlockedSentAt = limit
            }
            writeMultipathControlFrames(put)
            for s in streams.values {
                if let limit = s.streamDataBlockedToSend,
                    put(.streamDataBlocked(streamID: s.id, limit: limit), .streamDataBlocked(id: s.id))
                {
                    s.streamDataBlockedToSend = nil
                    s.streamDataBlockedSentAt = limit
                }
                if s.maxStreamDataToSend, put(.maxStreamData(streamID: s.id, maximum: s.recvLimit), .maxStreamData(id: s.id)) {
                    s.maxStreamDataToSend = false
                }
                if let code = s.stopSendingToSend, put(.stopSending(streamID: s.id, errorCode: code), .stopSending(id: s.id)) {
                    s.stopSendingToSend = nil
                }
            }
        }

        guard path.isUsable else { return }
        // DATAGRAM frames (RFC 9221): unreliable, congestion controlled, never split. This path's
        // own queues first (the bonding scheduler's choice, urgent ones before the others), then
        // the connection's shared queue.
        if !path.urgentDatagrams.isEmpty {
            writeDatagrams(
                from: &path.urgentDatagrams, shared: false, path: path, payloadLimit: payloadLimit, frames: &frames,
                ackEliciting: &ackEliciting)
        }
        writeDatagrams(
            from: &path.datagrams, shared: false, path: path, payloadLimit: payloadLimit, frames: &frames,
            ackEliciting: &ackEliciting)
        guard carriesData(path) else { return }
        writeDatagrams(
            from: &datagramsToSend, shared: true, path: path, payloadLimit: payloadLimit, frames: &frames,
            ackEliciting: &ackEliciting)

        // Stream frames, round-robin across streams with something to send.
        var rounds = sendQueue.count
        while rounds > 0, remaining > 16, !sendQueue.isEmpty {
            rounds -= 1
            let id = sendQueue.removeFirst()
            guard let s = streams[id] else { continue }
            if let code = s.resetToSend, s.resetSentFinalSize == nil {
                // RFC 9000 §4.5: the final size is what was sent (never beyond the peer's limit),
                // not what the application wrote.
                let finalSize = s.send.nextNewOffset
                if put(.resetStream(streamID: id, errorCode: code, finalSize: finalSize), .resetStream(id: id)) {
                    s.resetSentFinalSize = finalSize
                    s.send.discardAll()
                } else {
                    sendQueue.append(id)
                }
                continue
            }
            guard s.resetToSend == nil else { continue }
            writeStreamFrames(s, remaining: { remaining }, frames: &frames, ackEliciting: &ackEliciting)
            noteFlowControlBlocking(s)
            if s.wantsToSend { sendQueue.append(id) }
        }
    }

    private func writeDatagrams(
        from queue: inout DatagramQueue, shared: Bool, path: Path, payloadLimit: Int,
        frames: inout SentFrames, ackEliciting: inout Bool
    ) {
        // The room of an empty 1-RTT packet on this path: a datagram larger than that never fits
        // (RFC 9221 §5: no fragmentation) and is dropped (the path's MTU fell since it was queued);
        // a smaller one waits for the next packet. One in the shared queue is dropped only when it
        // fits no usable path: paths of different MTUs share that queue.
        let tagLength = writeKeys[EncryptionLevel.application.rawValue]?.suite.tagLength ?? 16
        let emptyPacketRoom = path.maxDatagramSize - (1 + path.destinationCID.length + 4) - tagLength
        while let length = queue.firstLength {
            let need = Frame.datagramHeaderLength(length: length, hasLength: true) + length
            if need > payloadLimit - datagramWriter.count {
                guard need > emptyPacketRoom else { return }
                if shared && pathList.count > 1
                    && pathList.contains(where: {
                        $0.isUsable && need <= $0.maxDatagramSize - (1 + $0.destinationCID.length + 4) - tagLength
                    })
                {
                    return
                }
                releaseSlot(of: queue.removeFirst())
                stats.datagramsDropped += 1
                continue
            }
            let d = queue.removeFirst()
            Frame.encodeDatagramHeader(length: length, hasLength: true, to: &datagramWriter)
            writeDatagramPayload(d)
            frames.appendDatagram(tag: d.tag)
            ackEliciting = true
            stats.datagramsSent += 1
        }
    }

    /// RFC 9000 §4.1: a sender SHOULD send STREAM_DATA_BLOCKED or DATA_BLOCKED when it has data
    /// it cannot send because of flow control: once per limit (a frame per packet would repeat
    /// what the peer knows).
    func noteFlowControlBlocking(_ s: Stream) {
        guard s.canSend, s.resetToSend == nil, s.send.unsentNewBytes > 0 else { return }
        if s.send.nextNewOffset >= s.sendLimit {
            if s.streamDataBlockedSentAt != s.sendLimit { s.streamDataBlockedToSend = s.sendLimit }
        } else if dataSent >= peerMaxData, dataBlockedSentAt != peerMaxData {
            dataBlockedToSend = peerMaxData
        }
    }

    private func writeStreamFrames(_ s: Stream, remaining: () -> Int, frames: inout SentFrames, ackEliciting: inout Bool) {
        while remaining() > 16 {
            // Lost data is not charged again to flow control; new data is bounded by both limits.
            let connectionRoom = peerMaxData > dataSent ? peerMaxData - dataSent : 0
            let newLimit = min(s.sendLimit, s.send.nextNewOffset + connectionRoom)
            let offsetGuess = s.send.nextNewOffset
            let maxLen = Frame.maxStreamDataLength(streamID: s.id, offset: offsetGuess + 65536, budget: remaining(), hasLength: true)
            guard maxLen > 0 else { return }
            if let chunk = s.send.nextChunk(maxLength: maxLen, limit: newLimit) {
                let end = chunk.offset + UInt64(chunk.data.count)
                let fin = s.finWritten && end == s.send.endOffset
                Frame.encodeStreamHeader(
                    streamID: s.id, offset: chunk.offset, length: chunk.data.count, fin: fin,
                    hasLength: true, to: &datagramWriter)
                datagramWriter.writeBytes(chunk.data)
                if !chunk.isRetransmission { dataSent += UInt64(chunk.data.count) }
                if fin { s.finSent = true }
                frames.append(.stream(id: s.id, offset: chunk.offset, length: chunk.data.count, fin: fin))
                ackEliciting = true
                stats.streamBytesSent += UInt64(chunk.data.count)
                continue
            }
            // A bare FIN (all data already sent).
            if s.finWritten && !s.finSent && s.send.unsentNewBytes == 0 && !s.send.hasLostData {
                let offset = s.send.endOffset
                Frame.encodeStreamHeader(streamID: s.id, offset: offset, length: 0, fin: true, hasLength: true, to: &datagramWriter)
                s.finSent = true
                frames.append(.stream(id: s.id, offset: offset, length: 0, fin: true))
                ackEliciting = true
            }
            return
        }
    }
}
