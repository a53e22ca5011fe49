import CLinuxNet
import CMnl
// Configuring interfaces over rtnetlink (rtnetlink(7)) through libmnl: what `ip link set`,
// `ip addr` and `ip route` do, for the daemon bringing up its TUN (state, MTU, tunnel addresses,
// routes into it) and listing the WAN interfaces it may use. Each change is one request the
// kernel acknowledges; its errno comes back as a SystemError naming the request.
import Glibc
import QUIC

/// A NETLINK_ROUTE socket for requests: changes acknowledged one at a time, and dumps.
///
/// The socket belongs to the network namespace of the thread that created it, whatever thread
/// uses it later. Not for concurrent use: one thread at a time (the control plane's).
public final class RouteNetlink {
    private let socket: OpaquePointer
    private let portID: UInt32
    private var sequence: UInt32
    /// Room for one request; rtnetlink requests here are a few dozen bytes.
    private let request: UnsafeMutableRawPointer
    private static let requestCapacity = 1024
    /// Room for one recv: the kernel packs dump answers into up to 32 KiB per datagram.
    private let answer: UnsafeMutableRawBufferPointer
    private static let answerCapacity = 64 * 1024

    /// Opens and binds the socket.
    /// - Parameter timeoutSeconds: how long a request waits for the kernel's answer before it
    ///   fails with ETIMEDOUT (the kernel answers at once; this only bounds a bug).
    public init(timeoutSeconds: Int = 5) throws {
        guard let s = mnl_socket_open2(NETLINK_ROUTE, Int32(CLinuxNet_SOCK_CLOEXEC)) else { throw SystemError("netlink socket") }
        guard mnl_socket_bind(s, 0, pid_t(MNL_SOCKET_AUTOPID)) == 0 else {
            let e = errno
            mnl_socket_close(s)
            throw SystemError("netlink bind", errno: e)
        }
        socket = s
        portID = mnl_socket_get_portid(s)
        // Start from the clock, as iproute2 does, so answers to an earlier process's requests
        // on a recycled port are not mistaken for ours.
        sequence = UInt32(truncatingIfNeeded: time(nil))
        request = .allocate(byteCount: RouteNetlink.requestCapacity, alignment: 8)
        answer = .allocate(byteCount: RouteNetlink.answerCapacity, alignment: 8)
        var one: Int32 = 1
        // Errors carry the kernel's explanation ("Nexthop device is not up") and do not echo
        // the request. Best effort: older kernels answer without them.
        mnl_socket_setsockopt(s, NETLINK_EXT_ACK, &one, socklen_t(MemoryLayout<Int32>.size))
        mnl_socket_setsockopt(s, NETLINK_CAP_ACK, &one, socklen_t(MemoryLayout<Int32>.size))
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(mnl_socket_get_fd(s), SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit {
        mnl_socket_close(socket)
        request.deallocate()
        answer.deallocate()
    }

    // MARK: - Links

    /// Sets the interface administratively up or down (`ip link set NAME up|down`).
    public func setLinkUp(_ name: String, up: Bool) throws {
        try perform("RTM_SETLINK \(name) \(up ? "up" : "down")", type: RTM_SETLINK) { message in
            let info = putHeader(ifinfomsg.self, in: message)
            info.pointee.ifi_family = UInt8(AF_UNSPEC)
            info.pointee.ifi_change = UInt32(IFF_UP)
            info.pointee.ifi_flags = up ? UInt32(IFF_UP) : 0
            mnl_attr_put_strz(message, UInt16(IFLA_IFNAME), name)
        }
    }

    /// Sets the interface's MTU (`ip link set NAME mtu N`); EINVAL outside what the driver takes.
    public func setMTU(_ name: String, _ mtu: Int) throws {
        guard let value = UInt32(exactly: mtu) else { throw SystemError("RTM_SETLINK \(name) mtu \(mtu)", errno: EINVAL) }
        try perform("RTM_SETLINK \(name) mtu \(mtu)", type: RTM_SETLINK) { message in
            let info = putHeader(ifinfomsg.self, in: message)
            info.pointee.ifi_family = UInt8(AF_UNSPEC)
            mnl_attr_put_strz(message, UInt16(IFLA_IFNAME), name)
            mnl_attr_put_u32(message, UInt16(IFLA_MTU), value)
        }
    }

    /// Every interface of the namespace (`ip link show`), in the kernel's order (by index).
    public func links() throws -> [NetworkInterface] {
        var links: [NetworkInterface] = []
        try dump(
            "RTM_GETLINK dump", type: RTM_GETLINK, restart: { links.removeAll() },
            build: { message in
                putHeader(ifinfomsg.self, in: message).pointee.ifi_family = UInt8(AF_UNSPEC)
            },
            each: { reply in
                if case .link(let link, removed: false) = reply { links.append(link) }
            }
        )
        return links
    }

    /// The index of the interface called `name`, or nil if there is none (ENODEV).
    public func interfaceIndex(_ name: String) throws -> Int32? {
        var index: Int32?
        do {
            try perform(
                "RTM_GETLINK \(name)", type: RTM_GETLINK, flags: 0,
                build: { message in
                    putHeader(ifinfomsg.self, in: message).pointee.ifi_family = UInt8(AF_UNSPEC)
                    mnl_attr_put_strz(message, UInt16(IFLA_IFNAME), name)
                },
                each: { reply in
                    if case .link(let link, removed: false) = reply { index = link.index }
                }
            )
        } catch let error as SystemError where error.errno == ENODEV {
            return nil
        }
        return index
    }

    // MARK: - Addresses

    /// Adds `prefix` (address and prefix length, "10.8.0.1/24") to the interface (`ip addr add`);
    /// the kernel adds the prefix's route with it. An IPv6 address skips duplicate address
    /// detection (IFA_F_NODAD), so a socket can bind to it at once.
    /// - Throws: `SystemError` with EEXIST if the interface has the address already, ENODEV if
    ///   there is no such interface.
    public func addAddress(_ prefix: IPPrefix, to name: String) throws {
        try changeAddress(prefix, name, type: RTM_NEWADDR, flags: NLM_F_CREATE | NLM_F_EXCL, operation: "RTM_NEWADDR \(prefix) dev \(name)")
    }

    /// Removes `prefix` from the interface (`ip addr del`); EADDRNOTAVAIL if it has no such address.
    public func deleteAddress(_ prefix: IPPrefix, from name: String) throws {
        try changeAddress(prefix, name, type: RTM_DELADDR, flags: 0, operation: "RTM_DELADDR \(prefix) dev \(name)")
    }

    /// Every IPv4 and IPv6 address of the namespace (`ip addr show`), with its interface's name.
    /// IPv6 addresses still in (or failed) duplicate address detection are left out: nothing can
    /// bind to them yet. They appear once DAD is done (NetlinkMonitor reports it then).
    public func addresses() throws -> [InterfaceAddress] {
        var names: [Int32: String] = [:]
        for link in try links() { names[link.index] = link.name }
        var addresses: [InterfaceAddress] = []
        try dump(
            "RTM_GETADDR dump", type: RTM_GETADDR, restart: { addresses.removeAll() },
            build: { message in
                putHeader(ifaddrmsg.self, in: message).pointee.ifa_family = UInt8(AF_UNSPEC)
            },
            each: { reply in
                if case .address(let record, removed: false) = reply, !record.isTentative {
                    addresses.append(
                        InterfaceAddress(
                            interfaceIndex: record.interfaceIndex,
                            interfaceName: names[record.interfaceIndex] ?? record.label ?? "",
                            prefix: record.prefix))
                }
            }
        )
        return addresses
    }

    private func changeAddress(_ prefix: IPPrefix, _ name: String, type: Int, flags: Int32, operation: String) throws {
        guard let index = try interfaceIndex(name) else { throw SystemError(operation, errno: ENODEV) }
        try perform(operation, type: type, flags: flags) { message in
            let info = putHeader(ifaddrmsg.self, in: message)
            info.pointee.ifa_family = UInt8(prefix.isIPv6 ? AF_INET6 : AF_INET)
            info.pointee.ifa_prefixlen = UInt8(prefix.length)
            info.pointee.ifa_flags = prefix.isIPv6 ? UInt8(IFA_F_NODAD) : 0
            info.pointee.ifa_scope = UInt8(RT_SCOPE_UNIVERSE.rawValue)
            info.pointee.ifa_index = UInt32(index)
            // Both, as iproute2 sends them for an address without a peer: IFA_LOCAL is the
            // interface's address, IFA_ADDRESS the (same) other end.
            putAddress(prefix.address, type: UInt16(IFA_LOCAL), in: message)
            putAddress(prefix.address, type: UInt16(IFA_ADDRESS), in: message)
        }
    }

    // MARK: - Routes

    /// Adds a route to `destination` out of `device` (`ip route add DEST dev DEVICE [via GATEWAY]
    /// [table T] [metric M]`): on-link (scope link) without a gateway.
    /// - Parameters:
    ///   - destination: its host bits are cleared (10.8.0.1/24 routes 10.8.0.0/24); /0 is the
    ///     default route.
    ///   - gateway: the next hop, of the destination's family (the port is ignored).
    ///   - table: the routing table; nil is main (254).
    ///   - metric: the route's priority (lower wins); nil leaves the kernel's default (0 for
    ///     IPv4, 1024 for IPv6).
    /// - Throws: `SystemError` with EEXIST if the same route exists, ENETDOWN if the device is
    ///   down (IPv4), ENODEV without such device, EINVAL for a gateway of the other family.
    public func addRoute(
        _ destination: IPPrefix, device: String, gateway: SocketAddress? = nil,
        table: UInt32? = nil, metric: UInt32? = nil
    ) throws {
        try changeRoute(destination, device: device, gateway: gateway, table: table, metric: metric, removing: false)
    }

    /// Removes the route that `addRoute` with the same arguments added (`ip route del`); a nil
    /// metric matches the route whatever its metric. ESRCH if there is no such route.
    public func deleteRoute(
        _ destination: IPPrefix, device: String, gateway: SocketAddress? = nil,
        table: UInt32? = nil, metric: UInt32? = nil
    ) throws {
        try changeRoute(destination, device: device, gateway: gateway, table: table, metric: metric, removing: true)
    }

    private func changeRoute(
        _ destination: IPPrefix, device: String, gateway: SocketAddress?,
        table: UInt32?, metric: UInt32?, removing: Bool
    ) throws {
        var operation = "\(removing ? "RTM_DELROUTE" : "RTM_NEWROUTE") \(destination.network)"
        if let gateway { operation += " via \(gateway.ipString)" }
        operation += " dev \(device)"
        if let table { operation += " table \(table)" }
        if let metric { operation += " metric \(metric)" }
        if let gateway, gateway.isIPv6 != destination.isIPv6 { throw SystemError(operation, errno: EINVAL) }
        guard let index = try interfaceIndex(device) else { throw SystemError(operation, errno: ENODEV) }
        let network = destination.network
        let tableID = table ?? UInt32(RT_TABLE_MAIN.rawValue)
        try perform(
            operation, type: removing ? RTM_DELROUTE : RTM_NEWROUTE,
            flags: removing ? 0 : NLM_F_CREATE | NLM_F_EXCL
        ) { message in
            let route = putHeader(rtmsg.self, in: message)
            route.pointee.rtm_family = UInt8(destination.isIPv6 ? AF_INET6 : AF_INET)
            route.pointee.rtm_dst_len = UInt8(network.length)
            // rtm_table has 8 bits; RTA_TABLE carries any table (RT_TABLE_COMPAT in the byte).
            route.pointee.rtm_table = tableID < 256 ? UInt8(tableID) : UInt8(RT_TABLE_COMPAT.rawValue)
            route.pointee.rtm_type = UInt8(RTN_UNICAST)
            if removing {
                // Match the route whatever its scope and origin.
                route.pointee.rtm_scope = UInt8(RT_SCOPE_NOWHERE.rawValue)
                route.pointee.rtm_protocol = 0
            } else {
                route.pointee.rtm_scope = UInt8(gateway == nil ? RT_SCOPE_LINK.rawValue : RT_SCOPE_UNIVERSE.rawValue)
                route.pointee.rtm_protocol = UInt8(RTPROT_BOOT)
            }
            if network.length > 0 { putAddress(network.address, type: UInt16(RTA_DST.rawValue), in: message) }
            mnl_attr_put_u32(message, UInt16(RTA_OIF.rawValue), UInt32(index))
            if let gateway { putAddress(gateway, type: UInt16(RTA_GATEWAY.rawValue), in: message) }
            if let metric { mnl_attr_put_u32(message, UInt16(RTA_PRIORITY.rawValue), metric) }
            mnl_attr_put_u32(message, UInt16(RTA_TABLE.rawValue), tableID)
        }
    }

    // MARK: - Requests

    /// Builds the request with a fresh sequence number, sends it and reads the answers to it
    /// until the kernel acknowledges it (NLMSG_ERROR 0) or refuses it (an errno, thrown as
    /// `SystemError(operation, errno:)` with the kernel's explanation appended when it gave one).
    /// Messages before the acknowledgement (a GETLINK's answer) go to `each`.
    private func perform(
        _ operation: String, type: Int, flags: Int32 = 0,
        build: (UnsafeMutablePointer<nlmsghdr>) -> Void,
        each: (RouteMessage) -> Void = { _ in }
    ) throws {
        // A GET without NLM_F_ACK still ends with its answer; ask for the ack anyway, so every
        // request ends the same way.
        _ = try exchange(operation, type: type, flags: flags | NLM_F_ACK, build: build, each: each)
    }

    /// A dump request (NLM_F_DUMP): answers go to `each` until NLMSG_DONE. A dump the kernel
    /// marks interrupted (the table changed under it) is run again, up to three times, after
    /// `restart` has dropped what the last one delivered.
    private func dump(
        _ operation: String, type: Int, restart: () -> Void,
        build: (UnsafeMutablePointer<nlmsghdr>) -> Void, each: (RouteMessage) -> Void
    ) throws {
        for attempt in 1...3 {
            let interrupted = try exchange(operation, type: type, flags: Int32(CMnl_dumpFlags()), build: build, each: each)
            if !interrupted || attempt == 3 { return }
            restart()
        }
    }

    /// Sends one request and reads its answers; returns whether any carried NLM_F_DUMP_INTR.
    private func exchange(
        _ operation: String, type: Int, flags: Int32,
        build: (UnsafeMutablePointer<nlmsghdr>) -> Void,
        each: (RouteMessage) -> Void
    ) throws -> Bool {
        sequence &+= 1
        let seq = sequence
        let message = mnl_nlmsg_put_header(request)!
        message.pointee.nlmsg_type = UInt16(type)
        message.pointee.nlmsg_flags = UInt16(NLM_F_REQUEST | flags)
        message.pointee.nlmsg_seq = seq
        build(message)
        precondition(Int(message.pointee.nlmsg_len) <= RouteNetlink.requestCapacity, "rtnetlink request overflows its buffer")
        guard mnl_socket_sendto(socket, message, Int(message.pointee.nlmsg_len)) >= 0 else { throw SystemError("\(operation) (send)") }
        var interrupted = false
        while true {
            let n = mnl_socket_recvfrom(socket, answer.baseAddress, answer.count)
            if n < 0 {
                let e = errno
                if e == EINTR { continue }
                if e == EAGAIN || e == EWOULDBLOCK { throw SystemError("\(operation) (no answer)", errno: ETIMEDOUT) }
                throw SystemError("\(operation) (receive)", errno: e)
            }
            var finished = false
            var failure: SystemError?
            RouteMessage.forEach(in: UnsafeRawBufferPointer(rebasing: answer[..<n])) { header, reply in
                // Answers to an earlier request that timed out, or to another socket: not ours.
                guard !finished, header.sequence == seq, header.portID == portID else { return }
                if header.dumpWasInterrupted { interrupted = true }
                switch reply {
                case .acknowledgement, .done:
                    finished = true
                case .failure(let e, let text):
                    failure = SystemError(text.map { "\(operation): \($0)" } ?? operation, errno: e)
                    finished = true
                default:
                    each(reply)
                }
            }
            if let failure { throw failure }
            if finished { return interrupted }
        }
    }

    /// Appends the family header `T` (zeroed) after the netlink header and returns it.
    private func putHeader<T>(_: T.Type, in message: UnsafeMutablePointer<nlmsghdr>) -> UnsafeMutablePointer<T> {
        mnl_nlmsg_put_extra_header(message, MemoryLayout<T>.size).bindMemory(to: T.self, capacity: 1)
    }

    /// Appends an attribute holding the 4 or 16 address bytes of `address`.
    private func putAddress(_ address: SocketAddress, type: UInt16, in message: UnsafeMutablePointer<nlmsghdr>) {
        var bytes = (UInt64(0), UInt64(0))
        let count = address.isIPv6 ? 16 : 4
        withUnsafeMutableBytes(of: &bytes) { raw in
            for i in 0..<count { raw[i] = address.ipByte(i) }
            mnl_attr_put(message, type, count, raw.baseAddress)
        }
    }
}
