import Congestion
// ECN (RFC 9000 §13.4, RFC 9002 §7.1) and runtime congestion-control selection, end to end
// through two connections on the test network.
import XCTest

@testable import QUIC

final class CongestionIntegrationTests: XCTestCase {
    /// Sends `bytes` of stream data client → server and waits until the server has read it all.
    private func transfer(_ net: SimulatedNetwork, bytes: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let id = try XCTUnwrap(net.client.openStream(), file: file, line: line)
        try net.client.writeStream(id, pattern(bytes), fin: true)
        var got = 0
        var fin = false
        XCTAssertTrue(
            net.run(for: .seconds(60)) {
                if let sc = net.serverConnection, let r = sc.readStream(id) {
                    got += r.data.count
                    if r.fin { fin = true }
                }
                return fin
            }, "transfer of \(bytes) bytes did not finish (got \(got))", file: file, line: line)
        XCTAssertEqual(got, bytes, file: file, line: line)
    }

    private func handshake(_ net: SimulatedNetwork) {
        XCTAssertTrue(net.run(for: .seconds(5)) { net.client.handshakeConfirmed })
    }

    func testECNValidatesOnAPathThatCarriesIt() throws {
        let net = try SimulatedNetwork(seed: 41)
        handshake(net)
        XCTAssertEqual(net.client.pathStatistics(0)?.ecnState, "testing")
        try transfer(net, bytes: 300_000)
        XCTAssertEqual(net.client.pathStatistics(0)?.ecnState, "capable")
        // The server marks its ACK-carrying 1-RTT packets too, and the client's ACKs echo them.
        XCTAssertEqual(net.serverConnection?.pathStatistics(0)?.ecnState, "capable")
        XCTAssertEqual(net.client.pathStatistics(0)?.ecnCongestionExperienced, 0)
    }

    func testECNBleachingPathFailsValidationAndStopsMarking() throws {
        let net = try SimulatedNetwork(seed: 42)
        net.ecnBehaviour = .bleach
        handshake(net)
        try transfer(net, bytes: 300_000)
        XCTAssertEqual(net.client.pathStatistics(0)?.ecnState, "failed")
        // RFC 9000 §13.4.2.2: after a failed validation the endpoint stops marking.
        let id = try XCTUnwrap(net.client.openStream())
        try net.client.writeStream(id, pattern(5000), fin: true)
        var marked = 0
        var sent = 0
        while let t = net.client.poll(now: net.now) {
            sent += 1
            if t.ecn != .notECT { marked += 1 }
        }
        XCTAssertGreaterThan(sent, 0)
        XCTAssertEqual(marked, 0)
    }

    func testCEMarksReduceTheSendersWindowOncePerRound() throws {
        let net = try SimulatedNetwork(seed: 43)
        handshake(net)
        try transfer(net, bytes: 2_000_000)
        let before = try XCTUnwrap(net.client.pathStatistics(0))
        XCTAssertEqual(before.ecnState, "capable")
        XCTAssertEqual(before.packetsLost, 0, "the test link is lossless: any reduction below comes from CE")
        net.ceMarksToApply = 3
        try transfer(net, bytes: 200_000)
        let after = try XCTUnwrap(net.client.pathStatistics(0))
        XCTAssertEqual(net.ceMarksApplied, 3)
        XCTAssertGreaterThanOrEqual(after.ecnCongestionExperienced, 1)
        XCTAssertEqual(after.packetsLost, 0)
        // NewReno halves on the CE round (RFC 9002 §7.1, §7.3.2) and regrows by at most one
        // packet per window of the 200 kB that follows.
        XCTAssertLessThan(
            after.congestionWindow, before.congestionWindow * 3 / 4,
            "cwnd \(before.congestionWindow) -> \(after.congestionWindow)")
    }

    func testECNCanBeTurnedOff() throws {
        let net = try SimulatedNetwork(seed: 44, clientConfig: { $0.ecn = false })
        handshake(net)
        try transfer(net, bytes: 50_000)
        XCTAssertEqual(net.client.pathStatistics(0)?.ecnState, "disabled")
    }

    func testCongestionControlIsSelectedPerConnectionAndAtRuntime() throws {
        let net = try SimulatedNetwork(seed: 45, clientConfig: { $0.congestion = .cubic })
        handshake(net)
        XCTAssertEqual(net.client.pathStatistics(0)?.congestionControl, "cubic")
        try net.client.setCongestionControl(.bbr, onPath: 0)
        XCTAssertEqual(net.client.pathStatistics(0)?.congestionControl, "bbr")
        try transfer(net, bytes: 500_000)
        net.client.setCongestionControl(.westwood, coupling: .olia)
        XCTAssertEqual(net.client.pathStatistics(0)?.congestionControl, "westwood")
        XCTAssertEqual(net.client.coupling, .olia)
        try transfer(net, bytes: 500_000)
        XCTAssertThrowsError(try net.client.setCongestionControl(.copa, onPath: 9))
    }

    func testEveryControllerCarriesATransferWithLoss() throws {
        for algorithm in CongestionAlgorithm.allCases {
            let net = try SimulatedNetwork(seed: 46, loss: 0.02, clientConfig: { $0.congestion = algorithm })
            handshake(net)
            try transfer(net, bytes: 1_000_000)
            XCTAssertEqual(net.client.pathStatistics(0)?.congestionControl, algorithm.rawValue)
        }
    }
}
