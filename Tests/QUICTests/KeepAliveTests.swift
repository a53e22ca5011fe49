import Congestion
// Keep-alives (RFC 9000 §10.1.2), per path: an idle connection with `keepAliveInterval` below
// the idle timeout sends a PING every interval and stays open, one without it times out, and a
// busy path keeps no other path's NAT binding alive: the idle one sends its own PINGs.
import XCTest

@testable import QUIC

final class KeepAliveTests: XCTestCase {
    let secondAddress = SocketAddress(ip: [10, 0, 0, 3], port: 40001)

    private func network(keepAlive: Duration?, idle: Duration = .seconds(10), multipath: Bool = false) throws -> SimulatedNetwork {
        let net = try SimulatedNetwork(
            seed: 91,
            clientConfig: {
                $0.keepAliveInterval = keepAlive
                $0.maxIdleTimeout = idle
                if multipath { $0.maxPathID = 4 }
            },
            serverConfig: {
                $0.connection.maxIdleTimeout = idle
                if multipath { $0.connection.maxPathID = 4 }
            })
        XCTAssertTrue(net.run(for: .seconds(5)) { net.client.handshakeConfirmed && net.serverConnection?.handshakeConfirmed == true })
        return net
    }

    func testAnIdleConnectionPingsEveryIntervalAndStaysOpen() throws {
        let net = try network(keepAlive: .seconds(2))
        let start = net.now
        var pingTimes: [Timestamp] = []
        var last: UInt64 = 0
        net.run(for: .seconds(60)) {
            let sent = net.client.pathStatistics(0)?.keepAlivesSent ?? 0
            if sent != last {
                pingTimes.append(net.now)
                last = sent
            }
            return net.client.isClosed
        }
        XCTAssertFalse(net.client.isClosed, "keep-alives below the 10 s idle timeout keep the connection open")
        XCTAssertEqual(net.serverConnection?.isClosed, false, "the peer hears them too")
        XCTAssertTrue(28...30 ~= net.client.stats.keepAlivesSent, "a PING every 2 s for 60 s, got \(net.client.stats.keepAlivesSent)")
        for (a, b) in zip(pingTimes, pingTimes.dropFirst()) {
            XCTAssertEqual(Double((b - a).nanoseconds) / 1e9, 2, accuracy: 0.01, "one interval between PINGs")
        }
        XCTAssertLessThan(pingTimes.first.map { $0 - start } ?? .seconds(9), .seconds(2) + .milliseconds(50))
    }

    func testWithoutKeepAliveAnIdleConnectionTimesOut() throws {
        let net = try network(keepAlive: nil)
        let start = net.now
        XCTAssertTrue(net.run(for: .seconds(60)) { net.client.isClosed }, "RFC 9000 §10.1: idle for 10 s, closed")
        XCTAssertLessThanOrEqual(net.now - start, .seconds(11))
        net.collectEvents()
        XCTAssertTrue(net.clientEvents.contains(.closed(.idleTimeout)))
        XCTAssertEqual(net.client.stats.keepAlivesSent, 0)
    }

    func testTheIntervalIsAtMostHalfTheIdleTimeout() throws {
        let net = try network(keepAlive: .seconds(30), idle: .seconds(10))
        net.run(for: .seconds(40)) { net.client.isClosed }
        XCTAssertFalse(net.client.isClosed, "a 30 s interval against a 10 s idle timeout is used as 5 s")
        XCTAssertTrue(7...8 ~= net.client.stats.keepAlivesSent, "got \(net.client.stats.keepAlivesSent)")
    }

    func testABusyPathKeepsNoOtherPathsBindingAlive() throws {
        let net = try network(keepAlive: .seconds(1), idle: .seconds(30), multipath: true)
        net.run(for: .milliseconds(100)) { false }  // let PATH_NEW_CONNECTION_ID arrive
        let id = try XCTUnwrap(net.client.openPath(local: secondAddress, now: net.now))
        XCTAssertTrue(net.run(for: .seconds(3)) { net.client.pathStatistics(id)?.state == .active })
        var next = net.now
        var sent = 0
        let before = net.deliveredPerAddress[secondAddress] ?? 0
        net.run(for: .seconds(20)) {
            if net.now >= next {  // path 0 carries a datagram every 100 ms
                try? net.client.sendDatagram(pattern(200, seed: sent), onPath: 0)
                sent += 1
                next = net.now + .milliseconds(100)
            }
            return false
        }
        let busy = try XCTUnwrap(net.client.pathStatistics(0))
        let idle = try XCTUnwrap(net.client.pathStatistics(id))
        XCTAssertEqual(busy.keepAlivesSent, 0, "path 0 sends ack-eliciting data all the time")
        XCTAssertTrue(17...20 ~= idle.keepAlivesSent, "path \(id) pings once a second on its own, got \(idle.keepAlivesSent)")
        XCTAssertGreaterThanOrEqual((net.deliveredPerAddress[secondAddress] ?? 0) - before, 19, "on its own address")
    }
}
