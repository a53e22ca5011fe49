// Loss detection and recovery (RFC 9002 §6 and Appendix A): processing ACK frames, RTT samples,
// packet- and time-threshold loss, the probe timeout, and what acknowledgement or loss of each
// frame means for the data it carried.
import Congestion

extension Connection {
    /// RFC 9002 §6.1.1: kPacketThreshold.
    static let packetThreshold: UInt64 = 3

    func onAckReceived(_ ack: AckFrame, space: PacketNumberSpace, path: Path, now: Timestamp) throws {
        let largest = ack.largestAcknowledged
        // RFC 9000 §13.1: acknowledging a packet we never sent is a PROTOCOL_VIOLATION.
        guard largest < space.nextPacketNumber else {
            throw TransportError(.protocolViolation, frameType: FrameType.ack, "ACK for unsent packet \(largest)")
        }
        if space.largestAcked == nil || largest > space.largestAcked! { space.largestAcked = largest }

        // The connection's scratch array, taken and given back, so that an ACK allocates nothing.
        var newlyAcked = ackedScratch
        ackedScratch = []
        defer {
            newlyAcked.removeAll(keepingCapacity: true)
            ackedScratch = newlyAcked
        }
        for r in ack.ranges.reversed() { space.removeAcknowledged(r, into: &newlyAcked) }
        guard !newlyAcked.isEmpty else { return }

        // RFC 9002 §5.1: an RTT sample when the largest acknowledged is newly acknowledged and
        // at least one newly acknowledged packet was ack-eliciting.
        // (Index loops over `newlyAcked`: iterating it would copy every SentPacket.)
        var newRTTSample = false
        var largestTimeSent: Timestamp?
        var anyAckEliciting = false
        for i in newlyAcked.indices {
            if largestTimeSent == nil && newlyAcked[i].packetNumber == largest { largestTimeSent = newlyAcked[i].timeSent }
            if newlyAcked[i].ackEliciting { anyAckEliciting = true }
        }
        if let largestTimeSent, anyAckEliciting {
            let sample = now - largestTimeSent
            var ackDelay = Duration.zero
            if space.id == .applicationData {
                let exponent = peerParameters?.ackDelayExponent ?? 3
                // The field is the peer's to choose (up to 2^62-1): saturate, never overflow.
                let limit = (UInt64.max / 1_000) >> exponent
                ackDelay = .microseconds(ack.ackDelay > limit ? UInt64.max / 1_000 : ack.ackDelay << exponent)
                // RFC 9002 §5.3: after confirmation, ack delay is limited to max_ack_delay.
                if handshakeConfirmed { ackDelay = min(ackDelay, peerMaxAckDelay) }
            }
            path.rtt.update(latest: sample, ackDelay: ackDelay, handshakeConfirmed: handshakeConfirmed)
            newRTTSample = true
            qlogMetrics(path: path, now: now)
        }

        let priorInFlight = path.bytesInFlight
        var ackedBytes = 0
        // Ascending packet-number order: controllers that count rounds see packets as sent.
        for i in newlyAcked.indices {
            let size = newlyAcked[i].size
            let timeSent = newlyAcked[i].timeSent
            if newlyAcked[i].inFlight {
                path.bytesInFlight -= size
                ackedBytes += size
                let delivery = newlyAcked[i].delivery
                path.delivery.onPacketAcked(delivery, bytes: size, timeSent: timeSent, now: now)
                path.congestion.onPacketAcked(
                    AckedPacketInfo(sentBytes: size, timeSent: timeSent, delivery: delivery),
                    rtt: path.rtt.sample, bytesInFlight: path.bytesInFlight, now: now)
            }
            path.bytesAcked += UInt64(size)
            if config.pmtuDiscovery && space.id == .applicationData { onPMTUPacketAcknowledged(newlyAcked[i], path: path, now: now) }
            let pn = newlyAcked[i].packetNumber
            for j in 0..<newlyAcked[i].frames.count { onFrameAcked(newlyAcked[i].frames[j], space: space, packetNumber: pn) }
        }
        if space.id == .applicationData, largest >= path.keyPhaseStartPN { keyUpdate.currentPhaseAcked = true }
        if ackedBytes > 0 {
            let rate = path.delivery.generateSample(minRTT: path.rtt.minimum)
            if let rate { updateDeliveryRate(path: path, sample: rate) }
            path.congestion.onAckProcessed(
                AckSummary(
                    now: now, ackedBytes: ackedBytes, priorBytesInFlight: priorInFlight,
                    bytesInFlight: path.bytesInFlight, rtt: path.rtt.sample,
                    hasNewRTTSample: newRTTSample, rateSample: rate))
        }
        if space.id == .applicationData, path.ecn.isValidating, !newlyAcked.isEmpty {
            // RFC 9000 §13.4.2 validation; RFC 9002 §7.1: a CE increase is a congestion signal.
            var marked = 0
            for i in newlyAcked.indices where newlyAcked[i].ecnMarked { marked += 1 }
            if path.ecn.onAck(ack.ecn, newlyAckedMarked: marked) {
                path.congestion.onECNCongestionEvent(sentTime: newlyAcked[newlyAcked.count - 1].timeSent, now: now)
                qlog?.record(
                    time: now, name: "recovery:ecn_state_updated",
                    data: "{\"state\":\"\(path.ecn.state.rawValue)\",\"path_id\":\(path.id),\"trigger\":\"ce\"}")
            }
        }

        try detectLostPackets(space: space, path: path, now: now)
        // RFC 9002 §6.2.1: reset the PTO backoff on an acknowledgement, except that a client does
        // not reset it for Initial acks before its address is validated... (we follow quinn/aioquic
        // and reset whenever an ack arrives).
        path.ptoCount = 0
        setLossDetectionTimer(path: path, now: now)
    }

    /// Delivery rate for the bonding scheduler and the daemon's statistics: the per-ACK
    /// delivery-rate samples (each over at least one minimum RTT), smoothed with weight 1/8. An
    /// application-limited sample only counts when it is higher (draft-cheng §3.4: a sender short
    /// of data says nothing about the path's capacity) or when its packet met a standing queue:
    /// then the bottleneck was busy whatever the sender had to send. The bonding scheduler meters
    /// each path, so its paths look application-limited most of the time; without this a path
    /// whose rate falls would keep its old rate for good. A queue is more than the path's own
    /// jitter (twice its RTT variation): on a radio link wandering ±15 ms, RTT samples above the
    /// minimum are the norm, and counting its application-limited samples as queued drove the
    /// rate of an LTE path held back by the tunnel's queue guard from 25 to 0.5 Mbit/s.
    func updateDeliveryRate(path: Path, sample: RateSample) {
        guard
            Connection.countsForDeliveryRate(
                sample, current: path.deliveryRate, minRTT: path.rtt.minimum,
                rttVariation: path.rtt.variation)
        else { return }
        path.deliveryRate = path.deliveryRate == 0 ? sample.deliveryRate : path.deliveryRate * 0.875 + sample.deliveryRate * 0.125
    }

    /// Whether `sample` enters a path's delivery rate (`updateDeliveryRate`'s rule).
    static func countsForDeliveryRate(_ sample: RateSample, current: Double, minRTT: Duration, rttVariation: Duration) -> Bool {
        let queued = minRTT > .zero && sample.rtt > minRTT + max(minRTT / 4, .milliseconds(5)) + rttVariation * 2
        return sample.deliveryRate > 0 && (!sample.isAppLimited || queued || sample.deliveryRate > current)
    }

    /// RFC 9002 §6.1: packet-threshold and time-threshold loss detection.
    func detectLostPackets(space: PacketNumberSpace, path: Path, now: Timestamp) throws {
        guard let largestAcked = space.largestAcked else { return }
        space.lossTime = nil
        let lossDelay = path.rtt.lossDelay
        let lostSendTime = now - lossDelay
        var lost: [SentPacket] = []
        space.forEachSent(upTo: largestAcked) { p in
            if p.timeSent <= lostSendTime || largestAcked >= p.packetNumber + Connection.packetThreshold {
                lost.append(p)
            } else {
                let t = p.timeSent + lossDelay
                space.lossTime = space.lossTime.map { min($0, t) } ?? t
            }
        }
        guard !lost.isEmpty else { return }
        var newestLostSentTime: Timestamp?
        // Packets above the base size among the lost (black-hole detection, RFC 8899 §4.3).
        var smallestLarge = Int.max
        var earliestLarge = Timestamp.zero
        for p in lost {
            space.remove(p.packetNumber)
            if p.isPMTUProbe {
                // RFC 9000 §14.4 / RFC 8899 §3 item 7: a lost probe is no sign of congestion: no
                // congestion response, not one of the path's losses (PING and PADDING carried
                // nothing to send again).
                if p.inFlight { path.bytesInFlight -= p.size }
                onPMTUProbeLost(packetNumber: p.packetNumber, path: path, now: now)
                continue
            }
            if p.size > PathMTUDiscovery.basePLPMTU {
                if smallestLarge == Int.max { earliestLarge = p.timeSent }
                smallestLarge = min(smallestLarge, p.size)
            }
            if p.inFlight {
                path.bytesInFlight -= p.size
                newestLostSentTime = max(newestLostSentTime ?? p.timeSent, p.timeSent)
                path.delivery.onPacketLost(bytes: p.size)
                if p.ecnMarked { path.ecn.onMarkedPacketLost() }
                path.congestion.onPacketLost(
                    LostPacketInfo(sentBytes: p.size, timeSent: p.timeSent, delivery: p.delivery),
                    bytesInFlight: path.bytesInFlight, now: now)
            }
            path.packetsLost += 1
            stats.packetsLost += 1
            for f in p.frames { onFrameLost(f, space: space) }
            qlog?.record(
                time: now, name: "quic:packet_lost",
                data:
                    "{\"header\":{\"packet_type\":\"\(qlogPacketType(space.id))\",\"packet_number\":\(p.packetNumber),\"path_id\":\(path.id)}}"
            )
        }
        if config.pmtuDiscovery && space.id == .applicationData && smallestLarge != Int.max {
            onPMTUSuspiciousLoss(path: path, smallest: smallestLarge, earliest: earliestLarge, now: now)
        }
        if let t = newestLostSentTime {
            path.congestion.onCongestionEvent(lostPacketSentTime: t, now: now)
            // RFC 9002 §7.6: persistent congestion if ack-eliciting losses span more than
            // (smoothed_rtt + max(4 rttvar, granularity) + max_ack_delay) * 3 with an RTT sample.
            let ackEliciting = lost.filter { $0.ackEliciting && !$0.isPMTUProbe }
            if path.rtt.hasSample, let first = ackEliciting.first, let last = ackEliciting.last,
                last.timeSent - first.timeSent > path.rtt.probeTimeout(maxAckDelay: peerMaxAckDelay) * 3,
                ackEliciting.count >= 2
            {
                path.congestion.onPersistentCongestion(now: now)
            }
        }
    }

    func onFrameAcked(_ f: SentFrame, space: PacketNumberSpace, packetNumber: UInt64) {
        switch f {
        case .crypto(let offset, let length):
            cryptoSend[space.id.rawValue].onAcked(offset: offset, length: length)
        case .stream(let id, let offset, let length, let fin):
            guard let s = streams[id] else { return }
            s.send.onAcked(offset: offset, length: length)
            if fin { s.finAcked = true }
            maybeCollectStream(s)
        case .resetStream(let id):
            if let s = streams[id] {
                s.resetAcked = true
                maybeCollectStream(s)
            }
        case .ack(let largest):
            space.onPeerAcknowledgedAck(largest: largest)
        case .datagram(let tag):
            if let tag { emit(.datagramAcknowledged(tag: tag)) }
        case .datagrams(let first, let n):
            for i in 0..<UInt64(n) { emit(.datagramAcknowledged(tag: first &+ i)) }
        case .pathNewConnectionID(let pid, let seq):
            // The peer now holds a connection ID of ours for this path ID (draft-21 §3.1).
            if multipath.localCIDs[pid]?[seq] != nil { multipath.pathIDsPeerCanAnswer.insert(pid) }
        case .newToken:
            newTokenAcknowledged = true
            newTokenToSend = false
        case .handshakeDone, .newConnectionID, .retireConnectionID, .maxData, .maxStreamData, .maxStreams,
            .dataBlocked, .streamDataBlocked, .streamsBlocked, .stopSending, .ping,
            .pathChallenge, .pathResponse, .connectionClose, .pathRetireConnectionID,
            .pathStatus, .pathAbandon, .maxPathID:
            break
        }
    }

    /// RFC 9000 §13.3: retransmit the information a lost packet carried, not the packet.
    func onFrameLost(_ f: SentFrame, space: PacketNumberSpace) {
        switch f {
        case .crypto(let offset, let length):
            if !space.discarded { cryptoSend[space.id.rawValue].onLost(offset: offset, length: length) }
        case .stream(let id, let offset, let length, let fin):
            guard let s = streams[id], s.resetToSend == nil else { return }
            s.send.onLost(offset: offset, length: length)
            if fin && !s.finAcked { s.finSent = false }
            scheduleSend(id)
        case .resetStream(let id):
            if let s = streams[id], !s.resetAcked {
                s.resetSentFinalSize = nil
                scheduleSend(id)
            }
        case .stopSending(let id):
            if let s = streams[id], !s.recv.isFinished, s.resetReceived == nil, s.stopSendingToSend == nil {
                s.stopSendingToSend = s.lastStopSendingCode
            }
        case .maxData: maxDataToSend = true
        case .maxStreamData(let id):
            if let s = streams[id], s.recv.finalSize == nil { s.maxStreamDataToSend = true }
        case .maxStreams(let bidi):
            if bidi { maxStreamsBidiToSend = true } else { maxStreamsUniToSend = true }
        case .dataBlocked:
            // RFC 9000 §13.3: a lost blocked frame is sent again only while still blocked at that limit.
            if dataBlockedSentAt == peerMaxData && dataSent >= peerMaxData { dataBlockedToSend = peerMaxData }
        case .streamDataBlocked(let id):
            if let s = streams[id], s.streamDataBlockedSentAt == s.sendLimit, s.send.nextNewOffset >= s.sendLimit,
                s.send.unsentNewBytes > 0
            {
                s.streamDataBlockedToSend = s.sendLimit
            }
        case .streamsBlocked: break
        case .newConnectionID(let seq):
            if localCIDs[seq] != nil { localCIDsToAnnounce.append(seq) }
        case .retireConnectionID(let seq): peerCIDsToRetire.append(seq)
        case .handshakeDone: handshakeDoneToSend = true
        case .newToken: if !newTokenAcknowledged { newTokenToSend = true }
        case .pathNewConnectionID(let pid, let seq):
            if multipath.localCIDs[pid]?[seq] != nil { multipath.localCIDsToAnnounce.append((pid, seq)) }
        case .pathRetireConnectionID(let pid, let seq): multipath.peerCIDsToRetire.append((pid, seq))
        case .pathStatus(let pid): paths[pid]?.statusToSend = true
        case .pathAbandon(let pid):
            if let p = paths[pid], p.state == .abandoned, p.abandonToSend == nil { p.abandonToSend = 0 }
        case .maxPathID: multipath.maxPathIDToSend = true
        case .datagram(let tag):
            if let tag { emit(.datagramLost(tag: tag)) }
        case .datagrams(let first, let n):
            for i in 0..<UInt64(n) { emit(.datagramLost(tag: first &+ i)) }
        case .ack, .ping, .pathChallenge, .pathResponse, .connectionClose:
            // ACKs are regenerated; PING/DATAGRAM are not retransmitted (RFC 9221 §5.2);
            // PATH_CHALLENGE is re-sent by its own timer.
            break
        }
    }

    // MARK: - Loss detection timer (RFC 9002 §6.2, Appendix A.8), one per path

    /// The spaces whose packets travel on `path`: path 0 also carries Initial and Handshake.
    func spaces(of path: Path) -> [PacketNumberSpace] {
        path.id == 0 ? spaces : [path.space]
    }

    func earliestLossTime(path: Path) -> (Timestamp, PacketNumberSpace)? {
        // The spaces of `spaces(of: path)` in its order, without the array (this runs per packet).
        var best: (Timestamp, PacketNumberSpace)?
        func visit(_ s: PacketNumberSpace) {
            if !s.discarded, let t = s.lossTime, best == nil || t < best!.0 { best = (t, s) }
        }
        if path.id == 0 {
            visit(initialSpace)
            visit(handshakeSpace)
        }
        visit(path.space)
        return best
    }

    /// The probe timeout deadline and the space to probe.
    func ptoTimeAndSpace(path: Path, now: Timestamp) -> (Timestamp, PacketNumberSpace)? {
        let backoff = UInt64(1) << UInt64(min(path.ptoCount, 16))
        var duration = path.rtt.probeTimeout(maxAckDelay: .zero) * backoff
        // The spaces of `spaces(of: path)` in its order, without the array (this runs per packet).
        func inFlight(_ s: PacketNumberSpace) -> Bool { !s.discarded && s.ackElicitingInFlight > 0 }
        let anyInFlight = inFlight(path.space) || (path.id == 0 && (inFlight(initialSpace) || inFlight(handshakeSpace)))
        if !anyInFlight {
            // RFC 9002 §6.2.2.1: client anti-deadlock: arm from now until the handshake is done.
            guard path.id == 0, !isServer, !handshakeConfirmed else { return nil }
            let space = writeKeys[EncryptionLevel.handshake.rawValue] != nil ? spaces[1] : spaces[0]
            return (now + duration, space)
        }
        var best: (Timestamp, PacketNumberSpace)?
        func visit(_ s: PacketNumberSpace) {
            guard inFlight(s) else { return }
            if s.id == .applicationData {
                // RFC 9002 §6.2.1: application data is not probed before the handshake is confirmed.
                if !handshakeConfirmed && path.id == 0 { return }
                duration = duration + peerMaxAckDelay * backoff
            }
            guard let last = s.timeOfLastAckElicitingPacket else { return }
            let t = last + duration
            if best == nil || t < best!.0 { best = (t, s) }
        }
        if path.id == 0 {
            visit(initialSpace)
            visit(handshakeSpace)
        }
        visit(path.space)
        if best == nil, !handshakeConfirmed, path.space.ackElicitingInFlight > 0, let last = path.space.timeOfLastAckElicitingPacket {
            // 0-RTT/1-RTT data in flight before confirmation: still needs a timer.
            best = (last + duration, path.space)
        }
        return best
    }

    func setLossDetectionTimer(now: Timestamp) {
        for p in paths.values { setLossDetectionTimer(path: p, now: now) }
    }

    func setLossDetectionTimer(path: Path, now: Timestamp) {
        if let (t, _) = earliestLossTime(path: path) {
            path.lossDetectionDeadline = t
            return
        }
        // RFC 9002 §6.2.2.1: a server at the amplification limit must not arm the PTO.
        if isServer && !path.addressValidated && path.amplificationBudget == 0 {
            path.lossDetectionDeadline = nil
            return
        }
        path.lossDetectionDeadline = ptoTimeAndSpace(path: path, now: now)?.0
    }

    func onLossDetectionTimeout(path: Path, now: Timestamp) {
        if let (_, space) = earliestLossTime(path: path) {
            try? detectLostPackets(space: space, path: path, now: now)
            setLossDetectionTimer(path: path, now: now)
            return
        }
        guard let (_, space) = ptoTimeAndSpace(path: path, now: now) else {
            path.lossDetectionDeadline = nil
            return
        }
        // RFC 9002 §6.2.4: send one or two ack-eliciting probe packets in the space.
        path.ptoCount += 1
        if path.challenge != nil && !path.challengeNeedsSending {
            // RFC 9000 §8.2.1: a path under validation may be probed again; at most once per PTO
            // (no more often than an Initial would be re-sent), so one lost PATH_CHALLENGE does not
            // cost the whole validation timeout (3 PTOs from the first send).
            path.challengeNeedsSending = true
        }
        if !space.hasInFlight && !isServer && !handshakeConfirmed {
            // Anti-deadlock probe: Initial padded or Handshake PING.
            space.probes = 1
        } else {
            space.probes = 2
            // Re-send in-flight CRYPTO data in the probe (handshake spaces): it is what the peer lacks.
            if space.id != .applicationData {
                space.forEachSent(upTo: UInt64.max) { p in
                    for f in p.frames { if case .crypto(let o, let l) = f { cryptoSend[space.id.rawValue].onLost(offset: o, length: l) } }
                }
            } else {
                // Retransmit the oldest unacknowledged stream data so the probe carries useful bytes.
                var resent = 0
                space.forEachSent(upTo: UInt64.max) { p in
                    guard resent < 2 else { return }
                    for f in p.frames { if case .stream = f { onFrameLost(f, space: space) } }
                    resent += 1
                }
            }
        }
        qlog?.record(
            time: now, name: "recovery:loss_timer_updated",
            data: "{\"event_type\":\"expired\",\"timer_type\":\"pto\",\"path_id\":\(path.id)}")
        setLossDetectionTimer(path: path, now: now)
    }
}
