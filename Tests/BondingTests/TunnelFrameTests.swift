// Tunnel frame header: exact wire bytes, round trips, in-place framing with headroom, and
// malformed or random input that must be refused (and counted) without trapping.
import Bonding
import XCTest

final class TunnelFrameTests: XCTestCase {
    func testHeaderWireBytesMatchTheDocumentedLayout() {
        let header = TunnelHeader(sequence: TunnelSequence(0x0102_0304), lane: 0xabc, laneSequence: 0xbeef)
        var bytes = [UInt8](repeating: 0, count: 8)
        bytes.withUnsafeMutableBytes { XCTAssertTrue(TunnelFrame.write(header, to: $0, at: 0)) }
        // Ver=01, R=0, X=0, lane high nibble 0xa | lane low 0xbc | sequence | lane sequence.
        XCTAssertEqual(bytes, [0x4a, 0xbc, 0x01, 0x02, 0x03, 0x04, 0xbe, 0xef])

        var reinjected = header
        reinjected.isReinjected = true
        bytes.withUnsafeMutableBytes { _ = TunnelFrame.write(reinjected, to: $0, at: 0) }
        XCTAssertEqual(bytes[0], 0x6a, "the R bit is 0x20 of the first byte")
    }

    func testRoundTripKeepsEveryField() {
        let cases = [
            TunnelHeader(sequence: TunnelSequence(0), lane: 0, laneSequence: 0),
            TunnelHeader(sequence: TunnelSequence(.max), lane: 4095, laneSequence: .max, isReinjected: true),
            TunnelHeader(sequence: TunnelSequence(123_456_789), lane: 17, laneSequence: 4242),
        ]
        for header in cases {
            var datagram = [UInt8](repeating: 0, count: 8) + [0x45, 0x00]
            datagram.withUnsafeMutableBytes { _ = TunnelFrame.write(header, to: $0, at: 0) }
            let decoded = datagram.withRaw { TunnelFrame.decode($0) }
            XCTAssertEqual(decoded, .success(DecodedTunnelFrame(header: header, payload: 8..<10)), "\(header)")
        }
    }

    func testPrependWritesTheHeaderIntoHeadroomWithoutMovingThePacket() {
        let packet = PacketBuilder.ipv4(proto: 17, transport: PacketBuilder.udp(sourcePort: 5000, destinationPort: 53))
        // A pool buffer: 16 bytes of headroom, then the packet as the TUN read it, then slack.
        var buffer = [UInt8](repeating: 0xee, count: 16) + packet + [UInt8](repeating: 0xee, count: 10)
        let header = TunnelHeader(sequence: TunnelSequence(7), lane: 3, laneSequence: 1)
        let range = buffer.withUnsafeMutableBytes {
            TunnelFrame.prepend(header, to: $0, payloadOffset: 16, payloadLength: packet.count)
        }
        XCTAssertEqual(range, 8..<16 + packet.count)
        XCTAssertEqual(Array(buffer[16..<16 + packet.count]), packet, "the packet was not touched")
        XCTAssertEqual(Array(buffer[0..<8]), [UInt8](repeating: 0xee, count: 8), "nothing written before the header")
        let frame = Array(buffer[range!])
        let decoded = frame.withRaw { TunnelFrame.decode($0) }
        guard case .success(let d) = decoded else { return XCTFail("frame does not decode: \(decoded)") }
        XCTAssertEqual(d.header, header)
        XCTAssertEqual(Array(frame[d.payload]), packet)
    }

    func testPrependRefusesMissingHeadroomOrAPacketOutsideTheBuffer() {
        var buffer = [UInt8](repeating: 0, count: 64)
        buffer.withUnsafeMutableBytes { b in
            let h = TunnelHeader(sequence: TunnelSequence(1), lane: 1, laneSequence: 0)
            XCTAssertNil(TunnelFrame.prepend(h, to: b, payloadOffset: 7, payloadLength: 20), "7 bytes of headroom")
            XCTAssertNil(TunnelFrame.prepend(h, to: b, payloadOffset: 8, payloadLength: 57), "runs past the end")
            XCTAssertNil(TunnelFrame.prepend(h, to: b, payloadOffset: 8, payloadLength: 0), "no packet")
            XCTAssertNotNil(TunnelFrame.prepend(h, to: b, payloadOffset: 8, payloadLength: 56))
            XCTAssertFalse(TunnelFrame.write(h, to: b, at: 57), "header past the end")
            XCTAssertFalse(TunnelFrame.write(h, to: b, at: -1))
        }
    }

    func testMarkReinjectedSetsOnlyTheRBit() {
        let header = TunnelHeader(sequence: TunnelSequence(99), lane: 0x123, laneSequence: 5)
        var frame = [UInt8](repeating: 0, count: 8) + [0x60]
        frame.withUnsafeMutableBytes { _ = TunnelFrame.write(header, to: $0, at: 0) }
        frame.withUnsafeMutableBytes { XCTAssertTrue(TunnelFrame.markReinjected($0, at: 0)) }
        var expected = header
        expected.isReinjected = true
        XCTAssertEqual(frame.withRaw { TunnelFrame.decode($0) }, .success(DecodedTunnelFrame(header: expected, payload: 8..<9)))
    }

    func testMalformedDatagramsAreRefusedAndCountedByReason() {
        var decoder = TunnelFrameDecoder()
        let inputs: [[UInt8]] = [
            [],  // empty
            [0x40, 0, 0, 0, 0, 0, 0],  // 7 bytes
            [0x00, 0, 0, 0, 0, 0, 0, 0, 0x45],  // version 0
            [0x80, 0, 0, 0, 0, 0, 0, 0, 0x45],  // version 2
            [0xc0, 0, 0, 0, 0, 0, 0, 0, 0x45],  // version 3
            [0x40, 0, 0, 0, 0, 1, 0, 0],  // header only
        ]
        for input in inputs { XCTAssertNil(input.withRaw { decoder.decode($0) }, "\(input) accepted") }
        XCTAssertEqual(decoder.tooShort, 2)
        XCTAssertEqual(decoder.unsupportedVersion, 3)
        XCTAssertEqual(decoder.emptyPayload, 1)
        XCTAssertEqual(decoder.malformed, 6)
        XCTAssertEqual(decoder.decoded, 0)
        // The reserved X bit is ignored on receipt.
        XCTAssertNotNil([0x50, 0, 0, 0, 0, 1, 0, 0, 0x45].withRaw { decoder.decode($0) })
        XCTAssertEqual(decoder.decoded, 1)
    }

    func testRandomBytesNeverTrapAndDecodeExactlyWhenVersionAndLengthFit() {
        var rng = Xoshiro256(seed: 0x7e57)
        var decoder = TunnelFrameDecoder()
        for _ in 0..<20_000 {
            let length = Int.random(in: 0...40, using: &rng)
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let frame = bytes.withRaw { decoder.decode($0) }
            let shouldDecode = length > 8 && bytes[0] >> 6 == 1
            XCTAssertEqual(frame != nil, shouldDecode, "\(bytes)")
            if let frame {
                XCTAssertEqual(frame.payload, 8..<length)
                XCTAssertLessThan(Int(frame.header.lane), TunnelFrame.laneCount)
            }
        }
        XCTAssertEqual(decoder.decoded + decoder.malformed, 20_000)
    }

    func testSequenceNumbersCompareAcrossTheWrap() {
        let last = TunnelSequence(.max)
        XCTAssertTrue(last.precedes(TunnelSequence(0)), "0 follows 2^32-1")
        XCTAssertEqual(last.next, TunnelSequence(0))
        XCTAssertEqual(TunnelSequence(0xffff_fff0).distance(to: TunnelSequence(0x10)), 0x20)
        XCTAssertEqual(TunnelSequence(0x10).distance(to: TunnelSequence(0xffff_fff0)), -0x20)
        XCTAssertFalse(TunnelSequence(5).precedes(TunnelSequence(5)))
        XCTAssertTrue(TunnelSequence(5).precedes(TunnelSequence(5).advanced(by: Int32.max)))
        XCTAssertFalse(TunnelSequence(5).precedes(TunnelSequence(5).advanced(by: Int32.min)))
    }

    func testSequencerNumbersEachLaneOnItsOwnAndFramesInPlace() {
        var sequencer = TunnelSequencer(firstSequence: TunnelSequence(0xffff_fffe))
        let voip = PacketBuilder.ipv4(proto: 17, transport: PacketBuilder.udp(sourcePort: 40000, destinationPort: 5060))
        let web = PacketBuilder.ipv4(proto: 6, transport: PacketBuilder.tcp(sourcePort: 51000, destinationPort: 443))
        let voipLane = voip.withRaw { FlowKey.lane(of: $0) }
        let webLane = web.withRaw { FlowKey.lane(of: $0) }
        XCTAssertNotEqual(voipLane, webLane)

        var seen: [TunnelHeader] = []
        for packet in [voip, web, voip, voip, web] {
            var buffer = [UInt8](repeating: 0, count: 8) + packet
            let result = buffer.withUnsafeMutableBytes { sequencer.frame($0, payloadOffset: 8, payloadLength: packet.count) }
            guard let result else { return XCTFail("not framed") }
            XCTAssertEqual(result.frame, 0..<buffer.count)
            XCTAssertEqual(
                buffer.withRaw { TunnelFrame.decode($0) }, .success(DecodedTunnelFrame(header: result.header, payload: 8..<buffer.count)))
            seen.append(result.header)
        }
        XCTAssertEqual(seen.map(\.sequence.rawValue), [0xffff_fffe, 0xffff_ffff, 0, 1, 2], "one counter, wrapping")
        XCTAssertEqual(seen.map(\.lane), [voipLane, webLane, voipLane, voipLane, webLane])
        XCTAssertEqual(seen.map(\.laneSequence), [0, 0, 1, 2, 1], "a counter per lane")
        XCTAssertEqual(sequencer.nextSequence, TunnelSequence(3))

        var tooLittleHeadroom = [UInt8](repeating: 0, count: 4) + voip
        XCTAssertNil(tooLittleHeadroom.withUnsafeMutableBytes { sequencer.frame($0, payloadOffset: 4, payloadLength: voip.count) })
        XCTAssertEqual(sequencer.nextSequence, TunnelSequence(3), "a refused packet takes no number")
    }
}
