// libFuzzer harness for the packet header parser and packet number coding. Built by scripts/fuzz.sh
// together with the pure wire sources (one module, so no import); never part of the SwiftPM test
// target.
//
// The whole input is one UDP datagram, walked the way Connection.receive does (RFC 9000 §12.2):
// parse at offset 0, then at each packetEnd while it is inside the datagram. The short header
// connection ID length is the first input byte % 21 (so a short header's own first byte, 0x40-0x7f,
// reaches every length 0-20). Every accepted header must keep its offsets inside the datagram and
// make progress; a rejection must be a WireError. The input's bytes also drive the packet number
// invariants of RFC 9000 §17.1 and Appendix A.2/A.3. Any violation crashes via fatalError.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let datagram = Array(UnsafeBufferPointer(start: data, count: size))
    walkDatagram(datagram)
    checkPacketNumbers(datagram)
    return 0
}

private func walkDatagram(_ datagram: [UInt8]) {
    guard let first = datagram.first else { return }
    let cidLength = Int(first % 21)
    var offset = 0
    var packets = 0
    while offset < datagram.count {
        let h: PacketHeader
        do {
            h = try PacketHeader.parse(datagram, at: offset, shortHeaderCIDLength: cidLength)
        } catch is WireError {
            return  // dropped, like the receiver does
        } catch {
            fatalError("parse threw a non-WireError: \(error)")
        }
        packets += 1
        let n = datagram.count
        guard h.packetStart == offset else { fatalError("packetStart \(h.packetStart) != offset \(offset)") }
        guard h.packetEnd > h.packetStart else { fatalError("no progress: packetEnd \(h.packetEnd) at \(offset)") }
        guard h.packetEnd <= n else { fatalError("packetEnd \(h.packetEnd) beyond datagram of \(n) bytes") }
        guard h.packetNumberOffset > h.packetStart, h.packetNumberOffset <= h.packetEnd else {
            fatalError("packetNumberOffset \(h.packetNumberOffset) outside \(h.packetStart)..<\(h.packetEnd)")
        }
        guard h.isLongHeader == (datagram[offset] & 0x80 != 0) else { fatalError("header form mismatch: \(h)") }
        guard h.destinationConnectionID.length <= ConnectionID.maxLength,
            h.sourceConnectionID.length <= ConnectionID.maxLength
        else { fatalError("connection ID over 20 bytes") }
        for slice in [h.token, h.retryIntegrityTag] where !slice.isEmpty {
            guard slice.startIndex > h.packetStart, slice.endIndex <= h.packetEnd else {
                fatalError("token/tag \(slice.indices) outside the packet \(h.packetStart)..<\(h.packetEnd)")
            }
        }
        switch h.type {
        case .oneRTT:
            guard !h.isLongHeader, h.destinationConnectionID.length == cidLength,
                h.packetNumberOffset == offset + 1 + cidLength, h.packetEnd == n
            else {
                fatalError("short header inconsistent: \(h)")
            }
        case .versionNegotiation:
            guard h.version == 0, h.packetEnd == n, h.packetNumberOffset <= n,
                h.supportedVersions.count == (n - offset - 7 - h.destinationConnectionID.length - h.sourceConnectionID.length) / 4
            else {
                fatalError("Version Negotiation inconsistent: \(h)")
            }
        case .retry:
            guard h.version == QUICVersion.v1, h.retryIntegrityTag.count == 16, h.retryIntegrityTag.endIndex == n,
                h.packetEnd == n
            else { fatalError("Retry inconsistent: \(h)") }
        case .initial, .zeroRTT, .handshake:
            if h.version == QUICVersion.v1 {
                // RFC 9001 §5.4.2: room for the 4 + 16 byte header protection sample.
                guard h.packetNumberOffset + 20 <= h.packetEnd else { fatalError("no room for the HP sample: \(h)") }
                guard datagram[offset] & 0x40 != 0 else { fatalError("v1 long header with fixed bit clear accepted") }
                if h.type != .initial, !h.token.isEmpty { fatalError("token on a \(h.type) packet") }
            } else {
                guard h.version != 0, h.packetEnd == n, h.token.isEmpty else { fatalError("unknown version inconsistent: \(h)") }
            }
        }
        offset = h.packetEnd
    }
    guard offset == datagram.count, packets <= datagram.count else { fatalError("walk ended at \(offset) of \(datagram.count)") }
}

private func readUInt64(_ bytes: [UInt8], _ at: Int) -> UInt64 {
    var v: UInt64 = 0
    for i in 0..<8 { v = v << 8 | UInt64(at + i < bytes.count ? bytes[at + i] : 0) }
    return v
}

private func checkPacketNumbers(_ input: [UInt8]) {
    guard input.count >= 17 else { return }
    let maxPN: UInt64 = (1 << 62) - 1
    // largest <= 2^62 - 2: after 2^62 - 1 no packet can follow (RFC 9000 §12.3).
    let a = readUInt64(input, 1) % maxPN
    let b = readUInt64(input, 9)
    let selector = input[0]

    // Decode of arbitrary inputs: the low bits are the truncated number, and the result is the
    // closest value to largest + 1 (A.3) whenever no 0 / 2^62 edge is in reach.
    let bits = 8 * (1 + Int(selector & 0x03))
    let win: UInt64 = 1 << UInt64(bits)
    let hwin = win / 2
    let truncated = b & (win - 1)
    let largest: UInt64? = selector & 0x04 == 0 ? a : nil
    let decoded = PacketNumberCoding.decode(largest: largest, truncated: truncated, bits: bits)
    guard decoded & (win - 1) == truncated else {
        fatalError("decode(\(String(describing: largest)), \(truncated), \(bits)) = \(decoded) lost the low bits")
    }
    guard decoded <= maxPN else { fatalError("decode(\(String(describing: largest)), \(truncated), \(bits)) = \(decoded) >= 2^62") }
    let expected = a + 1  // when largest is a
    if largest == nil {
        // Nothing received yet: the expected packet number is 0.
        guard decoded == truncated else { fatalError("decode with nothing received = \(decoded), not \(truncated)") }
    } else if expected >= hwin && expected <= maxPN + 1 - 2 * win {
        guard decoded > expected - hwin && decoded <= expected + hwin else {
            fatalError("decode(\(a), \(truncated), \(bits)) = \(decoded) not within half a window of \(expected)")
        }
    }

    // Encode/decode round trip (A.2 then A.3): the sender's largest acknowledged <= the receiver's
    // largest received < the packet number, with the gap small enough for 4 bytes.
    let gap = 1 + (b >> 33) % ((1 << 31) - 1)
    let acked: UInt64? = selector & 0x08 == 0 ? a % (maxPN - gap) : nil
    let pn = acked.map { $0 + gap } ?? (gap - 1)
    let length = PacketNumberCoding.encodedLength(packetNumber: pn, largestAcked: acked)
    guard (1...4).contains(length) else { fatalError("encodedLength \(length)") }
    let range = pn - (acked ?? 0) + (acked == nil ? 1 : 0)
    guard length == 4 || (UInt64(1) << UInt64(8 * length)) > 2 * range else {
        fatalError("encodedLength \(length) for pn \(pn), acked \(String(describing: acked)) is not more than twice the range")
    }
    let received: UInt64? = acked.map { $0 + (b & 0xffff_ffff) % gap } ?? (pn == 0 || selector & 0x10 == 0 ? nil : (b & 0xffff_ffff) % pn)
    let roundTrip = PacketNumberCoding.decode(largest: received, truncated: pn & ((1 << UInt64(8 * length)) - 1), bits: 8 * length)
    guard roundTrip == pn else {
        fatalError(
            "pn \(pn) in \(length) bytes (acked \(String(describing: acked))) decoded as \(roundTrip) after \(String(describing: received))"
        )
    }
}
