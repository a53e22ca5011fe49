// The status line that says how the WAN sockets batch (datagrams per GSO send, per GRO buffer).
import LinuxNet
import XCTest

@testable import TQUICDaemon

final class UDPBatchSummaryTests: XCTestCase {
    func testSumsTheSocketsAndGivesDatagramsPerMessageAndPerBuffer() {
        var a = UDPSendBatch.Statistics()
        a.datagrams = 440
        a.messages = 10
        a.segmentedMessages = 10
        a.calls = 5
        var b = UDPSendBatch.Statistics()
        b.datagrams = 10
        b.messages = 10
        b.calls = 10
        b.dropped = 2
        var r = UDPReceiveCounters()
        r.datagrams = 300
        r.buffers = 40
        r.calls = 20
        XCTAssertEqual(
            udpBatchSummary(sent: [a, b], received: r),
            "udp: sent 450 datagrams in 20 messages (10 GSO, 22.5 per message) by 15 calls, dropped 2; "
                + "received 300 datagrams in 40 buffers (7.5 per buffer) by 20 calls")
    }

    func testNothingYetReadsZero() {
        XCTAssertEqual(
            udpBatchSummary(sent: [], received: UDPReceiveCounters()),
            "udp: sent 0 datagrams in 0 messages (0 GSO, 0.0 per message) by 0 calls, dropped 0; "
                + "received 0 datagrams in 0 buffers (0.0 per buffer) by 0 calls")
    }
}
