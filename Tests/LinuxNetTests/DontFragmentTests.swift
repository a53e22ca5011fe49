import Glibc
import QUIC
// Tunnel sockets never let the kernel fragment: DF on, the cached path MTU ignored.
import XCTest

@testable import LinuxNet

final class DontFragmentTests: XCTestCase {
    func mode(_ s: UDPSocket, level: Int32, option: Int32) -> Int32 {
        var v: Int32 = -1
        var len = socklen_t(MemoryLayout<Int32>.size)
        XCTAssertEqual(getsockopt(s.fd, level, option, &v, &len), 0)
        return v
    }

    func testIPv4AndIPv6SocketsProbe() throws {
        let v4 = try UDPSocket(bindTo: SocketAddress("127.0.0.1:0")!)
        XCTAssertNotEqual(mode(v4, level: Int32(IPPROTO_IP), option: IP_MTU_DISCOVER), Int32(IP_PMTUDISC_PROBE), "not the default")
        XCTAssertTrue(v4.setDontFragment())
        XCTAssertEqual(mode(v4, level: Int32(IPPROTO_IP), option: IP_MTU_DISCOVER), Int32(IP_PMTUDISC_PROBE))
        let v6 = try UDPSocket(bindTo: SocketAddress("[::1]:0")!)
        XCTAssertTrue(v6.setDontFragment())
        XCTAssertEqual(mode(v6, level: Int32(IPPROTO_IPV6), option: IPV6_MTU_DISCOVER), Int32(IPV6_PMTUDISC_PROBE))
    }
}
