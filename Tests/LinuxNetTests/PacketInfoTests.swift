import Glibc
import QUIC
// IP_PKTINFO / IPV6_PKTINFO on received datagrams: a socket bound to the wildcard address learns
// which of its addresses each datagram reached and on which interface (how a VPS tells the
// router's paths apart).
import XCTest

@testable import LinuxNet

final class PacketInfoTests: XCTestCase {
    func testAWildcardSocketLearnsTheAddressAndInterfaceEachDatagramReached() throws {
        let server = try UDPSocket(bindTo: SocketAddress(ip: [0, 0, 0, 0], port: 0))
        let port = server.localPort
        XCTAssertNotEqual(port, 0)
        let client = try UDPSocket(bindTo: SocketAddress(ip: [127, 0, 0, 1], port: 0))
        // Linux routes all of 127.0.0.0/8 to lo: two local addresses of the same socket.
        for (i, ip) in ([[127, 0, 0, 2], [127, 0, 0, 3]] as [[UInt8]]).enumerated() {
            XCTAssertTrue(try client.send([UInt8(i)], to: SocketAddress(ip: ip, port: port)))
        }
        let batch = UDPReceiveBatch(messages: 4, bufferSize: 2048)
        var infos: [UInt8: PacketInfo] = [:]
        while infos.count < 2 {
            let n = try server.receive(into: batch)
            if n == 0 {
                guard server.waitReadable(timeoutMs: 2000) else { break }
                continue
            }
            for k in 0..<n { infos[batch[k].bytes[0]] = batch[k].packetInfo }
        }
        let lo = Int32(if_nametoindex("lo"))
        XCTAssertEqual(infos[0], PacketInfo(localAddress: SocketAddress(ip: [127, 0, 0, 2], port: port), interfaceIndex: lo))
        XCTAssertEqual(infos[1], PacketInfo(localAddress: SocketAddress(ip: [127, 0, 0, 3], port: port), interfaceIndex: lo))
    }

    func testIPv6DatagramsCarryTheirDestinationToo() throws {
        guard let server = try? UDPSocket(bindTo: SocketAddress(ip: [UInt8](repeating: 0, count: 16), port: 0)) else {
            throw XCTSkip("no IPv6 on this host")
        }
        let client = try UDPSocket(bindTo: SocketAddress(ip: [UInt8](repeating: 0, count: 15) + [1], port: 0))
        let loopback6 = SocketAddress(ip: [UInt8](repeating: 0, count: 15) + [1], port: server.localPort)
        XCTAssertTrue(try client.send([7], to: loopback6))
        let batch = UDPReceiveBatch(messages: 2, bufferSize: 2048)
        var info: PacketInfo?
        for _ in 0..<2 where info == nil {
            if try server.receive(into: batch) > 0 { info = batch[0].packetInfo } else { _ = server.waitReadable(timeoutMs: 2000) }
        }
        XCTAssertEqual(info?.localAddress, loopback6)
        XCTAssertEqual(info?.interfaceIndex, Int32(if_nametoindex("lo")))
    }
}
