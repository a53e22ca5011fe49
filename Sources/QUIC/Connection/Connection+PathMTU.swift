// Path MTU discovery on every path (DPLPMTUD: RFC 8899, the QUIC way of RFC 9000 §14.3/§14.4):
// where a path's size starts, the PING + PADDING probes `poll` sends, what acknowledgements,
// losses and timers mean for them, black holes, and what the owner sees of it (`pathMTU`, the
// DATAGRAM room per path, `.pathMTUChanged`). The per-path decisions are `PathMTUDiscovery`'s.
import Congestion

extension Connection {
    // MARK: - API

    /// The largest UDP payload path `pathID` sends now (its PLPMTU while discovery runs), or nil
    /// when there is no such path.
    public func pathMTU(_ pathID: UInt32) -> Int? { paths[pathID]?.maxDatagramSize }

    /// The local network stack refused to send a datagram of `size` bytes on path `pathID` because
    /// it is larger than the outgoing interface's MTU (EMSGSIZE from sendmsg: the WAN's own MTU
    /// fell, e.g. a PPPoE or LTE modem renegotiated it). DPLPMTUD takes it as a failed size at
    /// once (RFC 8899 §5.1.2: MAX_PLPMTU is bounded by the local interface MTU), so the path does not wait
    /// for three loss events to stop sending what cannot leave.
    public func datagramRefusedAsTooLarge(pathID: UInt32, size: Int, now: Timestamp) {
        guard config.pmtuDiscovery, let path = paths[pathID] else { return }
        let probeInFlight = path.mtu.probe != nil
        let fellBack = path.mtu.onLocalRefusal(size: size, now: now)
        if probeInFlight && path.mtu.probe == nil {
            path.pmtuProbesLost += 1
            stats.pmtuProbesLost += 1
        }
        guard fellBack else { return }
        path.pmtuBlackHoles += 1
        stats.pmtuBlackHolesDetected += 1
        setPathMTU(path, path.mtu.current, now: now)
    }

    // MARK: - Sizes

    /// MAX_PLPMTU of every path (RFC 8899 §5.1.2): our maxUDPPayloadSize, capped by the peer's
    /// max_udp_payload_size (RFC 9000 §18.2: never send larger datagrams than the peer accepts).
    var pathMTUMaximum: Int { min(config.maxUDPPayloadSize, peerMaxUDPPayloadSize) }

    /// The size a new path sends at first: with discovery the base PLPMTU (RFC 9000 §14.3:
    /// QUIC's smallest maximum datagram size, 1200), else the maximum, as without discovery.
    var initialPathMTU: Int {
        config.pmtuDiscovery ? min(PathMTUDiscovery.basePLPMTU, pathMTUMaximum) : pathMTUMaximum
    }

    func makePathMTUDiscovery() -> PathMTUDiscovery {
        PathMTUDiscovery(maximum: pathMTUMaximum, raiseInterval: config.pmtuRaiseInterval)
    }

    /// The peer's max_udp_payload_size arrived: it caps every path.
    func onPeerMaxUDPPayloadSize(_ size: Int, now: Timestamp) {
        peerMaxUDPPayloadSize = size
        for p in pathList {
            if config.pmtuDiscovery {
                if let smaller = p.mtu.setMaximum(pathMTUMaximum, now: now) { setPathMTU(p, smaller, now: now) }
            } else {
                // RFC 9000 §18.2: never send datagrams larger than the peer's max_udp_payload_size.
                p.maxDatagramSize = min(p.maxDatagramSize, size)
            }
        }
    }

    /// A path's usable size changed: the packet builder, pacer and controller follow, the owner hears.
    func setPathMTU(_ p: Path, _ size: Int, now: Timestamp) {
        guard size != p.maxDatagramSize else { return }
        p.maxDatagramSize = size
        p.pacer.setMaxDatagramSize(size)
        // RFC 8899 §3 item 7: a new PLPMTU MUST NOT increase the congestion window in bytes; the
        // controllers only rescale what they count in packets (RFC 9002's minimum window).
        p.congestion.onMaxDatagramSizeChanged(size)
        emit(.pathMTUChanged(pathID: p.id, mtu: size))
        qlog?.record(
            time: now, name: "quic:mtu_updated",
            data: "{\"path_id\":\(p.id),\"new\":\(size),\"done\":\(p.mtu.phase == .searchComplete)}")
    }

    // MARK: - Probes (built by `poll`)

    /// The size of the probe `poll` should send on `path` now, or nil. Probes go only on an
    /// active, validated path once the handshake is confirmed, one at a time, within the
    /// congestion window (RFC 9000 §14.4: probes consume it; so RFC 8899 §3 item 7's one-RTT
    /// spacing of probes the controller does not limit does not apply), and not while a PTO
    /// probe is owed.
    func pmtuProbeSize(path: Path, now: Timestamp) -> Int? {
        guard config.pmtuDiscovery, state == .established, handshakeConfirmed, path.state == .active,
            path.addressValidated
        else { return nil }
        if path.mtu.phase == .disabled { path.mtu.start(now: now) }
        guard let size = path.mtu.nextProbeSize, size > path.maxDatagramSize, path.space.probes == 0,
            path.bytesInFlight < path.congestion.congestionWindow,
            writeKeys[EncryptionLevel.application.rawValue] != nil
        else { return nil }
        return size
    }

    /// Writes a PMTU probe of exactly `size` bytes into the datagram: one 1-RTT packet of PING
    /// and PADDING (RFC 9000 §14.4: ack-eliciting; nothing in it needs repeating if it is lost,
    /// RFC 8899 §3 item 4), and starts its PROBE_TIMER.
    func buildPMTUProbe(size: Int, path: Path, now: Timestamp, into packets: inout [PendingPacket]) -> Bool {
        guard let keys = writeKeys[EncryptionLevel.application.rawValue] else { return false }
        let space = path.space
        let pn = space.nextPacketNumber
        let pnLength = PacketNumberCoding.encodedLength(packetNumber: pn, largestAcked: space.largestAcked)
        let start = datagramWriter.count
        // RFC 9000 §17.3.1: 0b01 | spin 0 | reserved 00 | key phase | pn length.
        datagramWriter.writeUInt8(0x40 | (keyUpdate.writePhase ? 0x04 : 0) | UInt8(pnLength - 1))
        path.destinationCID.write(to: &datagramWriter)
        let pnOffset = datagramWriter.count
        datagramWriter.writeUInt(pn, bytes: pnLength)
        let payloadStart = datagramWriter.count
        Frame.ping.encode(to: &datagramWriter)
        let tag = keys.suite.tagLength
        let payloadEnd = start + size - tag
        guard payloadEnd > datagramWriter.count else {
            datagramWriter.bytes.removeLast(datagramWriter.count - start)
            return false
        }
        // PADDING (zeros) to the probed size, then the tag's placeholder.
        datagramWriter.bytes.append(contentsOf: repeatElement(0, count: payloadEnd - datagramWriter.count + tag))
        space.nextPacketNumber += 1
        var frames = SentFrames()
        frames.append(.ping)
        var sent = SentPacket(packetNumber: pn, timeSent: now, size: 0, ackEliciting: true, inFlight: true, frames: frames)
        sent.isPMTUProbe = true
        packets.append(
            PendingPacket(
                start: start, lengthFieldOffset: nil, pnOffset: pnOffset, pnLength: pnLength,
                payloadStart: payloadStart, payloadEnd: payloadEnd, packetNumber: pn,
                level: .application, sent: sent, packetType: .oneRTT))
        // RFC 8899 §5.1.1: the PROBE_TIMER MUST NOT be below 1 s. QUIC's loss detection usually decides
        // first (RFC 9000 §14.3); the timer is for a probe with no later packet to be lost against.
        let timer = max(Duration.seconds(1), path.rtt.probeTimeout(maxAckDelay: peerMaxAckDelay) * 3)
        path.mtu.onProbeSent(packetNumber: pn, size: size, deadline: now + timer)
        path.pmtuProbesSent += 1
        stats.pmtuProbesSent += 1
        return true
    }

    // MARK: - Acknowledgements, losses, timers

    /// A packet on `path` was acknowledged.
    func onPMTUPacketAcknowledged(_ p: SentPacket, path: Path, now: Timestamp) {
        if p.isPMTUProbe {
            if let grown = path.mtu.onProbeAcknowledged(packetNumber: p.packetNumber, timeSent: p.timeSent, now: now) {
                setPathMTU(path, grown, now: now)
            }
        } else if p.size > PathMTUDiscovery.basePLPMTU {
            path.mtu.onPacketAcknowledged(size: p.size, timeSent: p.timeSent)
        }
    }

    /// A probe was declared lost, or its PROBE_TIMER expired. RFC 9000 §14.4 / RFC 8899 §3 item 7:
    /// no congestion response, and not one of the path's losses.
    func onPMTUProbeLost(packetNumber: UInt64, path: Path, now: Timestamp) {
        guard path.mtu.probe?.packetNumber == packetNumber else { return }
        path.pmtuProbesLost += 1
        stats.pmtuProbesLost += 1
        path.mtu.onProbeLost(packetNumber: packetNumber, now: now)
    }

    /// One loss event on `path` included packets above the base size (not probes).
    func onPMTUSuspiciousLoss(path: Path, smallest: Int, earliest: Timestamp, now: Timestamp) {
        guard path.mtu.onSuspiciousLoss(smallest: smallest, earliest: earliest) else { return }
        // RFC 8899 §4.3/§5.2: black hole detected: back to BASE_PLPMTU at once, so the path keeps
        // carrying traffic, and search again below the size that stopped getting through.
        path.mtu.onBlackHole(now: now)
        path.pmtuBlackHoles += 1
        stats.pmtuBlackHolesDetected += 1
        setPathMTU(path, path.mtu.current, now: now)
    }

    /// The PROBE_TIMER and PMTU_RAISE_TIMER of an active path.
    func onPMTUTimers(path p: Path, now: Timestamp) {
        if let d = p.mtu.probeDeadline, now >= d, let probe = p.mtu.probe {
            // The probe failed: it leaves the flight without a congestion response.
            if let sent = p.space.remove(probe.packetNumber), sent.inFlight { p.bytesInFlight -= sent.size }
            onPMTUProbeLost(packetNumber: probe.packetNumber, path: p, now: now)
        }
        if let d = p.mtu.raiseAt, now >= d { p.mtu.onRaiseTimer(now: now) }
    }

    /// The path's peer address changed (RFC 9000 §9): a new network path whose MTU is unknown.
    func restartPathMTUDiscovery(_ p: Path, now: Timestamp) {
        guard config.pmtuDiscovery else { return }
        p.mtu.restart(now: now)
        setPathMTU(p, p.mtu.current, now: now)
    }
}
