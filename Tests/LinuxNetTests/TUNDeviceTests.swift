import Glibc
import QUIC
// The TUN device in a network namespace of its own: a datagram a local socket sends to the TUN's
// subnet comes out of the TUN as an IPv4 (or IPv6) packet, and a packet written into the TUN is
// delivered to a local socket: the router's and the VPS's halves of the data path.
import XCTest

@testable import LinuxNet

final class TUNDeviceTests: XCTestCase {
    let tunAddress = IPPrefix("10.99.0.1/24")!
    let peer = SocketAddress(ip: [10, 99, 0, 2], port: 9999)

    /// A TUN device in `namespace`, up, with 10.99.0.1/24 and fd99::1/64 (run on its thread).
    func makeTUN(_ existing: TUNDevice? = nil) throws -> (TUNDevice, RouteNetlink) {
        let tun = try existing ?? TUNDevice(name: "tquic%d")
        let netlink = try RouteNetlink()
        try netlink.setLinkUp(tun.name, up: true)
        try netlink.addAddress(tunAddress, to: tun.name)
        try netlink.addAddress(IPPrefix("fd99::1/64")!, to: tun.name)
        return (tun, netlink)
    }

    /// Reads packets from the TUN until one satisfies `match` (the kernel also sends IPv6 router
    /// solicitations and MLD reports), for up to two seconds.
    func readPacket(_ tun: TUNDevice, where match: ([UInt8]) -> Bool) throws -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 2048)
        let deadline = Date().addingTimeInterval(2)
        while Date() < deadline {
            let n = try buffer.withUnsafeMutableBytes { try tun.read(into: $0) }
            guard let n else {
                _ = waitReadable(tun.fd, milliseconds: 100)
                continue
            }
            let packet = Array(buffer[..<n])
            if match(packet) { return packet }
        }
        return nil
    }

    func testADatagramToTheTUNsSubnetComesOutOfTheTUNAsAnIPv4Packet_AndAPacketWrittenInIsDelivered() throws {
        let namespace = try TestNetworkNamespace(for: self)
        try namespace.run {
            let fresh = try TUNDevice(name: "tquic%d")
            XCTAssertEqual(fresh.name, "tquic0", "the kernel numbers a requested \"tquic%d\" from 0")
            // Before it is up (after, the kernel sends IPv6 router solicitations into it).
            var empty = [UInt8](repeating: 0, count: 64)
            XCTAssertNil(
                try empty.withUnsafeMutableBytes { try fresh.read(into: $0) }, "nothing sent yet: a read finds no packet and does not block"
            )
            let (tun, _) = try self.makeTUN(fresh)

            // Router direction: the kernel routes a local datagram into the TUN.
            let socket = try UDPSocket(bindTo: SocketAddress(ip: [10, 99, 0, 1], port: 0))
            XCTAssertTrue(try socket.send(Array("hello".utf8), to: self.peer))
            let packet = try XCTUnwrap(
                try self.readPacket(tun) { $0.count >= 20 && $0[0] >> 4 == 4 && Array($0[16..<20]) == [10, 99, 0, 2] },
                "the datagram to 10.99.0.2 did not come out of the TUN")
            XCTAssertEqual(packet[0], 0x45, "IPv4 without options")
            XCTAssertEqual(Int(packet[2]) << 8 | Int(packet[3]), packet.count, "total length is the packet read")
            XCTAssertEqual(packet[9], 17, "protocol UDP")
            XCTAssertEqual(Array(packet[12..<16]), [10, 99, 0, 1], "source is the TUN's address")
            XCTAssertEqual(IPv4.checksum(packet[0..<20]), 0, "the header checksum verifies")
            XCTAssertEqual(UInt16(packet[20]) << 8 | UInt16(packet[21]), socket.localPort)
            XCTAssertEqual(UInt16(packet[22]) << 8 | UInt16(packet[23]), 9999)
            XCTAssertEqual(Array(packet[28...]), Array("hello".utf8))

            // VPS direction: a packet written into the TUN reaches the local socket.
            let reply = IPv4.udpPacket(
                from: self.peer, to: SocketAddress(ip: [10, 99, 0, 1], port: socket.localPort), payload: Array("world".utf8))
            XCTAssertTrue(try reply.withUnsafeBytes { try tun.write($0) })
            XCTAssertTrue(socket.waitReadable(timeoutMs: 2000), "the packet written into the TUN was not delivered to the socket")
            var received = [UInt8](repeating: 0, count: 64)
            let got = try XCTUnwrap(try socket.receive(into: &received))
            XCTAssertEqual(Array(received[..<got.count]), Array("world".utf8))
            XCTAssertEqual(got.from, self.peer)
        }
    }

    func testIPv6PacketsComeOutOfTheTUNToo() throws {
        let namespace = try TestNetworkNamespace(for: self)
        try namespace.run {
            let (tun, _) = try self.makeTUN()
            // A TUN is IFF_NOARP, so the kernel runs no duplicate address detection on it: the
            // address is usable at once (RouteNetlinkTests checks IFA_F_NODAD on a veth).
            let socket = try UDPSocket(bindTo: SocketAddress("[fd99::1]:0")!)
            XCTAssertTrue(try socket.send([1, 2, 3], to: SocketAddress("[fd99::2]:7777")!))
            let destination = SocketAddress("[fd99::2]:0")!.ip
            let packet = try XCTUnwrap(
                try self.readPacket(tun) { $0.count >= 48 && $0[0] >> 4 == 6 && $0[6] == 17 && Array($0[24..<40]) == destination },
                "the datagram to fd99::2 did not come out of the TUN")
            XCTAssertEqual(Array(packet[8..<24]), SocketAddress("[fd99::1]:0")!.ip, "source is the TUN's IPv6 address")
            XCTAssertEqual(Array(packet[48...]), [1, 2, 3])
        }
    }

    func testAMalformedPacketOrADownInterfaceDropsThePacketWithoutAnError() throws {
        let namespace = try TestNetworkNamespace(for: self)
        try namespace.run {
            let (tun, netlink) = try self.makeTUN()
            let garbage: [UInt8] = [0x00, 0x01, 0x02, 0x03]
            XCTAssertFalse(try garbage.withUnsafeBytes { try tun.write($0) }, "neither IPv4 nor IPv6 (EINVAL): refused, not thrown")
            try netlink.setLinkUp(tun.name, up: false)
            let packet = IPv4.udpPacket(from: self.peer, to: SocketAddress(ip: [10, 99, 0, 1], port: 9), payload: [0])
            XCTAssertFalse(try packet.withUnsafeBytes { try tun.write($0) }, "interface down (EIO): refused, not thrown")
            tun.close()
            tun.close()  // a second close does nothing (and deinit's neither)
            XCTAssertNil(try netlink.interfaceIndex(tun.name), "closing the device removes the interface")
        }
    }

    func testANameTooLongIsRefused() throws {
        let namespace = try TestNetworkNamespace(for: self)
        try namespace.run {
            XCTAssertThrowsError(try TUNDevice(name: "tquic-much-too-long")) { error in
                XCTAssertEqual((error as? SystemError)?.errno, ENAMETOOLONG)
            }
        }
    }
}

/// Hand-built IPv4 packets for the tests.
enum IPv4 {
    /// The Internet checksum (RFC 1071) of `bytes`: 0 over a header that carries a correct one.
    static func checksum<C: Collection>(_ bytes: C) -> UInt16 where C.Element == UInt8 {
        var sum: UInt32 = 0
        var high = true
        for byte in bytes {
            sum += high ? UInt32(byte) << 8 : UInt32(byte)
            high.toggle()
        }
        while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
        return ~UInt16(sum)
    }

    /// An IPv4 + UDP packet with a correct header checksum and no UDP checksum (0: allowed for
    /// IPv4, RFC 768).
    static func udpPacket(from source: SocketAddress, to destination: SocketAddress, payload: [UInt8]) -> [UInt8] {
        let total = 20 + 8 + payload.count
        var p: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xff), 0x12, 0x34, 0x40, 0, 64, 17, 0, 0]
        p += source.ip + destination.ip
        let sum = checksum(p)
        p[10] = UInt8(sum >> 8)
        p[11] = UInt8(sum & 0xff)
        let udpLength = 8 + payload.count
        p += [
            UInt8(source.port >> 8), UInt8(source.port & 0xff), UInt8(destination.port >> 8), UInt8(destination.port & 0xff),
            UInt8(udpLength >> 8), UInt8(udpLength & 0xff), 0, 0,
        ]
        return p + payload
    }
}
