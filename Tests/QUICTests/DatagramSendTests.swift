import Congestion
// The datagram send API a data plane uses (RFC 9221): the zero-copy send, where the owner writes
// each payload into a slot the connection owns, and the typed errors (`DatagramError`,
// `PathError`) an owner switches on instead of reading messages.
import XCTest

@testable import QUIC

final class DatagramSendTests: XCTestCase {
    private func connected(seed: UInt64 = 71, loss: Double = 0, clientConfig: ((inout ConnectionConfiguration) -> Void)? = nil)
        throws -> SimulatedNetwork
    {
        let net = try SimulatedNetwork(
            seed: seed, loss: loss,
            clientConfig: {
                $0.maxPathID = 4
                clientConfig?(&$0)
            },
            serverConfig: { $0.connection.maxPathID = 4 })
        XCTAssertTrue(net.run(for: .seconds(5)) { net.client.handshakeConfirmed && net.serverConnection?.handshakeConfirmed == true })
        return net
    }

    /// Writes `bytes` into the slot the connection hands out.
    private func write(_ bytes: [UInt8]) -> (UnsafeMutableRawBufferPointer) -> Int {
        { buffer in
            precondition(buffer.count >= bytes.count)
            buffer.copyBytes(from: bytes)
            return bytes.count
        }
    }

    func testPayloadsWrittenIntoSlotsArriveIntactAndTheSlotsComeBack() throws {
        let net = try connected(loss: 0.02)
        let server = try XCTUnwrap(net.serverConnection)
        var received: [[UInt8]] = []
        server.onDatagram = { payload, _ in received.append(Array(payload)) }
        let slots = net.client.availableDatagramSlots
        let n = 150
        for i in 0..<n {
            let queued = try net.client.sendDatagram(write(pattern(1000, seed: i) + [UInt8(i)]))
            XCTAssertEqual(queued, 1001)
        }
        XCTAssertEqual(net.client.queuedDatagrams, n)
        XCTAssertEqual(net.client.availableDatagramSlots, slots - n, "each queued datagram holds a slot")
        net.run(for: .seconds(30)) { net.client.queuedDatagrams == 0 && net.client.pathStatistics.bytesInFlight == 0 }
        XCTAssertEqual(net.client.availableDatagramSlots, slots, "a sent datagram gives its slot back")
        XCTAssertGreaterThan(received.count, n * 9 / 10, "2 % loss: almost every datagram arrives")
        for d in received {
            XCTAssertEqual(d, pattern(1000, seed: Int(d[1000])) + [d[1000]], "a payload arrived altered")
        }
    }

    func testTheBufferIsTheLargestPayloadAndAnEmptyWriteQueuesNothing() throws {
        let net = try connected()
        var offered = 0
        let queued = try net.client.sendDatagram { buffer in
            offered = buffer.count
            return 0
        }
        XCTAssertEqual(queued, 0)
        XCTAssertEqual(offered, net.client.maxDatagramPayloadSize, "the writer gets room for the largest datagram")
        XCTAssertEqual(net.client.queuedDatagrams, 0)
        XCTAssertEqual(net.client.availableDatagramSlots, net.client.config.datagramSlotCount, "the slot went back")
    }

    func testSlotsAndArraysShareOneQueueInOrder() throws {
        let net = try connected()
        let server = try XCTUnwrap(net.serverConnection)
        var order: [UInt8] = []
        server.onDatagram = { payload, _ in order.append(payload[0]) }
        for i in 0..<40 {
            if i % 2 == 0 {
                try net.client.sendDatagram(write([UInt8(i)] + pattern(300)))
            } else {
                try net.client.sendDatagram([UInt8(i)] + pattern(300))
            }
        }
        net.run(for: .seconds(5)) { order.count == 40 }
        XCTAssertEqual(order, (0..<40).map { UInt8($0) }, "FIFO across both kinds (no loss, no reordering)")
    }

    func testUrgentDatagramsOvertakeThePathsQueue() throws {
        // A ping queued behind a burst of bulk on a paced path leaves first, and the bulk keeps
        // its order behind it.
        let net = try connected()
        let server = try XCTUnwrap(net.serverConnection)
        var order: [UInt8] = []
        server.onDatagram = { payload, _ in order.append(payload[0]) }
        for i in 0..<30 { try net.client.sendDatagram(onPath: 0, write([UInt8(i)] + pattern(1000))) }
        try net.client.sendDatagram(onPath: 0, urgent: true, write([100] + pattern(60)))
        try net.client.sendDatagram(onPath: 0, urgent: true, write([101] + pattern(60)))
        XCTAssertEqual(net.client.pathCondition(0)?.queuedDatagrams, 32, "urgent ones count as queued on their path")
        net.run(for: .seconds(5)) { order.count == 32 }
        XCTAssertEqual(order, [100, 101] + (0..<30).map { UInt8($0) })
    }

    func testRunningOutOfSlotsIsNoBufferSpaceUntilSomeAreSent() throws {
        let net = try connected(clientConfig: { $0.datagramSlotCount = 4 })
        for i in 0..<4 { try net.client.sendDatagram(write([UInt8(i)])) }
        XCTAssertThrowsError(try net.client.sendDatagram(write([9]))) { error in
            XCTAssertEqual(error as? DatagramError, .noBufferSpace)
        }
        XCTAssertNoThrow(try net.client.sendDatagram([9]), "the array API does not need a slot")
        net.run(for: .seconds(2)) { net.client.queuedDatagrams == 0 }
        XCTAssertEqual(net.client.availableDatagramSlots, 4)
        XCTAssertNoThrow(try net.client.sendDatagram(write([10])))
    }

    func testQueueOverflowDropsTheOldestAndFreesItsSlot() throws {
        let net = try connected(clientConfig: {
            $0.datagramSendQueueLimit = 3
            $0.datagramSlotCount = 8
        })
        for i in 0..<5 { try net.client.sendDatagram(write([UInt8(i)])) }
        XCTAssertEqual(net.client.queuedDatagrams, 3)
        XCTAssertEqual(net.client.stats.datagramsDropped, 2, "RFC 9221 §5: the two oldest were dropped")
        XCTAssertEqual(net.client.availableDatagramSlots, 5, "the dropped datagrams' slots are free again")
    }

    /// An ACK that is pending but not yet due (one ack-eliciting packet received, RFC 9000
    /// §13.2.1's max_ack_delay still running) waits rather than push a full-size datagram into a
    /// packet of its own: the tunnel's bulk direction would otherwise send one ACK-only packet per
    /// two received, each ending a GSO train. Once due, the ACK still goes out.
    func testAPendingAckDoesNotPushAFullSizeDatagramIntoAPacketOfItsOwn() throws {
        let net = try connected()
        let server = try XCTUnwrap(net.serverConnection)
        net.run(for: .milliseconds(200)) { false }  // the handshake's ACKs settle
        var atClient = 0
        net.client.onDatagram = { _, _ in atClient += 1 }
        try server.sendDatagram([7])
        XCTAssertTrue(net.run(for: .milliseconds(100)) { atClient == 1 })
        let ackDeadline = try XCTUnwrap(net.client.path.space.ackDeadline, "one ack-eliciting packet: an ACK is pending")
        XCTAssertGreaterThan(ackDeadline, net.now, "and not due before max_ack_delay")

        let size = net.client.maxDatagramPayloadSize
        var atServer = 0
        server.onDatagram = { _, _ in atServer += 1 }
        net.clientDatagramLog = []
        for i in 0..<10 { try net.client.sendDatagram([UInt8](repeating: UInt8(i), count: size)) }
        XCTAssertTrue(net.run(for: .milliseconds(15)) { atServer == 10 })
        XCTAssertLessThan(net.now, ackDeadline, "measured before the ACK fell due")
        let sizes = try XCTUnwrap(net.clientDatagramLog).map(\.count)
        XCTAssertEqual(sizes.count, 10, "ten full-size datagrams in ten packets, no ACK-only packet before them: \(sizes)")
        XCTAssertTrue(sizes.allSatisfy { $0 > size }, "\(sizes)")

        XCTAssertTrue(net.run(for: .milliseconds(100)) { net.client.path.space.ackDeadline == nil }, "the ACK went out once due")
        let later = try XCTUnwrap(net.clientDatagramLog).dropFirst(10).map(\.count)
        XCTAssertTrue(later.contains { $0 < 100 }, "a small ACK-only packet followed: \(later)")
    }

    func testErrorsSayWhatWentWrong() throws {
        let early = try SimulatedNetwork(seed: 72)
        XCTAssertThrowsError(try early.client.sendDatagram([1])) { XCTAssertEqual($0 as? DatagramError, .notSupportedByPeer) }
        XCTAssertThrowsError(try early.client.sendDatagram(write([1]))) { XCTAssertEqual($0 as? DatagramError, .notSupportedByPeer) }

        let net = try connected()
        let max = net.client.maxDatagramPayloadSize
        XCTAssertThrowsError(try net.client.sendDatagram([UInt8](repeating: 0, count: max + 1))) {
            XCTAssertEqual($0 as? DatagramError, .tooLarge(size: max + 1, max: max))
        }
        XCTAssertThrowsError(try net.client.sendDatagram([1], onPath: 9)) { XCTAssertEqual($0 as? DatagramError, .noSuchPath(9)) }
        XCTAssertThrowsError(try net.client.sendDatagram(onPath: 9, write([1]))) { XCTAssertEqual($0 as? DatagramError, .noSuchPath(9)) }
        XCTAssertThrowsError(try net.client.setCongestionControl(.cubic, onPath: 9)) { XCTAssertEqual($0 as? PathError, .noSuchPath(9)) }
        XCTAssertEqual("\(DatagramError.tooLarge(size: 2000, max: 1300))", "datagram of 2000 bytes exceeds the maximum 1300")

        // draft-ietf-quic-multipath §3.4: nothing more is sent on an abandoned path.
        net.run(for: .milliseconds(100)) { false }
        let id = try XCTUnwrap(net.client.openPath(local: SocketAddress(ip: [10, 0, 0, 3], port: 40001), now: net.now))
        XCTAssertTrue(net.run(for: .seconds(3)) { net.client.pathStatistics(id)?.state == .active })
        XCTAssertNoThrow(try net.client.sendDatagram(onPath: id, write([1])))
        net.client.abandonPath(id, now: net.now)
        XCTAssertThrowsError(try net.client.sendDatagram([1], onPath: id)) { XCTAssertEqual($0 as? DatagramError, .pathNotUsable(id)) }
        XCTAssertThrowsError(try net.client.sendDatagram(onPath: id, write([1]))) {
            XCTAssertEqual($0 as? DatagramError, .pathNotUsable(id))
        }
    }
}
