import CAllocationCounter
import QUIC

// tquic-bench: CPU cost of the QUIC data path, single-threaded, measured in one run.
//
//   1. Packet protection of a 1350-byte 1-RTT packet per cipher suite: seal (+ header
//      protection) and open, against the raw BoringSSL AEAD as the baseline (CryptoBench.swift).
//   2. A client→server DATAGRAM transfer through two connection objects wired back to back, no
//      sockets (TransferBench.swift): payload Gbit/s and packets/s for one core doing both ends.
//   3. Heap allocations per packet for both, counted by interposing malloc (CAllocationCounter).
//
// It prints figures only; nothing is asserted. See scripts/bench.sh.
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

let usage = """
    usage: tquic-bench [--quick] [--json] [--bytes N] [--payload N] [--iterations N] [--runs N]
                       [--suite aes128|aes256|chacha20] [--transfer-suite aes128|aes256|chacha20]
                       [--fixtures DIR] [--skip-crypto] [--skip-transfer] [--skip-congestion] [--trace-allocs N]
                       [--qlog-digest] [--array-send]

      --bytes N           DATAGRAM payload to transfer (default 1GiB; --quick: 50MB). Suffixes:
                          k/M/G (10^3, 10^6, 10^9) and Ki/Mi/Gi (2^10, 2^20, 2^30).
      --payload N         DATAGRAM payload size (default: client.maxDatagramPayloadSize)
      --iterations N      packets per packet-protection run (default 200000; --quick: 20000)
      --runs N            timed runs per figure; the best is reported (default 3)
      --suite S           packet-protection suites to measure (repeatable; default: all three)
      --transfer-suite S  TLS cipher suite for the transfer (default: whatever TLS negotiates)
      --fixtures DIR      server.pem, server.key, ca.pem (default: Tests/QUICTests/Fixtures)
      --trace-allocs N    print backtraces of the first N allocations of the measured transfer
                          to stderr (resolve binary(+offset) frames with llvm-symbolizer)
      --qlog-digest       hash both ends' qlog events (packets, sizes, times): the same digest for
                          two builds means the same behaviour for the same seed (slower; a check)
      --array-send        queue datagrams as arrays (sendDatagram(_:)) instead of writing them into
                          the connection's slots (the zero-copy send, the default)
      --quick             a few seconds in total (CI smoke run)
      --json              one JSON object instead of the table
    """

func fail(_ message: String) -> Never {
    var err = message + "\n"
    err.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    exit(2)
}

func parseByteCount(_ s: String) -> UInt64? {
    let units: [(String, UInt64)] = [
        ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10),
        ("G", 1_000_000_000), ("M", 1_000_000), ("k", 1000), ("K", 1000),
    ]
    var text = s
    if text.hasSuffix("B") { text.removeLast() }
    for (suffix, factor) in units where text.hasSuffix(suffix) {
        guard let v = Double(text.dropLast(suffix.count)), v >= 0 else { return nil }
        return UInt64(v * Double(factor))
    }
    return UInt64(text)
}

func parseSuite(_ s: String) -> CipherSuite? {
    switch s.lowercased() {
    case "aes128", "aes-128-gcm", "aes128gcm", "tls_aes_128_gcm_sha256": return .aes128GCMSHA256
    case "aes256", "aes-256-gcm", "aes256gcm", "tls_aes_256_gcm_sha384": return .aes256GCMSHA384
    case "chacha20", "chacha", "chacha20-poly1305", "tls_chacha20_poly1305_sha256": return .chacha20Poly1305SHA256
    default: return nil
    }
}

func shortName(_ s: CipherSuite) -> String {
    switch s {
    case .aes128GCMSHA256: return "AES-128-GCM"
    case .aes256GCMSHA384: return "AES-256-GCM"
    case .chacha20Poly1305SHA256: return "ChaCha20-Poly1305"
    }
}

func fileReadable(_ path: String) -> Bool { access(path, R_OK) == 0 }

/// The test certificates: next to this source file's package root, or under the working directory.
func defaultFixtures() -> String {
    let file = #filePath
    var parts = file.split(separator: "/", omittingEmptySubsequences: false)
    if parts.count > 3 {
        parts.removeLast(3)  // Sources/tquic-bench/main.swift
        let dir = parts.joined(separator: "/") + "/Tests/QUICTests/Fixtures"
        if fileReadable(dir + "/server.pem") { return dir }
    }
    return "Tests/QUICTests/Fixtures"
}

// MARK: - Options

var quick = false
var json = false
var bytes: UInt64?
var iterations: Int?
var runs = 3
var suites: [CipherSuite] = []
var transferSuite: CipherSuite?
var fixtures = defaultFixtures()
var skipCrypto = false
var skipTransfer = false
var traceAllocations = 0
var payloadSize: Int?
var skipCongestion = false
var skipTunnel = false
var qlogDigest = false
var arraySend = false

var args = CommandLine.arguments.dropFirst()
func value(_ flag: String) -> String {
    guard let v = args.popFirst() else { fail("\(flag) needs a value\n\n\(usage)") }
    return v
}
while let a = args.popFirst() {
    switch a {
    case "--quick": quick = true
    case "--json": json = true
    case "--bytes":
        let v = value(a)
        guard let n = parseByteCount(v), n > 0 else { fail("invalid --bytes \(v)") }
        bytes = n
    case "--iterations":
        let v = value(a)
        guard let n = Int(v), n > 0 else { fail("invalid --iterations \(v)") }
        iterations = n
    case "--runs":
        let v = value(a)
        guard let n = Int(v), n > 0 else { fail("invalid --runs \(v)") }
        runs = n
    case "--suite":
        let v = value(a)
        guard let s = parseSuite(v) else { fail("unknown suite \(v)") }
        suites.append(s)
    case "--transfer-suite":
        let v = value(a)
        guard let s = parseSuite(v) else { fail("unknown suite \(v)") }
        transferSuite = s
    case "--payload":
        let v = value(a)
        guard let n = Int(v), n > 0 else { fail("invalid --payload \(v)") }
        payloadSize = n
    case "--fixtures": fixtures = value(a)
    case "--qlog-digest": qlogDigest = true
    case "--array-send": arraySend = true
    case "--skip-crypto": skipCrypto = true
    case "--skip-transfer": skipTransfer = true
    case "--skip-congestion": skipCongestion = true
    case "--skip-tunnel": skipTunnel = true
    case "--trace-allocs":
        let v = value(a)
        guard let n = Int(v), n >= 0 else { fail("invalid --trace-allocs \(v)") }
        traceAllocations = n
    case "-h", "--help":
        print(usage)
        exit(0)
    default: fail("unknown option \(a)\n\n\(usage)")
    }
}
if suites.isEmpty { suites = [.aes128GCMSHA256, .chacha20Poly1305SHA256, .aes256GCMSHA384] }
let cryptoIterations = iterations ?? (quick ? 20_000 : 200_000)
let transferBytes = bytes ?? (quick ? 50_000_000 : 1 << 30)

// MARK: - Run

let countingWorks = AllocationSnapshot.selfTest()
func allocs(_ x: Double) -> String { countingWorks ? fmt(x, 3) : "n/a" }
func allocsJSON(_ x: Double) -> JSON { countingWorks ? .num(x, 4) : .null }

if !json {
    print("tquic-bench: single thread, release build\(quick ? ", --quick" : "")")
    print("allocation counting: \(countingWorks ? "active (malloc family interposed)" : "UNAVAILABLE on this platform")")
    print("times are this thread's CPU time; 1-min load average at start: \(loadAverage().map { fmt($0, 2) } ?? "n/a")")
}

var cryptoResults: [CryptoResult] = []
if !skipCrypto {
    if !json {
        print("")
        print("1. Packet protection, 1350-byte 1-RTT packet, \(grouped(cryptoIterations)) packets x \(runs) interleaved runs (best run)")
        print("   seal = AEAD + header protection; open = restore copy + remove HP + AEAD open;")
        print("   base = raw BoringSSL AEAD alone (open base includes the same restore copy)")
        print(
            "   " + pad("suite", 18, right: false) + pad("op", 6, right: false) + pad("ns/pkt", 9) + pad("Gbit/s", 9)
                + pad("base ns", 9) + pad("base Gb/s", 11) + pad("x base", 8) + pad("allocs/pkt", 12) + pad("base allocs", 13))
    }
    for s in suites {
        let r = CryptoBench.run(suite: s, runs: runs, iterations: cryptoIterations)
        cryptoResults.append(r)
        if !json {
            let name = pad(shortName(s), 18, right: false)
            print(
                "   " + name + pad("seal", 6, right: false) + pad(fmt(r.sealNs, 1), 9) + pad(fmt(CryptoResult.gbps(r.sealNs)), 9)
                    + pad(fmt(r.aeadSealNs, 1), 9) + pad(fmt(CryptoResult.gbps(r.aeadSealNs)), 11)
                    + pad(fmt(r.sealNs / r.aeadSealNs, 3), 8) + pad(allocs(r.sealAllocs), 12) + pad(allocs(r.aeadSealAllocs), 13))
            print(
                "   " + name + pad("open", 6, right: false) + pad(fmt(r.openNs, 1), 9) + pad(fmt(CryptoResult.gbps(r.openNs)), 9)
                    + pad(fmt(r.aeadOpenNs, 1), 9) + pad(fmt(CryptoResult.gbps(r.aeadOpenNs)), 11)
                    + pad(fmt(r.openNs / r.aeadOpenNs, 3), 8) + pad(allocs(r.openAllocs), 12) + pad(allocs(r.aeadOpenAllocs), 13))
        }
    }
    if !json, let copy = cryptoResults.map(\.copyNs).min() {
        print("   restore copy (1350 B, included in both open figures): \(fmt(copy, 1)) ns")
    }
}

var transfer: TransferResult?
var transferError: String?
if !skipTransfer {
    if !fileReadable(fixtures + "/server.pem") {
        transferError = "test certificates not found in \(fixtures) (use --fixtures DIR)"
    } else {
        do {
            let bench = try TransferBench(
                options: TransferOptions(
                    bytes: transferBytes, suite: transferSuite, fixtures: fixtures,
                    payloadSize: payloadSize, traceAllocations: traceAllocations,
                    arraySend: arraySend, qlogDigest: qlogDigest))
            transfer = try bench.run()
        } catch {
            transferError = "\(error)"
        }
    }
    if !json {
        print("")
        print("2. DATAGRAM transfer client -> server, in memory (no sockets), one core runs both ends")
        if let t = transfer {
            let lost = Int64(t.datagramsSent) - Int64(t.datagramsDelivered)
            print("   cipher suite             \(t.suite)")
            print(
                "   payload per datagram     \(t.payloadSize) B"
                    + (t.payloadSize == t.maxPayloadSize
                        ? " (client.maxDatagramPayloadSize)" : " (client.maxDatagramPayloadSize = \(t.maxPayloadSize) B)"))
            print("   payload transferred      \(grouped(t.bytesDelivered)) B (requested \(grouped(t.requestedBytes)))")
            print(
                "   datagrams sent/delivered \(grouped(t.datagramsSent)) / \(grouped(t.datagramsDelivered))"
                    + "  (not delivered: \(lost); QUIC datagramsDropped \(t.clientDatagramsDropped), packetsLost \(t.packetsLost))")
            if lost > 0 {
                print(
                    "   WARNING: \(lost) of \(t.datagramsSent) datagrams were not delivered; QUIC dropped \(t.clientDatagramsDropped) "
                        + "before sending (a smaller --payload shows whether the size is the cause)")
            }
            print("   UDP datagrams c->s / s->c \(grouped(t.clientToServerPackets)) / \(grouped(t.serverToClientPackets)) (s->c = ACKs)")
            print(
                "   measured (after \(grouped(t.warmupDatagrams)) warm-up datagrams): \(grouped(t.measuredDatagrams)) datagrams, "
                    + "\(fmt(t.seconds, 3)) s CPU / \(fmt(t.wallSeconds, 3)) s wall (CPU share \(fmt(t.cpuShare * 100, 0))%)")
            print(
                "   payload throughput       \(fmt(t.payloadGbps, 3)) Gbit/s per core  (wall: \(fmt(t.payloadGbpsWall, 3)); "
                    + "UDP payload c->s: \(fmt(t.wireGbps, 3)) Gbit/s)")
            print(
                "   packets/s                \(grouped(Int(t.c2sPacketsPerSecond))) c->s, \(grouped(Int(t.allPacketsPerSecond))) both directions"
            )
            print("   ns per datagram          \(fmt(t.nsPerDatagram, 1)) (send + receive + ACK handling, both ends)")
            print("   handshake                \(fmt(Double(t.handshakeNs) / 1e6, 2)) ms wall")
            if let d = t.qlogDigest {
                print("   qlog digest              \(String(d.value, radix: 16)) over \(grouped(d.records)) events (both ends)")
            }
            print(
                "   fake clock at end        \(t.fakeClockEnd) (1 us per datagram; \(t.clockJumps) timer jumps)"
                    + ", cwnd \(grouped(t.finalCongestionWindow)) B, srtt \(fmt(t.smoothedRTTMicros, 1)) us")
            print("")
            print("3. Heap allocations per delivered datagram (measured section)")
            let p = t.allocations
            print(
                "   total                    \(allocs(t.perDatagram(p.total)))  (frees \(allocs(t.perDatagram(t.frees))), "
                    + "\(countingWorks ? fmt(t.perDatagram(t.allocatedBytes), 0) : "n/a") B requested; "
                    + "per c->s packet: \(allocs(t.perPacket(p.total))))")
            print("   client sendDatagram      \(allocs(t.perDatagram(p.appSend)))")
            print("   client poll (seal)       \(allocs(t.perDatagram(p.clientPoll)))")
            print("   server receive (open)    \(allocs(t.perDatagram(p.serverReceive)))")
            print("   server events            \(allocs(t.perDatagram(p.serverEvents)))")
            print("   server poll (ACKs)       \(allocs(t.perDatagram(p.serverPoll)))")
            print("   client receive (ACKs)    \(allocs(t.perDatagram(p.clientReceive)))")
            print("   events, timers           \(allocs(t.perDatagram(p.other)))")
            if !cryptoResults.isEmpty {
                let line = cryptoResults.map { "\(shortName($0.suite)) seal \(allocs($0.sealAllocs)), open \(allocs($0.openAllocs))" }
                print("   packet protection alone  " + line.joined(separator: "; "))
            }
        } else {
            print("   not run: \(transferError ?? "?")")
        }
    }
}

var congestionResults: [CongestionBenchResult] = []
if !skipCongestion {
    let packets = quick ? 64 * 1000 : 64 * 20_000
    congestionResults = CongestionBench.run(packets: packets, runs: runs)
    if !json {
        let base = congestionResults[0]
        print("")
        print(
            "4. Congestion controllers: cost per call, \(grouped(packets)) packets replayed (40 ms RTT, 1 loss in 200, ACK per 2 packets)")
        print("   ns = the whole loop; controller ns = minus the no-op baseline (per onPacketSent / per ACK frame)")
        print(
            "   " + pad("controller", 18, right: false) + pad("send ns", 9) + pad("ctl ns", 8) + pad("ack ns", 9) + pad("ctl ns", 8)
                + pad("allocs/send", 13) + pad("allocs/ack", 12))
        for r in congestionResults {
            print(
                "   " + pad(r.name, 18, right: false) + pad(fmt(r.sendNs, 1), 9) + pad(fmt(max(0, r.sendNs - base.sendNs), 1), 8)
                    + pad(fmt(r.ackNs, 1), 9) + pad(fmt(max(0, r.ackNs - base.ackNs), 1), 8)
                    + pad(allocs(r.sendAllocs), 13) + pad(allocs(r.ackAllocs), 12))
        }
    }
}

var tunnelResults: [TunnelBenchResult] = []
if !skipTunnel {
    if traceAllocations > 0 { traceTunnelAllocations = traceAllocations }
    do {
        let bench = try TunnelBench(options: TransferOptions(bytes: 0, suite: nil, fixtures: fixtures))
        tunnelResults = try bench.run(packets: quick ? 20_000 : 300_000)
    } catch {
        if !json { print("\n6. Tunnel engine: not run: \(error)") }
    }
    if !json && !tunnelResults.isEmpty {
        print("")
        print("6. Tunnel engine forwarding 1200-byte inner packets in memory (router engine + QUIC + VPS engine, one core)")
        print(
            "   " + pad("direction", 10, right: false) + pad("packets", 10) + pad("ns/pkt", 9) + pad("inner Gbit/s", 14)
                + pad("allocs/pkt", 12))
        for r in tunnelResults {
            print(
                "   " + pad(r.direction, 10, right: false) + pad(grouped(r.packets), 10) + pad(fmt(r.nsPerPacket, 0), 9)
                    + pad(fmt(r.gbps, 2), 14) + pad(allocs(r.allocationsPerPacket), 12))
        }
    }
}

if json {
    var fields: [(String, JSON)] = [
        ("tool", .string("tquic-bench")),
        ("quick", .bool(quick)),
        ("allocation_counting", .bool(countingWorks)),
        ("time_base", .string("thread CPU time")),
        ("load_average_1min", loadAverage().map { .num($0, 2) } ?? .null),
    ]
    var protection: [JSON] = []
    for r in cryptoResults {
        protection.append(
            .object([
                ("suite", .string(r.suite.name)),
                ("packet_bytes", .int(CryptoResult.packetSize)),
                ("iterations", .int(cryptoIterations)),
                ("runs", .int(runs)),
                ("seal_ns_per_packet", .num(r.sealNs, 2)),
                ("seal_gbps", .num(CryptoResult.gbps(r.sealNs), 3)),
                ("seal_allocations_per_packet", allocsJSON(r.sealAllocs)),
                ("open_ns_per_packet", .num(r.openNs, 2)),
                ("open_gbps", .num(CryptoResult.gbps(r.openNs), 3)),
                ("open_allocations_per_packet", allocsJSON(r.openAllocs)),
                ("baseline_aead_seal_ns_per_packet", .num(r.aeadSealNs, 2)),
                ("baseline_aead_seal_gbps", .num(CryptoResult.gbps(r.aeadSealNs), 3)),
                ("baseline_aead_seal_allocations_per_packet", allocsJSON(r.aeadSealAllocs)),
                ("baseline_aead_open_ns_per_packet", .num(r.aeadOpenNs, 2)),
                ("baseline_aead_open_gbps", .num(CryptoResult.gbps(r.aeadOpenNs), 3)),
                ("baseline_aead_open_allocations_per_packet", allocsJSON(r.aeadOpenAllocs)),
                ("seal_ratio_to_baseline", .num(r.sealNs / r.aeadSealNs, 4)),
                ("open_ratio_to_baseline", .num(r.openNs / r.aeadOpenNs, 4)),
                ("restore_copy_ns", .num(r.copyNs, 2)),
            ]))
    }
    fields.append(("packet_protection", .array(protection)))
    if !congestionResults.isEmpty {
        let base = congestionResults[0]
        fields.append(
            (
                "congestion_controllers",
                .array(
                    congestionResults.map { r in
                        .object([
                            ("controller", .string(r.name)),
                            ("send_ns_per_call", .num(r.sendNs, 2)), ("ack_ns_per_call", .num(r.ackNs, 2)),
                            ("send_ns_over_baseline", .num(max(0, r.sendNs - base.sendNs), 2)),
                            ("ack_ns_over_baseline", .num(max(0, r.ackNs - base.ackNs), 2)),
                            ("send_allocations_per_call", allocsJSON(r.sendAllocs)),
                            ("ack_allocations_per_call", allocsJSON(r.ackAllocs)),
                        ])
                    })
            ))
    }
    if let t = transfer {
        let p = t.allocations
        func per(_ n: UInt64) -> JSON { allocsJSON(t.perDatagram(n)) }
        fields.append(
            (
                "datagram_transfer",
                .object([
                    ("cipher_suite", .string(t.suite)),
                    ("payload_bytes_per_datagram", .int(t.payloadSize)),
                    ("max_datagram_payload_size", .int(t.maxPayloadSize)),
                    ("requested_bytes", .int(t.requestedBytes)),
                    ("bytes_delivered", .int(t.bytesDelivered)),
                    ("datagrams_sent", .int(t.datagramsSent)),
                    ("datagrams_delivered", .int(t.datagramsDelivered)),
                    ("datagrams_not_delivered", .int(Int64(t.datagramsSent) - Int64(t.datagramsDelivered))),
                    ("quic_datagrams_dropped", .int(t.clientDatagramsDropped)),
                    ("packets_lost", .int(t.packetsLost)),
                    ("udp_datagrams_client_to_server", .int(t.clientToServerPackets)),
                    ("udp_datagrams_server_to_client", .int(t.serverToClientPackets)),
                    ("warmup_datagrams", .int(t.warmupDatagrams)),
                    ("measured_datagrams", .int(t.measuredDatagrams)),
                    ("measured_payload_bytes", .int(t.measuredBytes)),
                    ("measured_cpu_seconds", .num(t.seconds, 6)),
                    ("measured_wall_seconds", .num(t.wallSeconds, 6)),
                    ("cpu_share", .num(t.cpuShare, 3)),
                    ("payload_gbps", .num(t.payloadGbps, 4)),
                    ("payload_gbps_wall", .num(t.payloadGbpsWall, 4)),
                    ("udp_payload_gbps_client_to_server", .num(t.wireGbps, 4)),
                    ("packets_per_second_client_to_server", .num(t.c2sPacketsPerSecond, 0)),
                    ("packets_per_second_both_directions", .num(t.allPacketsPerSecond, 0)),
                    ("ns_per_datagram", .num(t.nsPerDatagram, 2)),
                    ("handshake_ms", .num(Double(t.handshakeNs) / 1e6, 3)),
                    ("fake_clock_end_ns", .int(t.fakeClockEnd.nanoseconds)),
                    ("timer_jumps", .int(t.clockJumps)),
                    ("final_cwnd_bytes", .int(t.finalCongestionWindow)),
                    ("smoothed_rtt_us", .num(t.smoothedRTTMicros, 3)),
                    (
                        "allocations_per_datagram",
                        .object([
                            ("total", per(p.total)),
                            ("client_send_datagram", per(p.appSend)),
                            ("client_poll", per(p.clientPoll)),
                            ("server_receive", per(p.serverReceive)),
                            ("server_poll_event", per(p.serverEvents)),
                            ("server_poll", per(p.serverPoll)),
                            ("client_receive", per(p.clientReceive)),
                            ("events_and_timers", per(p.other)),
                            ("frees", per(t.frees)),
                            ("bytes_requested", countingWorks ? .num(t.perDatagram(t.allocatedBytes), 1) : .null),
                            ("total_per_client_packet", allocsJSON(t.perPacket(p.total))),
                        ])
                    ),
                ])
            ))
    } else if let e = transferError {
        fields.append(("datagram_transfer", .object([("error", .string(e))])))
    }
    print(JSON.object(fields).render(pretty: false))
}
if transferError != nil { exit(1) }
