import CAllocationCounter
// Figure 1: packet protection of one 1350-byte 1-RTT packet, per cipher suite.
//
//   seal  = PacketProtection.seal on a preallocated buffer: AEAD over the payload with the header
//           as associated data, tag appended, then header protection (RFC 9001 §5.3-5.4). The
//           loop rewrites the first byte and packet number first, as the send path does.
//   open  = PacketProtection.removeHeaderProtection + PacketProtection.openPayload. Opening works
//           in place, so each iteration first restores the sealed packet with a 1350-byte copy
//           (that copy is timed on its own and printed as `restore copy`).
//   baseline = the raw BoringSSL AEAD alone (PacketAEAD.seal / PacketAEAD.open on the same
//           buffer, no header protection, no per-call Swift array access); the open baseline
//           includes the same restore copy. `x base` = QUIC figure / baseline figure.
//
// Times are the thread's CPU time (not wall time), best of `runs` runs of `iterations` packets,
// with the runs of all variants interleaved; allocations are summed over all timed runs.
//
// Packet layout: short header 0x41 | DCID (8 bytes) | 2-byte packet number = 11 header bytes,
// 1323 payload bytes, 16-byte tag = 1350 bytes. Gbit/s counts all 1350 bytes of the packet.
import QUIC

struct CryptoResult {
    var suite: CipherSuite
    var sealNs: Double
    var openNs: Double
    var aeadSealNs: Double
    var aeadOpenNs: Double
    var copyNs: Double
    /// Heap allocations per packet (measured over all timed runs, after a warm-up).
    var sealAllocs: Double
    var openAllocs: Double
    var aeadSealAllocs: Double
    var aeadOpenAllocs: Double

    static let packetSize = 1350
    static func gbps(_ ns: Double) -> Double { Double(packetSize * 8) / ns }
}

enum CryptoBench {
    static let headerLength = 11
    static let pnOffset = 9
    static let pnLength = 2
    static let payloadEnd = CryptoResult.packetSize - 16

    static func makeKeys(_ suite: CipherSuite) -> PacketKeys {
        let secret = (0..<suite.hashLength).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        return PacketKeys(secret: secret, suite: suite)
    }

    /// A plaintext 1-RTT packet: header with packet number `pn`, patterned payload, room for the tag.
    static func makePacket(pn: UInt64) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: CryptoResult.packetSize)
        b[0] = 0x40 | UInt8(pnLength - 1)
        for i in 1...8 { b[i] = UInt8(0xc0 + i) }  // DCID
        b[pnOffset] = UInt8(truncatingIfNeeded: pn >> 8)
        b[pnOffset + 1] = UInt8(truncatingIfNeeded: pn)
        for i in headerLength..<payloadEnd { b[i] = UInt8(truncatingIfNeeded: i &* 7) }
        return b
    }

    static func run(suite: CipherSuite, runs: Int, iterations: Int) -> CryptoResult {
        let keys = makeKeys(suite)
        var sink = 0
        var nextPN: UInt64 = 0
        var sealBuffer = makePacket(pn: 0)
        var aeadBuffer = makePacket(pn: 0)

        // Pristine sealed packets to open: one fully protected, one with the AEAD only.
        let openPN: UInt64 = 1000
        var protected = makePacket(pn: openPN)
        PacketProtection.seal(
            &protected, start: 0, pnOffset: pnOffset, pnLength: pnLength, payloadEnd: payloadEnd,
            packetNumber: openPN, keys: keys)
        var aeadOnly = makePacket(pn: openPN)
        aeadOnly.withUnsafeMutableBytes { raw in
            _ = keys.aead.seal(raw, headerLength: headerLength, payloadEnd: payloadEnd, packetNumber: openPN)
        }
        guard let header = try? PacketHeader.parse(protected, shortHeaderCIDLength: 8) else {
            fatalError("cannot parse the benchmark packet header")
        }
        var work = protected

        /// One timed loop of `n` packets of one variant.
        func loop(_ variant: Variant, _ n: Int) {
            switch variant {
            case .seal:
                // Seal + header protection (QUIC), header rewritten each time like the send path.
                for _ in 0..<n {
                    let pn = nextPN & 0xffff
                    nextPN &+= 1
                    sealBuffer[0] = 0x41
                    sealBuffer[pnOffset] = UInt8(truncatingIfNeeded: pn >> 8)
                    sealBuffer[pnOffset + 1] = UInt8(truncatingIfNeeded: pn)
                    sink &+= PacketProtection.seal(
                        &sealBuffer, start: 0, pnOffset: pnOffset, pnLength: pnLength,
                        payloadEnd: payloadEnd, packetNumber: pn, keys: keys)
                }
            case .aeadSeal:
                // Baseline: raw AEAD seal in place (no header protection).
                aeadBuffer.withUnsafeMutableBytes { raw in
                    for _ in 0..<n {
                        let pn = nextPN & 0xffff
                        nextPN &+= 1
                        raw[pnOffset] = UInt8(truncatingIfNeeded: pn >> 8)
                        raw[pnOffset + 1] = UInt8(truncatingIfNeeded: pn)
                        sink &+= keys.aead.seal(raw, headerLength: headerLength, payloadEnd: payloadEnd, packetNumber: pn)
                    }
                }
            case .open:
                // Open (QUIC): restore the sealed packet, remove header protection, open the payload.
                for _ in 0..<n {
                    work.withUnsafeMutableBytes { d in protected.withUnsafeBytes { s in d.copyMemory(from: s) } }
                    guard let hp = PacketProtection.removeHeaderProtection(&work, header: header, hp: keys.headerProtection) else {
                        fatalError("header protection removal failed")
                    }
                    let pn = PacketNumberCoding.decode(largest: openPN - 1, truncated: hp.truncatedPN, bits: hp.pnLength * 8)
                    guard
                        let end = PacketProtection.openPayload(
                            &work, header: header, pnLength: hp.pnLength,
                            packetNumber: pn, keys: keys)
                    else {
                        fatalError("open failed (\(suite.name))")
                    }
                    sink &+= end
                }
            case .aeadOpen:
                // Baseline: restore + raw AEAD open.
                work.withUnsafeMutableBytes { d in
                    aeadOnly.withUnsafeBytes { s in
                        for _ in 0..<n {
                            d.copyMemory(from: s)
                            guard
                                let len = keys.aead.open(
                                    d, headerLength: headerLength, end: CryptoResult.packetSize,
                                    packetNumber: openPN)
                            else { fatalError("AEAD open failed") }
                            sink &+= len
                        }
                    }
                }
            case .copy:
                // The restore copy alone.
                work.withUnsafeMutableBytes { d in
                    protected.withUnsafeBytes { s in
                        for i in 0..<n {
                            d.copyMemory(from: s)
                            d[i & 0xff] ^= 1  // keep each copy observable
                            sink &+= Int(d[11])
                        }
                    }
                }
            }
        }

        // Warm up every variant, then interleave the timed runs (seal, base, open, base, copy,
        // seal, ...) so that a burst of load from other processes hits a QUIC figure and its
        // baseline alike. Time is the thread's CPU time; the best run counts.
        for v in Variant.allCases { loop(v, min(iterations, 2000)) }
        var best = [Double](repeating: .infinity, count: Variant.allCases.count)
        var allocations = [UInt64](repeating: 0, count: Variant.allCases.count)
        for _ in 0..<runs {
            for v in Variant.allCases {
                let a0 = tquic_allocation_count()
                let t0 = threadCPUNanoseconds()
                loop(v, iterations)
                let t1 = threadCPUNanoseconds()
                allocations[v.rawValue] &+= tquic_allocation_count() &- a0
                best[v.rawValue] = min(best[v.rawValue], Double(t1 - t0) / Double(iterations))
            }
        }
        blackHole(sink)
        blackHole(sealBuffer)
        blackHole(aeadBuffer)
        func perPacket(_ v: Variant) -> Double { Double(allocations[v.rawValue]) / Double(runs * iterations) }

        return CryptoResult(
            suite: suite, sealNs: best[Variant.seal.rawValue], openNs: best[Variant.open.rawValue],
            aeadSealNs: best[Variant.aeadSeal.rawValue], aeadOpenNs: best[Variant.aeadOpen.rawValue],
            copyNs: best[Variant.copy.rawValue], sealAllocs: perPacket(.seal), openAllocs: perPacket(.open),
            aeadSealAllocs: perPacket(.aeadSeal), aeadOpenAllocs: perPacket(.aeadOpen))
    }

    enum Variant: Int, CaseIterable { case seal, aeadSeal, open, aeadOpen, copy }
}
