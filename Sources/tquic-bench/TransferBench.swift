import CAllocationCounter
import Congestion
import QUIC

// Figures 2 and 3: a client→server DATAGRAM (RFC 9221) transfer through two real connection
// objects, with no sockets and no simulated network: every Transmit the client polls is handed
// straight to the server Endpoint, and every Transmit the server then polls (its ACKs) is handed
// straight back, before the client sends its next datagram.
//
// Clock: a fake monotonic clock that advances 1 µs per datagram handed across (either direction),
// not real elapsed time. That makes the protocol's behaviour (RTT samples, ACK pacing, congestion
// window, timers) identical on every run and every machine, so a slower CI box measures the same
// work, only slower; with real time, the RTT and thus the congestion controller would depend on
// how fast the host is and on scheduling noise. 1 µs per datagram is of the order of the real cost
// of one datagram in this loop, so the simulated link is about as fast as the CPU. Throughput
// figures are measured with the real monotonic wall clock.
//
// The application side writes each payload straight into a slot the client connection owns
// (`sendDatagram(onPath:tag:_:)`, the zero-copy send a TUN reader uses; the write stands for the
// read), so allocation counts show what QUIC itself allocates. `--array-send` uses the array API
// instead, with the same payload array every time (sendDatagram keeps a reference, no copy).
// The sender keeps at most `queueCap` datagrams queued (far below datagramSendQueueLimit), so the
// queue never drops; anything lost anyway is reported (sent - delivered) with QUIC's counters.
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

struct TransferOptions {
    var bytes: UInt64
    var suite: CipherSuite?
    var fixtures: String
    var seed: UInt64 = 1
    var queueCap = 64
    /// Datagram payload size; nil = client.maxDatagramPayloadSize.
    var payloadSize: Int?
    /// Print backtraces of this many allocations made during the measured section.
    var traceAllocations = 0
    /// Queue datagrams with `sendDatagram(_ payload: [UInt8])` instead of the zero-copy slots.
    var arraySend = false
    /// Hash every qlog event of both ends (a behaviour check: two builds that put the same
    /// packets on the wire for the same seed print the same digest). Slows the run down.
    var qlogDigest = false
}

/// FNV-1a over every qlog record (time, name, data) of both connections, in order, from the
/// end of the handshake on.
final class QlogDigest: QlogSink {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325
    private(set) var records = 0
    private func mix<S: Sequence>(_ s: S) where S.Element == UInt8 {
        for b in s { value = (value ^ UInt64(b)) &* 0x100_0000_01b3 }
    }
    /// Off during the handshake: its packet sizes vary with TLS's own randomness (signatures).
    var enabled = false
    func record(time: Timestamp, name: String, data: String) {
        guard enabled else { return }
        records += 1
        mix(String(time.nanoseconds).utf8)
        mix(name.utf8)
        mix(data.utf8)
    }
}

/// Heap allocations during the measured section, split by the call that made them.
struct PhaseAllocations {
    var appSend: UInt64 = 0  // client.sendDatagram (queueing)
    var clientPoll: UInt64 = 0  // client.poll: packet assembly + seal
    var serverReceive: UInt64 = 0  // server Endpoint.receive: routing, open, frame decode, event
    var serverEvents: UInt64 = 0  // server pollEvent (application takes the datagram)
    var serverPoll: UInt64 = 0  // server Endpoint.poll: ACK packets
    var clientReceive: UInt64 = 0  // client.receive of ACK packets: loss detection, congestion control
    var other: UInt64 = 0  // client events, timers
    var total: UInt64 { appSend + clientPoll + serverReceive + serverEvents + serverPoll + clientReceive + other }
}

struct TransferResult {
    var suite: String
    var payloadSize: Int
    var requestedBytes: UInt64
    var datagramsSent: UInt64  // sendDatagram calls that were accepted
    var datagramsDelivered: UInt64  // .datagramReceived events at the server
    var bytesDelivered: UInt64
    var clientDatagramsDropped: UInt64  // QUIC's own counter (queue overflow or did not fit)
    var packetsLost: UInt64
    var clientToServerPackets: UInt64  // UDP datagrams client→server (whole run)
    var serverToClientPackets: UInt64  // UDP datagrams server→client (whole run)
    var handshakeNs: UInt64
    // Measured section (after warm-up):
    var warmupDatagrams: UInt64
    var measuredNs: UInt64  // wall time
    var measuredCPUNs: UInt64  // this thread's CPU time
    var measuredDatagrams: UInt64  // payload datagrams delivered in the measured section
    var measuredBytes: UInt64  // payload bytes delivered in the measured section
    var measuredC2SPackets: UInt64
    var measuredS2CPackets: UInt64
    var measuredC2SWireBytes: UInt64
    var allocations: PhaseAllocations
    var frees: UInt64
    var allocatedBytes: UInt64
    var fakeClockEnd: Timestamp
    var clockJumps: UInt64
    var finalCongestionWindow: Int
    var smoothedRTTMicros: Double

    var maxPayloadSize: Int  // client.maxDatagramPayloadSize
    var qlogDigest: (value: UInt64, records: Int)?

    // Rates use CPU time: one thread runs both ends, so this is what one core sustains.
    var seconds: Double { Double(measuredCPUNs) / 1e9 }
    var wallSeconds: Double { Double(measuredNs) / 1e9 }
    /// CPU time / wall time: well below 1 means other processes took the core (noisy figures).
    var cpuShare: Double { Double(measuredCPUNs) / Double(max(1, measuredNs)) }
    var payloadGbps: Double { Double(measuredBytes) * 8 / Double(measuredCPUNs) }
    var payloadGbpsWall: Double { Double(measuredBytes) * 8 / Double(measuredNs) }
    var wireGbps: Double { Double(measuredC2SWireBytes) * 8 / Double(measuredCPUNs) }
    var c2sPacketsPerSecond: Double { Double(measuredC2SPackets) / seconds }
    var allPacketsPerSecond: Double { Double(measuredC2SPackets + measuredS2CPackets) / seconds }
    var nsPerDatagram: Double { measuredDatagrams == 0 ? .nan : Double(measuredCPUNs) / Double(measuredDatagrams) }
    /// Per delivered datagram (NaN if none was delivered).
    func perDatagram(_ n: UInt64) -> Double { measuredDatagrams == 0 ? .nan : Double(n) / Double(measuredDatagrams) }
    /// Per client→server UDP datagram.
    func perPacket(_ n: UInt64) -> Double { Double(n) / Double(max(1, measuredC2SPackets)) }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

final class TransferBench {
    let options: TransferOptions
    let clientAddress = SocketAddress(ip: [10, 0, 0, 1], port: 40000)
    let serverAddress = SocketAddress(ip: [10, 0, 0, 2], port: 443)
    var now = Timestamp(nanoseconds: 1_000_000_000)
    let tick = Duration.microseconds(1)
    let client: Connection
    let server: Endpoint
    var c2s: UInt64 = 0
    var s2c: UInt64 = 0
    var c2sWire: UInt64 = 0
    var delivered: UInt64 = 0
    var deliveredBytes: UInt64 = 0
    var clockJumps: UInt64 = 0
    let digest: QlogDigest?

    init(options: TransferOptions) throws {
        self.options = options
        var serverTLS = TLSConfiguration(alpnProtocols: ["tquic-bench"])
        serverTLS.certificateChainFile = options.fixtures + "/server.pem"
        serverTLS.privateKeyFile = options.fixtures + "/server.key"
        var clientTLS = TLSConfiguration(alpnProtocols: ["tquic-bench"])
        clientTLS.verification = .caFile(options.fixtures + "/ca.pem")
        if let s = options.suite {
            serverTLS.cipherSuites = [s]
            clientTLS.cipherSuites = [s]
        }
        let sctx = try TLSContext(configuration: serverTLS, isServer: true)
        let cctx = try TLSContext(configuration: clientTLS, isServer: false)
        var sconf = Endpoint.Configuration(
            connection: ConnectionConfiguration(tls: sctx),
            tokenKey: [UInt8](repeating: 9, count: 16))
        var cconf = ConnectionConfiguration(tls: cctx)
        let digest = options.qlogDigest ? QlogDigest() : nil
        self.digest = digest
        if let digest {
            sconf.makeQlog = { _ in digest }
            cconf.qlog = digest
        }
        server = Endpoint(configuration: sconf, random: SeededRandom(seed: options.seed &+ 1))
        client = try Connection(
            clientWith: cconf, serverName: "localhost",
            remote: serverAddress, random: SeededRandom(seed: options.seed &+ 2), now: now)
    }

    var serverConnection: Connection? { server.connections.first }

    /// Moves datagrams both ways until neither side has anything to send.
    @discardableResult
    func exchange() -> Bool {
        var moved = false
        var progress = true
        while progress {
            progress = false
            while let t = client.poll(now: now) {
                c2s += 1
                now = now + tick
                server.receive(datagram: t.bytes, from: clientAddress, now: now)
                progress = true
            }
            while let t = server.poll(now: now) {
                s2c += 1
                now = now + tick
                client.receive(datagram: t.bytes, from: serverAddress, now: now)
                progress = true
            }
            moved = moved || progress
        }
        return moved
    }

    /// Jumps the fake clock to the earliest timer of either side and fires it. Returns false if no
    /// timer is armed. When the earliest timer is already due, the clock still advances one tick:
    /// a side that asked to be woken "now" and still has nothing to send is waiting for time to pass
    /// (e.g. a pacing deadline rounded down to the current nanosecond).
    @discardableResult
    func fireNextTimer(notAfter limit: Timestamp? = nil) -> Bool {
        var next: Timestamp?
        if let c = client.nextTimeout { next = c }
        if let s = server.nextTimeout { next = next.map { min($0, s) } ?? s }
        guard let t = next else { return false }
        if let limit, t > limit { return false }
        now = max(t, now + tick)
        clockJumps += 1
        if let ct = client.nextTimeout, ct <= now { client.handleTimeout(now: now) }
        if let st = server.nextTimeout, st <= now { server.handleTimeout(now: now) }
        return true
    }

    func drainEvents() {
        while client.pollEvent() != nil {}
        if let sc = serverConnection {
            while let e = sc.pollEvent() {
                if case .datagramReceived(let d) = e {
                    delivered += 1
                    deliveredBytes += UInt64(d.count)
                }
            }
        }
    }

    func handshake() throws {
        var rounds = 0
        while !(client.handshakeConfirmed && (serverConnection?.handshakeComplete ?? false)) {
            if client.isClosed { throw BenchError("client closed during the handshake") }
            if !exchange() && !fireNextTimer() { throw BenchError("handshake stalled") }
            rounds += 1
            if rounds > 10_000 { throw BenchError("handshake did not complete") }
        }
        // Let post-handshake traffic settle (HANDSHAKE_DONE, NEW_CONNECTION_ID, tickets, delayed
        // ACKs) so the measured loop starts from a steady state.
        let settleUntil = now + Duration.milliseconds(100)
        repeat {
            exchange()
            drainEvents()
        } while fireNextTimer(notAfter: settleUntil)
        drainEvents()
        delivered = 0
        deliveredBytes = 0
    }

    func run() throws -> TransferResult {
        let h0 = monotonicNanoseconds()
        try handshake()
        let handshakeNs = monotonicNanoseconds() - h0
        guard let sc = serverConnection else { throw BenchError("no server connection") }

        let maxSize = client.maxDatagramPayloadSize
        guard maxSize > 0 else { throw BenchError("peer does not accept DATAGRAM frames") }
        let size = options.payloadSize ?? maxSize
        guard size > 0, size <= maxSize else { throw BenchError("payload \(size) B is not in 1...\(maxSize)") }
        let payload = [UInt8](repeating: 0xa5, count: size)
        let total = (options.bytes + UInt64(size) - 1) / UInt64(size)
        // Warm-up: long enough for every buffer to reach its steady-state capacity.
        let warmup = min(max(2_000, total / 50), total / 2)

        var sent: UInt64 = 0
        var phases = PhaseAllocations()
        var measuring = false
        var start:
            (ns: UInt64, cpu: UInt64, alloc: AllocationSnapshot, c2s: UInt64, s2c: UInt64, wire: UInt64, delivered: UInt64, bytes: UInt64) =
                (0, 0, AllocationSnapshot.now(), 0, 0, 0, 0, 0)
        var idleRounds = 0
        digest?.enabled = true
        // The zero-copy receive side a data plane uses: each side's socket reads into one
        // preallocated buffer that the connection opens in place, and the server application
        // takes each DATAGRAM payload from the receive buffer (`onDatagram`) instead of an event.
        var serverReceiveBuffer = [UInt8]()
        var clientReceiveBuffer = [UInt8]()
        serverReceiveBuffer.reserveCapacity(65_536)
        clientReceiveBuffer.reserveCapacity(65_536)
        sc.onDatagram = { [unowned self] payload, _ in
            self.delivered += 1
            self.deliveredBytes += UInt64(payload.count)
        }
        defer { sc.onDatagram = nil }
        // Progress guard: client packets since a datagram was last delivered or dropped.
        var packetsWithoutProgress = 0
        var lastOutcome: UInt64 = 0

        @inline(__always) func counted(_ slot: inout UInt64, _ body: () -> Void) {
            let a = tquic_allocation_count()
            body()
            slot &+= tquic_allocation_count() &- a
        }

        while true {
            if !measuring && sent >= warmup {
                measuring = true
                phases = PhaseAllocations()
                if options.traceAllocations > 0 { tquic_allocation_trace(Int32(options.traceAllocations)) }
                start = (
                    monotonicNanoseconds(), threadCPUNanoseconds(), AllocationSnapshot.now(), c2s, s2c, c2sWire,
                    delivered, deliveredBytes
                )
            }
            // The application tops up the send queue, staying below the queue limit.
            if sent < total && client.queuedDatagrams < options.queueCap {
                counted(&phases.appSend) {
                    while sent < total && client.queuedDatagrams < options.queueCap {
                        do {
                            if options.arraySend {
                                try client.sendDatagram(payload)
                            } else {
                                try client.sendDatagram { buffer in
                                    buffer.initializeMemory(as: UInt8.self, repeating: 0xa5)
                                    return size
                                }
                            }
                        } catch {
                            fatalError("sendDatagram: \(error)")
                        }
                        sent += 1
                    }
                }
            }
            var t: Transmit?
            counted(&phases.clientPoll) { t = client.poll(now: now) }
            let clientSent = t != nil
            if let tx = t {
                idleRounds = 0
                c2s += 1
                c2sWire += UInt64(tx.bytes.count)
                now = now + tick
                counted(&phases.serverReceive) {
                    // What sendmsg and recvmsg would do: the bytes land in the receiver's buffer.
                    serverReceiveBuffer.removeAll(keepingCapacity: true)
                    serverReceiveBuffer.append(contentsOf: tx.bytes)
                    server.receive(datagram: &serverReceiveBuffer, from: clientAddress, now: now)
                }
                // Drop our reference before the client's next poll: the Transmit shares the
                // connection's datagram buffer, which it reuses only when it is unique again.
                t = nil
                counted(&phases.serverEvents) {
                    while sc.pollEvent() != nil {}
                }
                let outcome = delivered &+ client.stats.datagramsDropped
                if outcome != lastOutcome {
                    lastOutcome = outcome
                    packetsWithoutProgress = 0
                } else {
                    packetsWithoutProgress += 1
                    if packetsWithoutProgress > 100_000 {
                        throw BenchError(
                            "no datagram delivered or dropped in the last 100000 client packets "
                                + "(\(client.queuedDatagrams) queued, \(delivered) delivered)")
                    }
                }
            } else if sent >= total && client.queuedDatagrams == 0 {
                break
            }
            // The server's ACKs go straight back.
            while true {
                var a: Transmit?
                counted(&phases.serverPoll) { a = server.poll(now: now) }
                guard let ack = a else { break }
                s2c += 1
                now = now + tick
                counted(&phases.clientReceive) {
                    clientReceiveBuffer.removeAll(keepingCapacity: true)
                    clientReceiveBuffer.append(contentsOf: ack.bytes)
                    client.receive(datagram: &clientReceiveBuffer, from: serverAddress, now: now)
                }
            }
            counted(&phases.other) {
                while client.pollEvent() != nil {}
                if let ct = client.nextTimeout, ct <= now { client.handleTimeout(now: now) }
                if let st = server.nextTimeout, st <= now { server.handleTimeout(now: now) }
            }
            if !clientSent && client.queuedDatagrams > 0 {
                // Blocked (congestion window full, waiting for a delayed ACK): jump to the next timer.
                idleRounds += 1
                counted(&phases.other) { fireNextTimer() }
                if idleRounds > 10_000 {
                    let ps = client.pathStatistics
                    throw BenchError(
                        "transfer stalled with \(client.queuedDatagrams) datagrams queued: \(delivered) delivered, "
                            + "cwnd \(ps.congestionWindow) B, in flight \(ps.bytesInFlight) B, now \(now), "
                            + "client timer \(client.nextTimeout.map { "\($0)" } ?? "none"), "
                            + "server timer \(server.nextTimeout.map { "\($0)" } ?? "none")")
                }
            }
            if client.isClosed || sc.isClosed { throw BenchError("connection closed during the transfer") }
        }
        let endNs = monotonicNanoseconds()
        let endCPU = threadCPUNanoseconds()
        tquic_allocation_trace(0)
        let alloc = AllocationSnapshot.now() - start.alloc
        let end = (c2s: c2s, s2c: s2c, wire: c2sWire, delivered: delivered, bytes: deliveredBytes)
        // Flush the last ACKs (not measured).
        exchange()
        drainEvents()

        let stats = client.stats
        let path = client.pathStatistics
        return TransferResult(
            suite: client.cipherSuite?.name ?? "?", payloadSize: size, requestedBytes: options.bytes,
            datagramsSent: sent, datagramsDelivered: delivered, bytesDelivered: deliveredBytes,
            clientDatagramsDropped: stats.datagramsDropped, packetsLost: stats.packetsLost,
            clientToServerPackets: c2s, serverToClientPackets: s2c, handshakeNs: handshakeNs,
            warmupDatagrams: start.delivered, measuredNs: endNs - start.ns, measuredCPUNs: endCPU - start.cpu,
            measuredDatagrams: end.delivered - start.delivered, measuredBytes: end.bytes - start.bytes,
            measuredC2SPackets: end.c2s - start.c2s, measuredS2CPackets: end.s2c - start.s2c,
            measuredC2SWireBytes: end.wire - start.wire, allocations: phases, frees: alloc.frees,
            allocatedBytes: alloc.bytes, fakeClockEnd: now, clockJumps: clockJumps,
            finalCongestionWindow: path.congestionWindow,
            smoothedRTTMicros: Double(path.smoothedRTT.nanoseconds) / 1000, maxPayloadSize: maxSize,
            qlogDigest: digest.map { ($0.value, $0.records) })
    }
}
