import Glibc
import QUIC
// The path manager's view of the machine changing: an interface appears, comes up, gains carrier
// and addresses, loses them, goes down and disappears, and each step arrives as an event; a
// monitor that fell behind is told to re-read everything.
import XCTest

@testable import LinuxNet

final class NetlinkMonitorTests: XCTestCase {
    /// Collects events until `done` says the list is complete, for up to five seconds.
    func collect(_ monitor: NetlinkMonitor, into events: inout [NetlinkEvent], until done: ([NetlinkEvent]) -> Bool) throws {
        let deadline = Date().addingTimeInterval(5)
        while !done(events) && Date() < deadline {
            _ = waitReadable(monitor.fd, milliseconds: 100)
            try monitor.readEvents { events.append($0) }
        }
    }

    func testLinksAndAddressesComingAndGoingArriveAsEvents() throws {
        let namespace = try TestNetworkNamespace(for: self)
        try namespace.run {
            let monitor = try NetlinkMonitor()
            let netlink = try RouteNetlink()
            var events: [NetlinkEvent] = []
            try monitor.readEvents { events.append($0) }
            XCTAssertEqual(events, [], "nothing changed yet")

            try namespace.ip("link", "add", "tqv0", "type", "veth", "peer", "name", "tqv1")
            let index = try XCTUnwrap(try netlink.interfaceIndex("tqv0"))
            try netlink.setLinkUp("tqv0", up: true)
            try netlink.setLinkUp("tqv1", up: true)
            let v4 = IPPrefix("10.77.0.1/24")!
            let v6 = IPPrefix("fd77::1/64")!
            try netlink.addAddress(v4, to: "tqv0")
            try netlink.addAddress(v6, to: "tqv0")
            let address4 = InterfaceAddress(interfaceIndex: index, interfaceName: "tqv0", prefix: v4)
            let address6 = InterfaceAddress(interfaceIndex: index, interfaceName: "tqv0", prefix: v6)
            try self.collect(monitor, into: &events) { $0.contains(.addressAdded(address6)) }
            let tqv0 = events.compactMap { event -> NetworkInterface? in
                if case .linkChanged(let link) = event, link.index == index { return link } else { return nil }
            }
            XCTAssertEqual(tqv0.first?.name, "tqv0", "the new interface is reported")
            XCTAssertEqual(tqv0.first?.isUp, false, "it appears down")
            XCTAssertTrue(tqv0.contains { $0.isUp && $0.hasCarrier }, "it is reported up with carrier once both ends are up: \(tqv0)")
            XCTAssertTrue(events.contains(.addressAdded(address4)), "\(events)")
            XCTAssertTrue(events.contains(.addressAdded(address6)), "\(events)")

            events.removeAll()
            try netlink.deleteAddress(v4, from: "tqv0")
            try netlink.setLinkUp("tqv1", up: false)
            try self.collect(monitor, into: &events) { events in
                events.contains {
                    if case .linkChanged(let link) = $0 {
                        return link.index == index && link.isUp && !link.hasCarrier
                    } else {
                        return false
                    }
                }
            }
            XCTAssertTrue(events.contains(.addressRemoved(address4)), "\(events)")
            XCTAssertTrue(
                events.contains {
                    if case .linkChanged(let link) = $0 {
                        return link.index == index && link.isUp && !link.hasCarrier
                    } else {
                        return false
                    }
                },
                "the peer going down takes tqv0's carrier away while it stays up: \(events)")

            events.removeAll()
            try namespace.ip("link", "del", "tqv0")
            try self.collect(monitor, into: &events) { $0.contains(.linkRemoved(index: index, name: "tqv0")) }
            XCTAssertTrue(events.contains(.linkRemoved(index: index, name: "tqv0")), "\(events)")
            XCTAssertTrue(events.contains(.addressRemoved(address6)), "the removed interface's address goes with it: \(events)")
            XCTAssertFalse(events.contains(.resyncNeeded))
        }
    }

    func testAMonitorThatFellBehindIsToldToResync() throws {
        let namespace = try TestNetworkNamespace(for: self)
        try namespace.run {
            // The smallest queue the kernel grants (a few KiB): a few dozen events overrun it.
            let monitor = try NetlinkMonitor(receiveBufferSize: 1)
            let tun = try TUNDevice(name: "tquic%d")
            let netlink = try RouteNetlink()
            try netlink.setLinkUp(tun.name, up: true)
            for i in 1...200 {
                try netlink.addAddress(IPPrefix("10.66.\(i / 256).\(i % 256)/32")!, to: tun.name)
            }
            var events: [NetlinkEvent] = []
            try monitor.readEvents { events.append($0) }
            XCTAssertTrue(events.contains(.resyncNeeded), "200 unread address events overran the queue")
            XCTAssertLessThan(events.filter { if case .addressAdded = $0 { return true } else { return false } }.count, 200)
            // After the overrun the monitor goes on reporting.
            events.removeAll()
            let late = IPPrefix("10.67.0.1/32")!
            try netlink.addAddress(late, to: tun.name)
            let index = try XCTUnwrap(try netlink.interfaceIndex(tun.name))
            let expected = NetlinkEvent.addressAdded(InterfaceAddress(interfaceIndex: index, interfaceName: tun.name, prefix: late))
            try self.collect(monitor, into: &events) { $0.contains(expected) }
            XCTAssertTrue(events.contains(expected), "\(events)")
        }
    }
}
