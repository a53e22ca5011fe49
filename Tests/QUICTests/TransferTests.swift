import Congestion
// Several-MB streams and datagrams through the simulated link with 0 %, 2 % and 30 % loss and
// reordering: everything must arrive intact and in order (RFC 9000 §2.2, §13.3; RFC 9221).
import XCTest

@testable import QUIC

/// Runs an echo server on the simulated network's server connection.
func echoServerStep(_ net: SimulatedNetwork, finished: inout Set<UInt64>) {
    guard let sc = net.serverConnection else { return }
    for id in sc.openStreamIDs where StreamID.isBidirectional(id) && !finished.contains(id) {
        if let r = sc.readStream(id) {
            if !r.data.isEmpty || r.fin { try? sc.writeStream(id, r.data, fin: r.fin) }
            if r.fin { finished.insert(id) }
        }
    }
    for e in net.serverEvents { if case .datagramReceived(let d) = e { try? sc.sendDatagram(d) } }
    net.serverEvents.removeAll()
}

func pattern(_ n: Int, seed: Int = 0) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: ($0 &+ seed) % 251) } }

final class TransferTests: XCTestCase {
    func echo(
        bytes: Int, loss: Double, seed: UInt64, jitter: Duration = .milliseconds(4),
        limit: Duration = .seconds(120), file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let net = try SimulatedNetwork(seed: seed, delay: .milliseconds(15), jitter: jitter, loss: loss, rateMbps: 200)
        XCTAssertTrue(
            net.run(for: .seconds(60)) { net.client.handshakeComplete }, "handshake under \(loss * 100)% loss", file: file, line: line)
        let id = try XCTUnwrap(net.client.openStream())
        let payload = pattern(bytes)
        try net.client.writeStream(id, payload, fin: true)
        var got: [UInt8] = []
        got.reserveCapacity(bytes)
        var fin = false
        var serverDone = Set<UInt64>()
        let ok = net.run(for: limit) {
            echoServerStep(net, finished: &serverDone)
            if let r = net.client.readStream(id) {
                got += r.data
                if r.fin { fin = true }
            }
            return fin
        }
        XCTAssertTrue(
            ok,
            "echo of \(bytes) bytes did not finish with \(loss * 100)% loss (got \(got.count)); client: \(net.client.state) \(net.clientEvents.suffix(3)) stats \(net.client.stats) t=\(net.now) server: \(String(describing: net.serverConnection?.state)) \(String(describing: net.serverConnection?.stats)) srvEvents \(net.serverEvents.suffix(2)) conf \(net.client.handshakeConfirmed) \(String(describing: net.serverConnection?.pathStatistics))",
            file: file, line: line)
        XCTAssertEqual(got.count, bytes, file: file, line: line)
        XCTAssertTrue(got == payload, "echoed bytes differ from what was sent", file: file, line: line)
        XCTAssertNil(net.client.stats.closeError, file: file, line: line)
        if loss > 0 { XCTAssertGreaterThan(net.dropped, 0, "the link must actually have dropped packets", file: file, line: line) }
    }

    func testFourMegabyteEchoWithoutLoss() throws { try echo(bytes: 4_000_000, loss: 0, seed: 11) }
    func testFourMegabyteEchoWithTwoPercentLoss() throws { try echo(bytes: 4_000_000, loss: 0.02, seed: 12) }
    func testTwoMegabyteEchoWithThirtyPercentLoss() throws { try echo(bytes: 2_000_000, loss: 0.30, seed: 13, limit: .seconds(600)) }

    /// Regression: a stream whose FIN was acknowledged while earlier data was lost must not be
    /// forgotten before the lost bytes are re-sent (RFC 9000 §3.1 "Data Recvd").
    func testSmallEchoesUnderTenPercentLossAcrossSeeds() throws {
        for seed in UInt64(300)..<UInt64(320) {
            try echo(bytes: 60_000, loss: 0.10, seed: seed, jitter: .milliseconds(6), limit: .seconds(60))
        }
    }

    func testHandshakeCompletesUnderThirtyPercentLossManySeeds() throws {
        for seed in UInt64(100)..<UInt64(110) {
            let net = try SimulatedNetwork(seed: seed, loss: 0.30)
            XCTAssertTrue(
                net.run(for: .seconds(60)) { net.client.handshakeConfirmed && net.serverConnection?.handshakeConfirmed == true },
                "seed \(seed): handshake did not complete under 30% loss")
        }
    }

    func testDatagramsArriveIntact() throws {
        for loss in [0.0, 0.02, 0.30] {
            let net = try SimulatedNetwork(seed: 21, jitter: .milliseconds(3), loss: loss)
            XCTAssertTrue(net.run(for: .seconds(60)) { net.client.handshakeComplete })
            XCTAssertGreaterThan(net.client.maxDatagramPayloadSize, 1200, "datagram payload should fit the 1350-byte path")
            let n = 300
            for i in 0..<n { try net.client.sendDatagram(pattern(1000, seed: i) + [UInt8(i % 256), UInt8(i / 256)]) }
            var echoed = Set<Int>()
            var corrupted = 0
            var serverDone = Set<UInt64>()
            net.run(for: .seconds(60)) {
                echoServerStep(net, finished: &serverDone)
                for e in net.clientEvents {
                    if case .datagramReceived(let d) = e {
                        let i = Int(d[d.count - 2]) + Int(d[d.count - 1]) * 256
                        if d == pattern(1000, seed: i) + [UInt8(i % 256), UInt8(i / 256)] { echoed.insert(i) } else { corrupted += 1 }
                    }
                }
                net.clientEvents.removeAll()
                return echoed.count == n
                    || (net.client.queuedDatagrams == 0 && (net.serverConnection?.queuedDatagrams ?? 0) == 0
                        && net.client.pathStatistics.bytesInFlight == 0 && net.now.nanoseconds > 20_000_000_000)
            }
            XCTAssertEqual(corrupted, 0, "a datagram arrived altered")
            if loss == 0 {
                XCTAssertEqual(echoed.count, n, "without loss every datagram must be echoed")
            } else {
                // Round trip survives with (1-loss)^2; allow slack for the seeded draw.
                let expected = Double(n) * (1 - loss) * (1 - loss)
                XCTAssertGreaterThan(
                    Double(echoed.count), expected * 0.8,
                    "loss \(loss): \(echoed.count) of \(n) echoed; client \(net.client.stats) server \(String(describing: net.serverConnection?.stats)) link dropped \(net.dropped) delivered \(net.delivered) t=\(net.now) q=\(net.client.queuedDatagrams),\(String(describing: net.serverConnection?.queuedDatagrams)) srvpath=\(String(describing: net.serverConnection?.pathStatistics))"
                )
                XCTAssertLessThan(echoed.count, n, "loss \(loss): datagrams must not be retransmitted (RFC 9221 §5.2)")
            }
        }
    }

    /// Regression: datagrams of exactly `maxDatagramPayloadSize` must be delivered even while
    /// every packet would also like to carry an ACK (RFC 9221 §5: never fragmented, never dropped
    /// for lack of room when they fit an empty packet).
    func testMaximumSizeDatagramsAreDelivered() throws {
        let net = try SimulatedNetwork(seed: 31)
        XCTAssertTrue(net.run(for: .seconds(5)) { net.client.handshakeConfirmed })
        let size = net.client.maxDatagramPayloadSize
        let n = 500
        var received = 0
        for i in 0..<n { try net.client.sendDatagram([UInt8](repeating: UInt8(i % 256), count: size)) }
        net.run(for: .seconds(10)) {
            for e in net.serverEvents { if case .datagramReceived(let d) = e, d.count == size { received += 1 } }
            net.serverEvents.removeAll()
            return received == n
        }
        XCTAssertEqual(received, n, "all \(n) datagrams of \(size) bytes must arrive on a lossless link")
        XCTAssertEqual(net.client.stats.datagramsDropped, 0)
    }

    func testOversizedDatagramIsRefused() throws {
        let net = try SimulatedNetwork(seed: 3)
        XCTAssertTrue(net.run(for: .seconds(5)) { net.client.handshakeComplete })
        XCTAssertThrowsError(try net.client.sendDatagram([UInt8](repeating: 1, count: net.client.maxDatagramPayloadSize + 1)))
        XCTAssertNoThrow(try net.client.sendDatagram([UInt8](repeating: 1, count: net.client.maxDatagramPayloadSize)))
    }
}
