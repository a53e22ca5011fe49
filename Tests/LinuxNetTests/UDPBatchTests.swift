import Glibc
import QUIC
// The batched UDP data path over real loopback sockets: GSO sends arriving as separate datagrams
// or as one GRO buffer split back into them, recvmmsg batches with each datagram's source and ECN
// codepoint, and the fallback to one datagram per message when the kernel refuses GSO.
import XCTest

@testable import LinuxNet

final class UDPBatchTests: XCTestCase {
    struct Received: Equatable {
        var bytes: [UInt8]
        var source: SocketAddress
        var ecn: ECNCodepoint
        var segmentSize: Int
    }

    let loopback = SocketAddress(ip: [127, 0, 0, 1], port: 0)

    func makeSocket() throws -> (UDPSocket, SocketAddress) {
        let s = try UDPSocket(bindTo: loopback)
        return (s, try XCTUnwrap(s.localAddress))
    }

    /// Datagram `i` of a test: `length` bytes of value i.
    func payload(_ i: Int, length: Int) -> [UInt8] { [UInt8](repeating: UInt8(truncatingIfNeeded: i), count: length) }

    /// Receives until `expected` datagrams arrived (or 2 s without any); returns them and the
    /// datagram count of each receive call.
    func receive(_ socket: UDPSocket, _ batch: UDPReceiveBatch, expected: Int) throws -> (
        datagrams: [Received], calls: [Int], messages: [Int]
    ) {
        var out: [Received] = []
        var calls: [Int] = []
        var messages: [Int] = []
        while out.count < expected {
            let n = try socket.receive(into: batch)
            if n == 0 {
                guard socket.waitReadable(timeoutMs: 2000) else { break }
                continue
            }
            calls.append(n)
            messages.append(batch.messageCount)
            for i in 0..<n {
                let d = batch[i]
                out.append(Received(bytes: Array(d.bytes), source: d.source, ecn: d.ecn, segmentSize: d.segmentSize))
            }
        }
        return (out, calls, messages)
    }

    func testGSOSendArrivesAsSeparateDatagramsWithoutGRO() throws {
        let (sender, from) = try makeSocket()
        let (receiver, to) = try makeSocket()
        let batch = UDPSendBatch(socket: sender)
        // Eight full segments and a shorter last one: one train.
        let lengths = Array(repeating: 1200, count: 8) + [500]
        for (i, n) in lengths.enumerated() { XCTAssertTrue(try batch.append(payload(i, length: n), to: to)) }
        XCTAssertEqual(batch.count, 9)
        XCTAssertTrue(try batch.flush())
        XCTAssertTrue(batch.isEmpty)
        XCTAssertEqual(batch.statistics.datagrams, 9)
        if sender.segmentationOffload {
            XCTAssertEqual(batch.statistics.messages, 1, "nine equal-size datagrams to one destination should be one GSO send")
            XCTAssertEqual(batch.statistics.segmentedMessages, 1)
        }
        let got = try receive(receiver, UDPReceiveBatch(), expected: 9)
        XCTAssertEqual(got.datagrams.count, 9, "the kernel should split a GSO send into its segments")
        for (i, d) in got.datagrams.enumerated() {
            XCTAssertEqual(d.bytes, payload(i, length: lengths[i]), "datagram \(i) differs from what was sent")
            XCTAssertEqual(d.source, from)
            XCTAssertEqual(d.segmentSize, 0, "without UDP_GRO nothing is coalesced")
        }
    }

    func testGROBufferIsSplitBackIntoTheSentDatagrams() throws {
        let (sender, from) = try makeSocket()
        let (receiver, to) = try makeSocket()
        guard receiver.setReceiveOffload(true) else { throw XCTSkip("kernel refuses UDP_GRO") }
        guard sender.segmentationOffload else { throw XCTSkip("kernel refuses UDP_SEGMENT") }
        let batch = UDPSendBatch(socket: sender)
        let lengths = Array(repeating: 1350, count: 16) + [77]
        for (i, n) in lengths.enumerated() { try batch.append(payload(i, length: n), to: to, ecn: .ect0) }
        try batch.flush()
        XCTAssertEqual(batch.statistics.segmentedMessages, 1)
        let got = try receive(receiver, UDPReceiveBatch(messages: 4), expected: lengths.count)
        XCTAssertEqual(
            got.datagrams.map { $0.bytes }, lengths.enumerated().map { payload($0.offset, length: $0.element) },
            "the GRO buffer should split at the segment size into the datagrams that were sent")
        XCTAssertLessThan(got.messages.reduce(0, +), lengths.count, "loopback should have delivered the GSO send coalesced")
        XCTAssertTrue(got.datagrams.allSatisfy { $0.source == from && $0.ecn == .ect0 })
        XCTAssertTrue(got.datagrams.contains { $0.segmentSize == 1350 })
    }

    func testOneReceiveTakesSeveralDatagramsWithTheirSourceAndECN() throws {
        let (a, fromA) = try makeSocket()
        let (b, fromB) = try makeSocket()
        let (receiver, to) = try makeSocket()
        // Different sizes and codepoints, from two sockets, sent one by one and through a batch.
        let plan: [(UDPSocket, SocketAddress, ECNCodepoint, Int)] = [
            (a, fromA, .notECT, 100), (b, fromB, .ect0, 200), (a, fromA, .ect1, 300),
            (b, fromB, .ce, 400), (a, fromA, .ect0, 500), (b, fromB, .notECT, 600),
        ]
        for (i, p) in plan.enumerated() where i < 3 { XCTAssertTrue(try p.0.send(payload(i, length: p.3), to: to, ecn: p.2)) }
        for (i, p) in plan.enumerated() where i >= 3 {
            let batch = UDPSendBatch(socket: p.0)
            try batch.append(payload(i, length: p.3), to: to, ecn: p.2)
            try batch.flush()
        }
        usleep(20_000)  // let loopback delivery finish, so that one call finds all six
        let receiveBatch = UDPReceiveBatch(messages: 8)
        let got = try receive(receiver, receiveBatch, expected: plan.count)
        XCTAssertEqual(got.calls.first, plan.count, "one recvmmsg should have taken every waiting datagram")
        XCTAssertEqual(got.datagrams.count, plan.count)
        for (i, d) in got.datagrams.enumerated() {
            XCTAssertEqual(d.bytes, payload(i, length: plan[i].3), "datagram \(i) differs")
            XCTAssertEqual(d.source, plan[i].1, "datagram \(i) should come from its sender's address")
            XCTAssertEqual(d.ecn, plan[i].2, "datagram \(i) should carry the ECN codepoint it was sent with (RFC 9000 §13.4)")
        }
    }

    func testABatchLargerThanTheReceiveBatchTakesSeveralCalls() throws {
        let (sender, _) = try makeSocket()
        let (receiver, to) = try makeSocket()
        let batch = UDPSendBatch(socket: sender, capacity: 32)
        // Growing sizes: no datagram may join the train of the one before.
        for i in 0..<40 { try batch.append(payload(i, length: 1000 + i), to: to) }
        try batch.flush()
        XCTAssertEqual(batch.statistics.datagrams, 40)
        XCTAssertEqual(batch.statistics.messages, 40)
        XCTAssertEqual(batch.statistics.segmentedMessages, 0)
        let got = try receive(receiver, UDPReceiveBatch(messages: 16), expected: 40)
        XCTAssertEqual(got.datagrams.count, 40)
        XCTAssertTrue(got.calls.allSatisfy { $0 <= 16 })
        for (i, d) in got.datagrams.enumerated() { XCTAssertEqual(d.bytes, payload(i, length: 1000 + i)) }
    }

    func testTrainsBreakAtDestinationCodepointAndLargerDatagrams() throws {
        let (sender, _) = try makeSocket()
        let (r1, to1) = try makeSocket()
        let (r2, to2) = try makeSocket()
        guard sender.segmentationOffload else { throw XCTSkip("kernel refuses UDP_SEGMENT") }
        let batch = UDPSendBatch(socket: sender)
        // to1 ×3 (one train), to2 ×2 (train), to2 with CE (new train), to1 ×2 then a larger one.
        let plan: [(SocketAddress, ECNCodepoint, Int)] = [
            (to1, .notECT, 1000), (to1, .notECT, 1000), (to1, .notECT, 1000),
            (to2, .notECT, 900), (to2, .notECT, 900),
            (to2, .ce, 900),
            (to1, .notECT, 800), (to1, .notECT, 800), (to1, .notECT, 1200),
        ]
        for (i, p) in plan.enumerated() { try batch.append(payload(i, length: p.2), to: p.0, ecn: p.1) }
        try batch.flush()
        XCTAssertEqual(batch.statistics.messages, 5)
        XCTAssertEqual(batch.statistics.segmentedMessages, 3)
        XCTAssertEqual(batch.statistics.calls, 1, "all trains should leave in one sendmmsg")
        let got1 = try receive(r1, UDPReceiveBatch(), expected: 6)
        let got2 = try receive(r2, UDPReceiveBatch(), expected: 3)
        XCTAssertEqual(got1.datagrams.map { $0.bytes.count }, [1000, 1000, 1000, 800, 800, 1200])
        XCTAssertEqual(got2.datagrams.map { $0.bytes.count }, [900, 900, 900])
        XCTAssertEqual(got2.datagrams.map { $0.ecn }, [.notECT, .notECT, .ce])
    }

    func testKernelRefusingSegmentationFallsBackToOneDatagramPerMessage() throws {
        let (sender, from) = try makeSocket()
        let (receiver, to) = try makeSocket()
        guard sender.segmentationOffload else { throw XCTSkip("kernel refuses UDP_SEGMENT") }
        // udp_send_skb refuses GSO (EINVAL) on a socket whose UDP checksums are off (SO_NO_CHECK).
        var one: Int32 = 1
        XCTAssertEqual(setsockopt(sender.fd, SOL_SOCKET, SO_NO_CHECK, &one, socklen_t(MemoryLayout<Int32>.size)), 0)
        let batch = UDPSendBatch(socket: sender)
        for i in 0..<5 { try batch.append(payload(i, length: 1000), to: to, ecn: .ect0) }
        XCTAssertTrue(try batch.flush())
        XCTAssertFalse(sender.segmentationOffload, "a refused GSO send should turn GSO off for the socket")
        XCTAssertEqual(batch.statistics.datagrams, 5)
        XCTAssertEqual(batch.statistics.segmentedMessages, 0)
        XCTAssertEqual(batch.statistics.messages, 5)
        // Remembered: the next flush does not try GSO again.
        for i in 5..<8 { try batch.append(payload(i, length: 1000), to: to) }
        try batch.flush()
        XCTAssertEqual(batch.statistics.calls, 3, "one refused sendmmsg, then one per flush")
        let got = try receive(receiver, UDPReceiveBatch(), expected: 8)
        XCTAssertEqual(got.datagrams.map { $0.bytes }, (0..<8).map { payload($0, length: 1000) })
        XCTAssertTrue(got.datagrams.allSatisfy { $0.source == from })
        XCTAssertEqual(got.datagrams.prefix(5).map { $0.ecn }, Array(repeating: .ect0, count: 5))
    }

    /// An interface whose MTU is smaller than the datagrams (`ip link set mtu` on a WAN): GSO
    /// refuses the train (EINVAL), one by one the full-size datagrams are refused (EMSGSIZE) and
    /// reported as a refused size for the path's MTU discovery, the ones that fit still leave, and
    /// GSO stays on: the refusal was the size, not segmentation.
    func testDatagramsLargerThanTheInterfaceAreReportedAndGSOStaysOn() throws {
        let namespace = try TestNetworkNamespace(for: self)
        let (report, gsoAfter, got) = try namespace.run { () -> (UDPSendBatch.Statistics, Bool, [Int]) in
            try namespace.ip("link", "set", "lo", "up", "mtu", "1280")
            let sender = try UDPSocket(bindTo: self.loopback)
            sender.setDontFragment()
            let receiver = try UDPSocket(bindTo: self.loopback)
            let to = try XCTUnwrap(receiver.localAddress)
            let gso = sender.segmentationOffload
            let batch = UDPSendBatch(socket: sender)
            // 1280 - 28 bytes of IPv4 + UDP headers is the largest that fits.
            for i in 0..<4 { try batch.append(self.payload(i, length: 1400), to: to) }
            for i in 4..<7 { try batch.append(self.payload(i, length: 1000), to: to) }
            XCTAssertTrue(try batch.flush())
            XCTAssertEqual(batch.takeRefusedSize(), 1400, "the refused size is reported once")
            XCTAssertNil(batch.takeRefusedSize())
            XCTAssertEqual(sender.segmentationOffload, gso, "GSO is not turned off by a size the interface refuses")
            // The next flush of datagrams that fit goes as one GSO train again.
            for i in 7..<10 { try batch.append(self.payload(i, length: 1200), to: to) }
            XCTAssertTrue(try batch.flush())
            XCTAssertNil(batch.takeRefusedSize())
            let received = try self.receive(receiver, UDPReceiveBatch(), expected: 6)
            return (batch.statistics, sender.segmentationOffload, received.datagrams.map { Int($0.bytes[0]) })
        }
        XCTAssertEqual(got, [4, 5, 6, 7, 8, 9], "what fits arrives, in order")
        XCTAssertEqual(report.tooLarge, 4)
        XCTAssertEqual(report.dropped, 4)
        XCTAssertEqual(report.datagrams, 6)
        if gsoAfter { XCTAssertGreaterThanOrEqual(report.segmentedMessages, 1, "the second flush used GSO") }
    }

    func testForcedFallbackSendsEachDatagramInOneSendmmsg() throws {
        let (sender, _) = try makeSocket()
        let (receiver, to) = try makeSocket()
        sender.segmentationOffload = false
        let batch = UDPSendBatch(socket: sender)
        for i in 0..<6 { try batch.append(payload(i, length: 1300), to: to) }
        try batch.flush()
        XCTAssertEqual(batch.statistics.messages, 6)
        XCTAssertEqual(batch.statistics.segmentedMessages, 0)
        XCTAssertEqual(batch.statistics.calls, 1)
        let got = try receive(receiver, UDPReceiveBatch(), expected: 6)
        XCTAssertEqual(got.datagrams.map { $0.bytes }, (0..<6).map { payload($0, length: 1300) })
    }

    func testAFullBatchFlushesByItself() throws {
        let (sender, _) = try makeSocket()
        let (receiver, to) = try makeSocket()
        let batch = UDPSendBatch(socket: sender, capacity: 4)
        for i in 0..<10 { XCTAssertTrue(try batch.append(payload(i, length: 600), to: to)) }
        XCTAssertEqual(batch.count, 2)
        XCTAssertEqual(batch.statistics.datagrams, 8)
        try batch.flush()
        let got = try receive(receiver, UDPReceiveBatch(), expected: 10)
        XCTAssertEqual(got.datagrams.map { $0.bytes }, (0..<10).map { payload($0, length: 600) })
    }

    func testSingleDatagramAPIStillCarriesECN() throws {
        let (sender, from) = try makeSocket()
        let (receiver, to) = try makeSocket()
        XCTAssertTrue(try sender.send(payload(7, length: 321), to: to, ecn: .ect1))
        XCTAssertTrue(receiver.waitReadable(timeoutMs: 2000))
        var buffer = [UInt8](repeating: 0, count: 2048)
        let r = try XCTUnwrap(try receiver.receive(into: &buffer))
        XCTAssertEqual(Array(buffer[0..<r.count]), payload(7, length: 321))
        XCTAssertEqual(r.from, from)
        XCTAssertEqual(r.ecn, .ect1)
    }

    func testIPv6BatchCarriesTrafficClass() throws {
        let any6 = SocketAddress(ip: [UInt8](repeating: 0, count: 15) + [1], port: 0)
        guard let sender = try? UDPSocket(bindTo: any6), let receiver = try? UDPSocket(bindTo: any6),
            let from = sender.localAddress, let to = receiver.localAddress
        else { throw XCTSkip("no IPv6 loopback") }
        let batch = UDPSendBatch(socket: sender)
        for i in 0..<4 { try batch.append(payload(i, length: 1100), to: to, ecn: .ect0) }
        try batch.flush()
        let got = try receive(receiver, UDPReceiveBatch(), expected: 4)
        XCTAssertEqual(got.datagrams.map { $0.bytes }, (0..<4).map { payload($0, length: 1100) })
        XCTAssertTrue(got.datagrams.allSatisfy { $0.source == from && $0.ecn == .ect0 })
    }

    func testWaitingWithANanosecondTimeoutSeesTheReadableSocket() throws {
        let (a, _) = try makeSocket()
        let (b, toB) = try makeSocket()
        XCTAssertFalse(UDPSocket.waitReadable([a, b], nanoseconds: 50_000), "nothing was sent yet")
        XCTAssertTrue(try a.send(payload(1, length: 10), to: toB))
        XCTAssertTrue(UDPSocket.waitReadable([a, b], nanoseconds: 2_000_000_000))
        // More sockets than the inline pollfd list holds.
        let many = try (0..<9).map { _ in try makeSocket().0 }
        XCTAssertTrue(UDPSocket.waitReadable(many + [b], nanoseconds: 0))
    }

    func testSocketBuffersAreSizedForMultiGbitPaths() throws {
        let (s, _) = try makeSocket()
        // socket(7): getsockopt reports twice what was set; a non-root run gets rmem_max instead.
        XCTAssertGreaterThan(s.bufferSizes.receive, 0)
        XCTAssertGreaterThan(s.bufferSizes.send, 0)
        if geteuid() == 0 {
            XCTAssertTrue(s.bufferSizes.forced)
            XCTAssertGreaterThanOrEqual(s.bufferSizes.receive, SocketBufferSizes.defaultRequest)
        }
    }

    func testControlMessagesOfAGROReceiveAreRead() {
        // A hand-built buffer: IP_TOS with CE, then UDP_GRO with 1350, as recvmsg would fill it.
        let space = ECNControlMessage.space(1) + ECNControlMessage.space(4)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: space, alignment: 8)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: space)
        buffer.storeBytes(of: ECNControlMessage.length(1), as: Int.self)
        buffer.storeBytes(of: Int32(IPPROTO_IP), toByteOffset: ECNControlMessage.levelOffset, as: Int32.self)
        buffer.storeBytes(of: IP_TOS, toByteOffset: ECNControlMessage.typeOffset, as: Int32.self)
        buffer.storeBytes(of: UInt8(0b1011_1011), toByteOffset: ECNControlMessage.headerSize, as: UInt8.self)
        let second = buffer + ECNControlMessage.space(1)
        second.storeBytes(of: ECNControlMessage.length(4), as: Int.self)
        second.storeBytes(of: UDPSegmentation.level, toByteOffset: ECNControlMessage.levelOffset, as: Int32.self)
        second.storeBytes(of: UDPSegmentation.groOption, toByteOffset: ECNControlMessage.typeOffset, as: Int32.self)
        second.storeBytes(of: Int32(1350), toByteOffset: ECNControlMessage.headerSize, as: Int32.self)
        XCTAssertEqual(ECNControlMessage.parseECN(buffer, length: space), .ce, "RFC 3168 §5: the two low bits of TOS")
        var segment: Int?
        ECNControlMessage.forEach(buffer, length: space) { level, type, data, length in
            if let s = UDPSegmentation.groSegmentSize(level: level, type: type, data: data, length: length) { segment = s }
        }
        XCTAssertEqual(segment, 1350)
    }
}
