// The tunnel's receiving way (VPS: from the router's paths to the internet; router: the way
// back), in the order of its stages:
//
//   1. Take       each DATAGRAM payload as the connection hands it over (`Connection.onDatagram`,
//                 zero-copy), copied once into a pool buffer because the reorder buffer keeps it
//   2. Decode     the tunnel header (TunnelFrameDecoder); malformed frames are dropped and counted
//   3. Reorder    duplicate window and per-lane reorder buffer, whose hold time follows the
//                 one-way delay spread (the connection's per-path RTTs) of the paths that carry
//                 tunnel frames now
//   4. Deliver    in order within each lane, or late and out of order (configuration), to the
//                 owner's sink: the TUN device in tquicd, the measurement in tquic-sim
import Bonding
import Congestion
import QUIC

public final class TunnelReceiver {
    public struct Statistics: Sendable {
        public var datagramsReceived: UInt64 = 0
        public var delivered: UInt64 = 0
        public var deliveredBytes: UInt64 = 0
        /// Frames dropped before the reorder buffer: malformed, or no free buffer to hold them.
        public var droppedMalformed: UInt64 = 0
        public var droppedNoBuffer: UInt64 = 0
    }

    /// A datagram taken from the connection, not yet decoded.
    private struct Arrival {
        var buffer: PacketBufferHandle
        var pathID: UInt32
    }

    public let configuration: TunnelConfiguration
    public private(set) var statistics = Statistics()
    public private(set) var reorder: ReorderBuffer
    private var decoder = TunnelFrameDecoder()
    private let pool: PacketBufferPool
    private var arrivals: [Arrival] = []
    /// Reused for the paths' delays on every call (no allocation per packet).
    private var delayScratch: [ReorderBuffer.PathDelay] = []
    /// The path each held buffer arrived on, by buffer handle.
    private var arrivalPath: [UInt32]
    /// When each path last delivered a tunnel frame (a few paths: a linear search).
    private var lastFrameOnPath: [(pathID: UInt32, time: Timestamp)] = []

    public init(configuration: TunnelConfiguration, pool: PacketBufferPool) {
        self.configuration = configuration
        self.pool = pool
        reorder = ReorderBuffer(configuration: configuration.reorder)
        arrivalPath = [UInt32](repeating: 0, count: pool.count)
        arrivals.reserveCapacity(256)
        lastFrameOnPath.reserveCapacity(16)
    }

    /// When a held packet's hold expires (the owner wakes the engine then).
    public var nextDeadline: Timestamp? { reorder.nextDeadline }

    // MARK: 1. Take

    /// Stage 1, called from `Connection.onDatagram` in the middle of `receive`: copy and go.
    public func take(_ datagram: UnsafeRawBufferPointer, pathID: UInt32) {
        statistics.datagramsReceived += 1
        guard datagram.count <= pool.bufferSize, let h = pool.allocate() else {
            statistics.droppedNoBuffer += 1
            return
        }
        pool.withBuffer(h) { UnsafeMutableRawBufferPointer(rebasing: $0[0..<datagram.count]).copyMemory(from: datagram) }
        pool.setLength(h, datagram.count)
        arrivals.append(Arrival(buffer: h, pathID: pathID))
    }

    private func noteFrame(onPath id: UInt32, now: Timestamp) {
        if let i = lastFrameOnPath.firstIndex(where: { $0.pathID == id }) {
            lastFrameOnPath[i].time = now
        } else {
            // Path IDs are never reused: forget the oldest beyond a few dozen.
            if lastFrameOnPath.count >= 32 { lastFrameOnPath.removeFirst() }
            lastFrameOnPath.append((id, now))
        }
    }

    /// The path delivered a tunnel frame within `configuration.holdPathsActiveWithin`.
    private func carriedFrames(path id: UInt32, now: Timestamp) -> Bool {
        guard let e = lastFrameOnPath.first(where: { $0.pathID == id }) else { return false }
        return now - e.time <= configuration.holdPathsActiveWithin
    }

    // MARK: 2-4. Decode, reorder, deliver

    /// Decodes what arrived, updates the hold time from the paths' delays, and delivers every
    /// packet the reorder buffer releases: `deliver(innerPacket, pathID)`.
    public func process(connection: Connection, now: Timestamp, deliver: (UnsafeRawBufferPointer, UInt32) -> Void) {
        for a in arrivals {
            let decoded: DecodedTunnelFrame? = pool.withBytes(a.buffer) { decoder.decode($0) }
            guard let frame = decoded else {
                statistics.droppedMalformed += 1
                pool.release(a.buffer)
                continue
            }
            arrivalPath[a.buffer] = a.pathID
            noteFrame(onPath: a.pathID, now: now)
            switch reorder.insert(frame.header, handle: a.buffer, now: now) {
            case .duplicate, .late, .rejected: pool.release(a.buffer)
            default: break
            }
        }
        arrivals.removeAll(keepingCapacity: true)
        // The hold time follows the one-way delay spread (this side's estimates) of the paths that
        // carry the tunnel now: a gap can only be waiting for a packet on one of them. A slow path
        // the sender has left idle (a satellite next to a fibre that takes it all) would otherwise
        // hold every lane for its whole delay after each loss on the fast one. If the sender
        // starts using it again, its first frames come late, are delivered out of order, and the
        // path is counted again from then on.
        var delays = delayScratch
        delayScratch = []
        delays.removeAll(keepingCapacity: true)
        defer { delayScratch = delays }
        // With losses sent again (`reinjectsLosses`), a gap left by a lost packet fills about a
        // round trip of the fastest carrying path later (the loss is seen from the acknowledgements
        // of the packets after it, then the copy crosses again). Holding that long turns a WAN
        // loss into a short delay for the inner flow; giving up sooner hands the packets after
        // the gap on out of order and the inner TCP takes the reordering for a loss of its own.
        // Capped (`maxRepairHold`): after a failover onto a satellite alone, a repair round trip is
        // most of a second, and a call's lane must not wait that long for it.
        var repair: Duration?
        for id in connection.pathIDs {
            guard let st = connection.pathCondition(id), st.state == .active, carriedFrames(path: id, now: now) else { continue }
            delays.append(ReorderBuffer.PathDelay(oneWayDelay: st.smoothedRTT / 2, jitter: st.rttVariation))
            let r = st.smoothedRTT + st.smoothedRTT / 4 + st.rttVariation * 4
            repair = repair.map { min($0, r) } ?? r
        }
        if !delays.isEmpty {
            let floor = configuration.reinjectsLosses ? min(repair ?? .zero, configuration.maxRepairHold) : .zero
            reorder.updateHoldTime(paths: delays, atLeast: floor)
        }
        while let r = reorder.poll(now: now) {
            let h = r.handle
            statistics.delivered += 1
            pool.withBytes(h) { frame in
                let inner = UnsafeRawBufferPointer(rebasing: frame[TunnelFrame.headerLength...])
                statistics.deliveredBytes += UInt64(inner.count)
                deliver(inner, arrivalPath[h])
            }
            pool.release(h)
        }
    }
}
