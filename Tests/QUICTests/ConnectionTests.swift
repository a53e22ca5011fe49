import Congestion
// In-memory client↔server connections through a seeded lossy, reordering link (RFC 9000 end to end).
import XCTest

@testable import QUIC

final class ConnectionTests: XCTestCase {
    func testHandshakeCompletesAndStreamEchoes() throws {
        let net = try SimulatedNetwork(seed: 1)
        XCTAssertTrue(
            net.run(for: .seconds(5)) { net.client.handshakeConfirmed && net.serverConnection?.handshakeConfirmed == true },
            "handshake did not complete")
        XCTAssertEqual(net.client.negotiatedALPN, "tquic-test")
        let id = try XCTUnwrap(net.client.openStream())
        try net.client.writeStream(id, Array("hello".utf8), fin: true)
        var received: [UInt8] = []
        var fin = false
        XCTAssertTrue(
            net.run(for: .seconds(5)) {
                if let sc = net.serverConnection, let r = sc.readStream(id) {
                    received += r.data
                    fin = r.fin
                }
                return fin
            })
        XCTAssertEqual(String(decoding: received, as: UTF8.self), "hello")
    }
}
