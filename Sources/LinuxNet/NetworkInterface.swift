// What rtnetlink tells about the machine's interfaces and their addresses, as plain values: the
// daemon's path manager turns them into paths (a WAN interface with carrier and an address is a
// path). RouteNetlink.swift dumps them, NetlinkMonitor.swift reports their changes.
import QUIC

/// One network interface (link), as RTM_NEWLINK describes it.
public struct NetworkInterface: Hashable, Sendable, CustomStringConvertible {
    /// The kernel's interface index (ifindex), stable while the interface exists.
    public var index: Int32
    public var name: String
    /// Administratively up (IFF_UP: `ip link set up`).
    public var isUp: Bool
    /// The driver reports carrier (IFF_LOWER_UP) or the kernel considers the link operational
    /// (IFF_RUNNING): packets can leave. A cable pulled or a modem gone clears it while `isUp`
    /// stays.
    public var hasCarrier: Bool
    /// IFLA_MTU; 0 if the message did not carry it.
    public var mtu: Int
    /// The raw IFF_* flags (ifi_flags), for what the fields above do not say.
    public var flags: UInt32

    public init(index: Int32, name: String, isUp: Bool, hasCarrier: Bool, mtu: Int, flags: UInt32 = 0) {
        self.index = index
        self.name = name
        self.isUp = isUp
        self.hasCarrier = hasCarrier
        self.mtu = mtu
        self.flags = flags
    }

    public var description: String {
        "\(index): \(name) \(isUp ? "up" : "down")\(hasCarrier ? " carrier" : "") mtu \(mtu)"
    }
}

/// IPv4 or IPv6 (AF_INET, AF_INET6).
public enum AddressFamily: Hashable, Sendable {
    case ipv4
    case ipv6
}

/// An address configured on an interface, as RTM_NEWADDR describes it: "10.8.0.1/24 on tquic0".
public struct InterfaceAddress: Hashable, Sendable, CustomStringConvertible {
    public var interfaceIndex: Int32
    /// The interface's name when the address was reported ("" if it was not known).
    public var interfaceName: String
    /// The local address with its prefix length (IFA_LOCAL, else IFA_ADDRESS; host bits kept).
    public var prefix: IPPrefix
    public var family: AddressFamily { prefix.isIPv6 ? .ipv6 : .ipv4 }

    public init(interfaceIndex: Int32, interfaceName: String, prefix: IPPrefix) {
        self.interfaceIndex = interfaceIndex
        self.interfaceName = interfaceName
        self.prefix = prefix
    }

    public var description: String { "\(prefix) on \(interfaceName) (\(interfaceIndex))" }
}
