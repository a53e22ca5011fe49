import Congestion
// The router's TUN device as the tunnel sender's packet source. The kernel hands a TUN's packets
// over through a ring of txqueuelen packets, tail-dropping when it is full (no qdisc backlog
// ever forms in front of it), so a ping read late waits behind the LAN's bulk TCP there: the
// sender drains it at every round instead (`drainsEagerly`), putting interactive packets ahead
// and leaving the bulk queue to its CoDel (TunnelConfiguration.bulkQueueManagement). Packets are read straight
// into the engine's buffers: no copy. A packet larger than the
// tunnel can carry now gets an ICMP "too big" back to its sender (PacketTooBig.swift).
import LinuxNet
import QUIC
import Tunnel

final class TUNPacketSource: InnerPacketSource {
    let tun: TUNDevice
    /// The largest inner packet the tunnel carries now (the TUN MTU follows it).
    var maxInnerPacket: Int
    /// Whether `maxInnerPacket` comes from finished MTU searches: only then does a packet above
    /// it get an ICMP answer (TunnelEngine.innerPacketCapacityIsSettled says why).
    var answersTooBig = false
    private(set) var tooBigDropped: UInt64 = 0
    /// The last read found the TUN empty: the loop waits for it to become readable. Otherwise
    /// the sender stopped for lack of room and the loop must not spin on a readable TUN.
    private(set) var drained = false
    private(set) var packetsRead: UInt64 = 0
    private(set) var tooBig: UInt64 = 0
    /// Packets for the TUN's own link only (MLD, link-local): never carried.
    var linkScoped: UInt64 = 0
    private(set) var tooBigAnswered: UInt64 = 0
    private(set) var writeFailures: UInt64 = 0
    private(set) var packetsWritten: UInt64 = 0
    private let icmp = UnsafeMutableRawBufferPointer.allocate(byteCount: 1500, alignment: 16)

    var drainsEagerly: Bool { true }

    init(tun: TUNDevice, maxInnerPacket: Int) {
        self.tun = tun
        self.maxInnerPacket = maxInnerPacket
    }

    deinit {
        icmp.deallocate()
    }

    /// Before each round of the engine: the TUN may have packets again.
    func rearm() { drained = false }

    func readPacket(into buffer: UnsafeMutableRawBufferPointer, now: Timestamp) -> Int? {
        while true {
            // Straight into the engine's buffer (2040 bytes): the TUN MTU is below that, so no
            // packet is cut short; one that fills the buffer may have been, and is dropped.
            guard let n = (try? tun.read(into: buffer)) ?? nil else {
                drained = true
                return nil
            }
            packetsRead += 1
            let packet = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
            if InnerPacketAddresses.isLinkScoped(packet) {
                linkScoped += 1
                continue
            }
            if n <= maxInnerPacket { return n }
            if n < buffer.count { answerTooBig(UnsafeRawBufferPointer(rebasing: buffer[0..<n])) } else { tooBig += 1 }
        }
    }

    /// An inner packet from the tunnel onto the LAN (with TUN offloads it may wait for `flush`
    /// to be joined with the next segments of its TCP flow).
    func write(_ packet: UnsafeRawBufferPointer) {
        if (try? tun.write(packet)) == true { packetsWritten += 1 } else { writeFailures += 1 }
    }

    /// After each batch of `write`s: hands over what the TUN holds.
    func flush() {
        try? tun.flushWrites()
    }

    /// The offloads' figures for `tquicctl status` ("offload off" without them).
    var offloadSummary: String {
        guard tun.offloads else { return "offload off" }
        return "offload: \(tun.superPacketsRead) TSO reads cut into \(tun.segmentsCut), "
            + "\(tun.coalescedWrites) writes joining \(tun.segmentsCoalesced), held and refused \(tun.heldPacketsDropped), malformed \(tun.malformedReads)"
    }

    /// ICMP "too big" for `packet` back through the TUN, naming `mtu` (default: what the tunnel
    /// carries now).
    func answerTooBig(_ packet: UnsafeRawBufferPointer, mtu: Int? = nil) {
        tooBig += 1
        guard answersTooBig || mtu != nil else {
            tooBigDropped += 1
            return
        }
        guard let n = PacketTooBig.reply(to: packet, mtu: mtu ?? maxInnerPacket, into: icmp) else { return }
        if (try? tun.write(UnsafeRawBufferPointer(rebasing: icmp[0..<n]))) == true { tooBigAnswered += 1 }
    }
}
