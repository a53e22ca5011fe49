import Congestion
// The allocation-free per-packet path (DESIGN.md "Data plane performance"): the inline
// containers that replaced per-packet arrays, and the zero-copy receive API a data plane uses
// (`receive(datagram: inout ...)` opens packets in the caller's buffer; `onDatagram` hands each
// DATAGRAM payload over where it lies). Allocation counts themselves are measured by
// `tquic-bench` section 3, not asserted here.
import XCTest

@testable import QUIC

final class ZeroCopyTests: XCTestCase {
    func testAckRangesKeepTwoInlineAndSpillTheRestInOrder() {
        var r = AckRanges()
        XCTAssertTrue(r.isEmpty)
        let all: [ClosedRange<UInt64>] = [90...100, 70...80, 50...60, 30...40, 10...20]
        for x in all { r.append(x) }
        XCTAssertEqual(r.count, 5)
        XCTAssertEqual(Array(r), all)
        XCTAssertEqual(r, AckRanges(all))
        XCTAssertEqual(r, [90...100, 70...80, 50...60, 30...40, 10...20])
        r.removeLast()
        r.removeLast()
        r.removeLast()
        XCTAssertEqual(Array(r), [90...100, 70...80], "trimming crosses back from the spill into the inline ranges")
        r.append(1...2)
        XCTAssertEqual(Array(r), [90...100, 70...80, 1...2])
        XCTAssertNotEqual(r, [90...100, 70...80])
        XCTAssertEqual(AckFrame(ranges: [5...9], ackDelay: 0).largestAcknowledged, 9)
    }

    func testAckFramesWithOneAndManyRangesSurviveEncodeAndDecode() throws {
        let cases: [[ClosedRange<UInt64>]] = [[0...0], [1_000...1_010], [900...1_000, 700...800, 500...600, 3...4, 0...1]]
        for ranges in cases {
            let frame = Frame.ack(AckFrame(ranges: ranges, ackDelay: 17))
            var w = ByteWriter()
            frame.encode(to: &w)
            var r = ByteReader(w.bytes)
            let decoded = try Frame.decode(from: &r, packetType: .oneRTT)
            guard case .ack(let a) = decoded else { return XCTFail("decoded \(decoded)") }
            XCTAssertEqual(Array(a.ranges), ranges)
            XCTAssertEqual(a.ackDelay, 17)
        }
    }

    func testSentFramesKeepFourInlineAndSpillTheRestInOrder() {
        var f = SentFrames()
        let frames: [SentFrame] = [
            .ack(largest: 7), .datagram(tag: 1), .datagram(tag: nil), .ping,
            .stream(id: 4, offset: 100, length: 50, fin: true), .maxData,
        ]
        for x in frames { f.append(x) }
        XCTAssertEqual(f.count, 6)
        XCTAssertEqual(f.map { "\($0)" }, frames.map { "\($0)" })
        XCTAssertTrue(
            f.contains {
                if case .stream(4, 100, 50, true) = $0 { return true }
                return false
            })
        XCTAssertEqual(SentFrames(Array(frames.prefix(2))).count, 2)
    }

    func testConsecutiveDatagramTagsShareOneEntry() {
        var f = SentFrames()
        f.append(.ack(largest: 3))
        for tag in [10, 11, 12, 13, 14, 15, 16, 17] as [UInt64] { f.appendDatagram(tag: tag) }
        f.appendDatagram(tag: 30)
        f.appendDatagram(tag: nil)
        f.appendDatagram(tag: 31)
        XCTAssertEqual(
            f.map { "\($0)" },
            [
                "ack(largest: 3)", "datagrams(firstTag: 10, count: 8)", "datagram(tag: Optional(30))",
                "datagram(tag: nil)", "datagram(tag: Optional(31))",
            ],
            "eight small datagrams in one packet: one entry, nothing spilled to the heap")
    }

    /// DATAGRAM payloads delivered through `onDatagram`, under loss and reordering, with packets
    /// opened in place (SimulatedNetwork receives through the in-place API): every payload the
    /// server hands back must arrive intact, and nothing goes to the event queue meanwhile.
    func testOnDatagramDeliversEveryPayloadInPlaceWithItsPath() throws {
        let net = try SimulatedNetwork(seed: 33, jitter: .milliseconds(3), loss: 0.02)
        XCTAssertTrue(net.run(for: .seconds(30)) { net.client.handshakeComplete && net.serverConnection != nil })
        let server = try XCTUnwrap(net.serverConnection)
        var received: [[UInt8]] = []
        var paths = Set<UInt32>()
        server.onDatagram = { payload, pathID in
            received.append(Array(payload))
            paths.insert(pathID)
        }
        let n = 200
        for i in 0..<n { try net.client.sendDatagram(pattern(900, seed: i) + [UInt8(i % 256)]) }
        net.run(for: .seconds(30)) {
            received.count == n || (net.client.queuedDatagrams == 0 && net.client.pathStatistics.bytesInFlight == 0)
        }
        XCTAssertGreaterThan(received.count, n * 9 / 10, "2 % loss: almost every datagram arrives (DATAGRAM is not retransmitted)")
        for d in received {
            XCTAssertEqual(d.count, 901)
            XCTAssertEqual(d, pattern(900, seed: Int(d[900])) + [d[900]], "a payload arrived altered")
        }
        XCTAssertEqual(paths, [0])
        XCTAssertFalse(
            net.serverEvents.contains {
                if case .datagramReceived = $0 { return true }
                return false
            },
            "with a handler set, no datagram is copied into an event")
    }
}
