// /proc/sys through Sysctl: the VPS's forwarding switches, set inside a test namespace (net/ keys
// belong to the calling thread's network namespace).
import XCTest

@testable import LinuxNet

final class SysctlTests: XCTestCase {
    func testKeysMapToProcSysAndCannotLeaveIt() throws {
        XCTAssertEqual(try Sysctl.path("net/ipv4/ip_forward"), "/proc/sys/net/ipv4/ip_forward")
        XCTAssertEqual(try Sysctl.path("net.ipv6.conf.all.forwarding"), "/proc/sys/net/ipv6/conf/all/forwarding")
        XCTAssertEqual(try Sysctl.path("net/ipv6/conf/eth0.100/forwarding"), "/proc/sys/net/ipv6/conf/eth0.100/forwarding")
        for bad in ["", "/etc/passwd", "net/../../etc/passwd", "net//ipv4", "net/ipv4/"] {
            XCTAssertThrowsError(try Sysctl.path(bad), "accepted sysctl key \(bad.debugDescription)")
        }
    }

    func testGetReadsTheValueWithoutItsNewline() throws {
        XCTAssertEqual(try Sysctl.get("kernel/ostype"), "Linux")
        XCTAssertThrowsError(try Sysctl.get("net/ipv4/no_such_key"))
    }

    func testForwardingIsSwitchedOnInTheCallingThreadsNamespace() throws {
        let namespace = try FirewallTestNamespace()
        defer { namespace.remove() }
        let values = try namespace.run { () -> [String] in
            // A new namespace starts with forwarding off.
            let before = try Sysctl.get("net/ipv4/ip_forward")
            try Sysctl.set("net/ipv4/ip_forward", "1")
            try Sysctl.set("net/ipv6/conf/all/forwarding", "1")
            return [before, try Sysctl.get("net/ipv4/ip_forward"), try Sysctl.get("net.ipv6.conf.all.forwarding")]
        }
        XCTAssertEqual(values, ["0", "1", "1"])
        let seen = try namespace.exec(["cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"])
        XCTAssertEqual(seen.output, "1\n1\n", "ip netns exec sees another value")
        XCTAssertThrowsError(try namespace.run { try Sysctl.set("net/ipv4/ip_forward", "not a number") })
    }
}
