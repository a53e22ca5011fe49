import Glibc
import QUIC
// Configuring a TUN over rtnetlink the way the daemon does at start (up, MTU, IPv4 and IPv6
// addresses, routes into it), checked twice: by our own dumps and by iproute2's view of the
// namespace. Also: the kernel's refusals arrive as errors naming the request and its errno, and
// the namespace the work happens in is the worker thread's alone.
import XCTest

@testable import LinuxNet

final class RouteNetlinkTests: XCTestCase {
    func testTheTUNIsConfiguredAndTheDumpsAndIproute2AgreeOnIt() throws {
        let namespace = try TestNetworkNamespace(for: self)
        let v4 = IPPrefix("10.99.0.1/24")!
        let v6 = IPPrefix("fd99::1/64")!
        let name: String = try namespace.run {
            let tun = try TUNDevice(name: "tquic%d")
            let netlink = try RouteNetlink()
            try netlink.setLinkUp(tun.name, up: true)
            try netlink.setMTU(tun.name, 1400)
            try netlink.addAddress(v4, to: tun.name)
            try netlink.addAddress(v6, to: tun.name)
            try netlink.addRoute(IPPrefix("10.98.0.0/24")!, device: tun.name)
            try netlink.addRoute(IPPrefix("fd98::/64")!, device: tun.name, metric: 50)
            try netlink.addRoute(
                IPPrefix("10.97.0.0/16")!, device: tun.name, gateway: SocketAddress(ip: [10, 99, 0, 2], port: 0), table: 100)

            let index = try XCTUnwrap(try netlink.interfaceIndex(tun.name))
            XCTAssertNil(try netlink.interfaceIndex("nosuch0"))
            let links = try netlink.links()
            XCTAssertEqual(links.map(\.name).sorted(), ["lo", tun.name], "a fresh namespace holds lo and our TUN only")
            let link = try XCTUnwrap(links.first { $0.name == tun.name })
            XCTAssertEqual(link.index, index)
            XCTAssertTrue(link.isUp)
            XCTAssertTrue(link.hasCarrier, "an open, up TUN has carrier")
            XCTAssertEqual(link.mtu, 1400)
            XCTAssertEqual(links.first { $0.name == "lo" }?.isUp, false, "lo starts down in a new namespace")

            let addresses = try netlink.addresses().filter { $0.interfaceIndex == index }
            XCTAssertTrue(addresses.contains(InterfaceAddress(interfaceIndex: index, interfaceName: tun.name, prefix: v4)), "\(addresses)")
            XCTAssertTrue(addresses.contains(InterfaceAddress(interfaceIndex: index, interfaceName: tun.name, prefix: v6)), "\(addresses)")
            XCTAssertEqual(addresses.first { $0.prefix == v6 }?.family, .ipv6)

            // What iproute2 sees, read while the TUN (and so the interface) still exists.
            let shown = try namespace.ipJSON("addr", "show", "dev", tun.name)
            XCTAssertEqual(shown.first?["mtu"] as? Int, 1400)
            let infos = shown.first?["addr_info"] as? [[String: Any]] ?? []
            let locals = Set(infos.compactMap { info in (info["local"] as? String).map { "\($0)/\(info["prefixlen"] as? Int ?? -1)" } })
            XCTAssertTrue(locals.isSuperset(of: ["10.99.0.1/24", "fd99::1/64"]), "ip addr shows \(locals)")
            let routes4 = try namespace.ipJSON("-4", "route", "show", "dev", tun.name)
            XCTAssertTrue(routes4.contains { $0["dst"] as? String == "10.98.0.0/24" && $0["scope"] as? String == "link" }, "\(routes4)")
            let routes6 = try namespace.ipJSON("-6", "route", "show", "dev", tun.name)
            XCTAssertTrue(routes6.contains { $0["dst"] as? String == "fd98::/64" && $0["metric"] as? Int == 50 }, "\(routes6)")
            let table100 = try namespace.ipJSON("route", "show", "table", "100")
            XCTAssertTrue(
                table100.contains { $0["dst"] as? String == "10.97.0.0/16" && $0["gateway"] as? String == "10.99.0.2" }, "\(table100)")

            // And back: routes and addresses removed.
            try netlink.deleteRoute(IPPrefix("10.98.0.0/24")!, device: tun.name)
            try netlink.deleteRoute(IPPrefix("fd98::/64")!, device: tun.name, metric: 50)
            try netlink.deleteRoute(
                IPPrefix("10.97.0.0/16")!, device: tun.name, gateway: SocketAddress(ip: [10, 99, 0, 2], port: 0), table: 100)
            try netlink.deleteAddress(v4, from: tun.name)
            try netlink.deleteAddress(v6, from: tun.name)
            let left = try netlink.addresses().filter { $0.interfaceIndex == index }.map(\.prefix)
            XCTAssertFalse(left.contains(v4) || left.contains(v6), "still there: \(left)")
            XCTAssertFalse(try namespace.ipJSON("-4", "route", "show", "dev", tun.name).contains { $0["dst"] as? String == "10.98.0.0/24" })
            XCTAssertTrue(try namespace.ipJSON("route", "show", "table", "100").isEmpty)
            return tun.name
        }
        XCTAssertEqual(name, "tquic0")
    }

    func testAnIPv6AddressSkipsDuplicateAddressDetectionAndIsUsableAtOnce() throws {
        let namespace = try TestNetworkNamespace(for: self)
        try namespace.run {
            // A veth (unlike a TUN) runs DAD, and without carrier (its peer is down) it would
            // leave an address tentative indefinitely.
            try namespace.ip("link", "add", "tqv0", "type", "veth", "peer", "name", "tqv1")
            let netlink = try RouteNetlink()
            try netlink.setLinkUp("tqv0", up: true)
            let ours = IPPrefix("fd77::1/64")!
            try netlink.addAddress(ours, to: "tqv0")
            try namespace.ip("addr", "add", "fd77::2/64", "dev", "tqv0")  // iproute2's default: with DAD
            let listed = try netlink.addresses().map(\.prefix)
            XCTAssertTrue(listed.contains(ours), "IFA_F_NODAD: not tentative, so listed: \(listed)")
            XCTAssertFalse(listed.contains(IPPrefix("fd77::2/64")!), "a tentative address is left out: \(listed)")
            XCTAssertNoThrow(try UDPSocket(bindTo: SocketAddress("[fd77::1]:0")!), "a socket binds to it at once")
            XCTAssertThrowsError(try UDPSocket(bindTo: SocketAddress("[fd77::2]:0")!), "the tentative one cannot be bound yet")
        }
    }

    func testTheKernelsRefusalsComeBackAsErrorsNamingTheRequest() throws {
        let namespace = try TestNetworkNamespace(for: self)
        try namespace.run {
            let tun = try TUNDevice(name: "tquic%d")
            let netlink = try RouteNetlink()
            let v4 = IPPrefix("10.99.0.1/24")!
            func errno(_ body: () throws -> Void) -> SystemError? {
                do {
                    try body()
                    return nil
                } catch { return error as? SystemError }
            }
            // IPv4: a route out of a down interface is refused (the kernel explains it).
            let down = errno { try netlink.addRoute(IPPrefix("10.98.0.0/24")!, device: tun.name) }
            XCTAssertEqual(down?.errno, ENETDOWN, "\(String(describing: down))")
            XCTAssertTrue(down?.operation.hasPrefix("RTM_NEWROUTE 10.98.0.0/24 dev \(tun.name)") ?? false, "\(String(describing: down))")
            try netlink.setLinkUp(tun.name, up: true)
            try netlink.addAddress(v4, to: tun.name)
            XCTAssertEqual(errno { try netlink.addAddress(v4, to: tun.name) }?.errno, EEXIST)
            XCTAssertEqual(errno { try netlink.addAddress(v4, to: "nosuch0") }?.errno, ENODEV)
            XCTAssertEqual(errno { try netlink.deleteAddress(IPPrefix("10.99.0.7/24")!, from: tun.name) }?.errno, EADDRNOTAVAIL)
            XCTAssertEqual(errno { try netlink.deleteRoute(IPPrefix("10.55.0.0/16")!, device: tun.name) }?.errno, ESRCH)
            let tooSmall = errno { try netlink.setMTU(tun.name, 10) }
            XCTAssertEqual(tooSmall?.errno, EINVAL, "below the minimum MTU")
            // The kernel's extended ack (Linux 4.12+) says why: "...: mtu less than device minimum".
            XCTAssertTrue(tooSmall?.operation.hasPrefix("RTM_SETLINK \(tun.name) mtu 10: ") ?? false, "\(String(describing: tooSmall))")
            XCTAssertEqual(errno { try netlink.setLinkUp("nosuch0", up: true) }?.errno, ENODEV)
            let mixed = errno {
                try netlink.addRoute(IPPrefix("fd98::/64")!, device: tun.name, gateway: SocketAddress(ip: [10, 99, 0, 2], port: 0))
            }
            XCTAssertEqual(mixed?.errno, EINVAL, "an IPv4 gateway for an IPv6 route")
            // After all these refusals the socket still works.
            XCTAssertEqual(try netlink.links().count, 2)
        }
    }

    func testTheNamespaceIsTheWorkerThreadsAlone() throws {
        let namespace = try TestNetworkNamespace(for: self)
        let hostNamespace = try namespaceInode()
        // A name the host cannot have: this test run's pid.
        let name = "tqt\(getpid() % 1_000_000)"
        let (tun, workerNamespace, workerIndex) = try namespace.run { () -> (TUNDevice, String, UInt32) in
            let tun = try TUNDevice(name: name)
            return (tun, try self.namespaceInode(), if_nametoindex(name))
        }
        XCTAssertNotEqual(workerNamespace, hostNamespace, "the worker thread is in another network namespace")
        XCTAssertNotEqual(workerIndex, 0, "the worker thread sees its TUN")
        XCTAssertEqual(try namespaceInode(), hostNamespace, "the test's own thread stayed in the host namespace")
        XCTAssertEqual(if_nametoindex(name), 0, "the test's own thread does not see the TUN")
        XCTAssertFalse(
            try RouteNetlink().links().contains { $0.name == name }, "a RouteNetlink made on this thread lists the host's interfaces")
        // The TUN outlived the worker thread, and stayed in the test namespace.
        XCTAssertTrue(try namespace.ipJSON("link", "show").contains { $0["ifname"] as? String == name })
        tun.close()
    }

    /// The network namespace of the calling thread, as /proc names it ("net:[4026531840]").
    func namespaceInode() throws -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        let n = readlink("/proc/thread-self/ns/net", &buffer, buffer.count - 1)
        guard n > 0 else { throw SystemError("readlink /proc/thread-self/ns/net") }
        return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
