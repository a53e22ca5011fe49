// Packets that arrive before their keys (RFC 9001 §5.7): a Handshake packet that overtook the
// server's Initial, or 1-RTT packets that overtook the handshake's last flight (the normal case
// once several paths carry a connection). A few are kept per encryption level, copied out of the
// receive buffer, and opened as soon as the keys are installed; the rest are dropped and counted.
import Congestion

/// A protected packet kept until its keys arrive.
struct PacketAwaitingKeys {
    var bytes: [UInt8]
    var level: EncryptionLevel
    var remote: SocketAddress
    var ecn: ECNCodepoint
}

extension Connection {
    /// How many packets each encryption level keeps while its keys are missing (RFC 9001 §5.7:
    /// "a limited number"). A server's certificate flight is a few datagrams.
    static let packetsKeptPerLevelBeforeKeys = 8

    /// Called for a packet whose space exists but whose read keys do not (yet). Keeps a copy of
    /// the packet if its level has room.
    func keepUntilKeysArrive(
        _ buf: [UInt8], header: PacketHeader, level: EncryptionLevel, remote: SocketAddress,
        ecn: ECNCodepoint
    ) {
        // Once the handshake is complete, a level still without keys never gets them (0-RTT
        // rejected or not offered); the application keys themselves exist by then.
        let kept = packetsAwaitingKeys.reduce(0) { $0 + ($1.level == level ? 1 : 0) }
        guard !handshakeComplete, kept < Self.packetsKeptPerLevelBeforeKeys else {
            stats.packetsDroppedAwaitingKeys += 1
            stats.packetsDropped += 1
            return
        }
        packetsAwaitingKeys.append(
            PacketAwaitingKeys(
                bytes: Array(buf[header.packetStart..<header.packetEnd]), level: level,
                remote: remote, ecn: ecn))
        stats.packetsKeptForKeys += 1
    }

    /// Opens the kept packets whose keys are there now (each may install further keys, so this
    /// repeats until nothing changes); drops the ones whose keys can no longer come.
    func processPacketsAwaitingKeys(now: Timestamp) {
        var progress = true
        while progress, !packetsAwaitingKeys.isEmpty, state != .closed, state != .draining {
            progress = false
            for i in packetsAwaitingKeys.indices where readKeys[packetsAwaitingKeys[i].level.rawValue] != nil {
                var p = packetsAwaitingKeys.remove(at: i)
                if let header = try? PacketHeader.parse(p.bytes, at: 0, shortHeaderCIDLength: sourceCID.length),
                    header.packetEnd <= p.bytes.count
                {
                    _ = processPacket(&p.bytes, header: header, remote: p.remote, datagramSize: p.bytes.count, ecn: p.ecn, now: now)
                } else {
                    stats.packetsDropped += 1
                }
                progress = true
                break
            }
        }
        if handshakeComplete, !packetsAwaitingKeys.isEmpty {
            let stale = packetsAwaitingKeys.filter { readKeys[$0.level.rawValue] == nil }.count
            stats.packetsDroppedAwaitingKeys += UInt64(stale)
            stats.packetsDropped += UInt64(stale)
            packetsAwaitingKeys.removeAll { readKeys[$0.level.rawValue] == nil }
        }
    }
}
