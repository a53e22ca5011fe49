import CAllocationCounter
import Congestion
// Figure 6: the tunnel engine (what tquicd runs) forwarding inner IP packets in memory, both
// directions: router engine → client connection → server endpoint → VPS engine → delivered
// (uplink), and the way back (downlink). Same fake clock as figure 2 (1 µs per datagram handed
// across); heap allocations are counted per forwarded inner packet after a warm-up.
import QUIC
import Tunnel

/// A source of 1200-byte inner IPv4/UDP packets, written from a template (allocates nothing).
final class BenchInnerSource: InnerPacketSource {
    private var template: [UInt8]
    var remaining: Int
    private var counter: UInt32 = 0

    init(count: Int, size: Int = 1200) {
        remaining = count
        template = [UInt8](repeating: 0x5a, count: size)
        template[0] = 0x45
        template[2] = UInt8(size >> 8)
        template[3] = UInt8(size & 0xff)
        template[8] = 64
        template[9] = 17
        template[12] = 192
        template[13] = 168
        template[14] = 1
        template[15] = 10
        template[16] = 198
        template[17] = 51
        template[18] = 100
        template[19] = 7
        template[20] = 0x27
        template[21] = 0x11
        template[22] = 0x13
        template[23] = 0x89
    }

    func readPacket(into buffer: UnsafeMutableRawBufferPointer, now: Timestamp) -> Int? {
        guard remaining > 0, buffer.count >= template.count else { return nil }
        remaining -= 1
        counter &+= 1
        template.withUnsafeBytes { buffer.copyMemory(from: $0) }
        buffer.storeBytes(of: counter.bigEndian, toByteOffset: 28, as: UInt32.self)
        return template.count
    }
}

struct TunnelBenchResult {
    var direction: String
    var packets: UInt64
    var cpuNs: UInt64
    var allocations: UInt64
    var nsPerPacket: Double { packets == 0 ? .nan : Double(cpuNs) / Double(packets) }
    var allocationsPerPacket: Double { packets == 0 ? .nan : Double(allocations) / Double(packets) }
    var gbps: Double { Double(packets * 1200 * 8) / Double(max(cpuNs, 1)) }
}

/// Set by --trace-allocs: backtraces of that many allocations in the measured section.
nonisolated(unsafe) var traceTunnelAllocations: Int?

final class TunnelBench {
    let transfer: TransferBench
    var router: TunnelEngine!
    var vps: TunnelEngine!
    var delivered: UInt64 = 0
    var clientBuffer = [UInt8](), serverBuffer = [UInt8]()

    init(options: TransferOptions) throws {
        transfer = try TransferBench(options: options)
        clientBuffer.reserveCapacity(65_536)
        serverBuffer.reserveCapacity(65_536)
    }

    /// Moves datagrams both ways, running both engines after every input, until nothing moves.
    private func exchange(uplink: BenchInnerSource?, downlink: BenchInnerSource?) -> Bool {
        let t = transfer
        var moved = false
        var progress = true
        while progress {
            progress = false
            router.process(now: t.now, source: uplink, deliver: { _, _ in self.delivered += 1 })
            while let d = t.client.poll(now: t.now) {
                t.now = t.now + t.tick
                serverBuffer.removeAll(keepingCapacity: true)
                serverBuffer.append(contentsOf: d.bytes)
                t.server.receive(datagram: &serverBuffer, from: t.clientAddress, now: t.now)
                vps.process(now: t.now, source: downlink, deliver: { _, _ in self.delivered += 1 })
                progress = true
            }
            vps.process(now: t.now, source: downlink, deliver: { _, _ in self.delivered += 1 })
            while let d = t.server.poll(now: t.now) {
                t.now = t.now + t.tick
                clientBuffer.removeAll(keepingCapacity: true)
                clientBuffer.append(contentsOf: d.bytes)
                t.client.receive(datagram: &clientBuffer, from: t.serverAddress, now: t.now)
                router.process(now: t.now, source: uplink, deliver: { _, _ in self.delivered += 1 })
                progress = true
            }
            moved = moved || progress
        }
        return moved
    }

    private func fireTimers(uplink: BenchInnerSource?, downlink: BenchInnerSource?) -> Bool {
        let t = transfer
        var next: Timestamp?
        func consider(_ x: Timestamp?) { if let x { next = next.map { min($0, x) } ?? x } }
        consider(t.client.nextTimeout)
        consider(t.server.nextTimeout)
        consider(router.nextTimeout)
        consider(vps.nextTimeout)
        guard let next else { return false }
        t.now = max(next, t.now + t.tick)
        if let c = t.client.nextTimeout, c <= t.now { t.client.handleTimeout(now: t.now) }
        if let s = t.server.nextTimeout, s <= t.now { t.server.handleTimeout(now: t.now) }
        router.process(now: t.now, source: uplink) { _, _ in self.delivered += 1 }
        vps.process(now: t.now, source: downlink) { _, _ in self.delivered += 1 }
        return true
    }

    /// Forwards `packets` inner packets one way (after `warmup` more), measuring the last ones.
    /// The source is given the warm-up's packets first and the measured ones only once those
    /// are delivered: one exchange forwards everything the source has, so a single source of
    /// both would run the whole transfer before the measurement could start.
    private func forward(_ direction: String, packets: Int, warmup: Int) throws -> TunnelBenchResult {
        let source = BenchInnerSource(count: warmup)
        let up = direction == "uplink" ? source : nil
        let down = direction == "uplink" ? nil : source
        delivered = 0
        var idle = 0
        func forward(until target: Int) throws {
            while delivered < UInt64(target) {
                if !exchange(uplink: up, downlink: down) {
                    guard fireTimers(uplink: up, downlink: down) else { throw BenchError("\(direction): stalled at \(delivered)") }
                    idle += 1
                    if idle > 1_000_000 { throw BenchError("\(direction): no progress") }
                }
            }
        }
        try forward(until: warmup)
        let start = (cpu: threadCPUNanoseconds(), alloc: tquic_allocation_count(), delivered: delivered)
        if let n = traceTunnelAllocations { tquic_allocation_trace(Int32(n)) }
        source.remaining += packets
        try forward(until: warmup + packets)
        tquic_allocation_trace(0)
        return TunnelBenchResult(
            direction: direction, packets: delivered - start.delivered, cpuNs: threadCPUNanoseconds() - start.cpu,
            allocations: tquic_allocation_count() - start.alloc)
    }

    func run(packets: Int) throws -> [TunnelBenchResult] {
        try transfer.handshake()
        guard let sc = transfer.serverConnection else { throw BenchError("no server connection") }
        let configuration = TunnelConfiguration()
        router = TunnelEngine(connection: transfer.client, configuration: configuration, links: [TunnelLink(name: "wan0")])
        vps = TunnelEngine(connection: sc, configuration: configuration, links: nil)
        let warmup = max(2_000, packets / 10)
        return [try forward("uplink", packets: packets, warmup: warmup), try forward("downlink", packets: packets, warmup: warmup)]
    }
}
