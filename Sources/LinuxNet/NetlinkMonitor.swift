import CLinuxNet
import CMnl
// Watching interfaces and addresses come and go (rtnetlink multicast groups RTMGRP_LINK,
// RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR): the daemon's path manager learns here that a WAN lost
// its carrier or got a new address, and opens or closes paths. A non-blocking socket for the
// daemon's epoll loop; messages are read with RouteMessage.swift.
import Glibc
import QUIC

/// A change the kernel reported.
public enum NetlinkEvent: Hashable, Sendable {
    /// An interface appeared or changed (state, carrier, MTU, name): its description now.
    case linkChanged(NetworkInterface)
    case linkRemoved(index: Int32, name: String)
    /// An address became usable (IPv6: once duplicate address detection is done).
    case addressAdded(InterfaceAddress)
    /// An address went, also one that was still tentative and never reported added.
    case addressRemoved(InterfaceAddress)
    /// Events were lost (the socket's queue overran, ENOBUFS): dump `links()` and
    /// `addresses()` again and take those as the truth.
    case resyncNeeded
}

/// A netlink socket subscribed to link and address changes.
///
/// The socket watches the network namespace of the thread that created it. Owned by one thread
/// (the loop that polls `fd`).
public final class NetlinkMonitor {
    /// The descriptor, for epoll: readable when events are queued.
    public let fd: Int32
    private let socket: OpaquePointer
    private let buffer: UnsafeMutableRawBufferPointer
    private static let bufferCapacity = 64 * 1024
    /// For re-reading interface names after an overrun; in the monitor's namespace.
    private let requests: RouteNetlink
    /// Interface names by index, so that address events (IPv6 ones carry no label) name their
    /// interface. Names of removed interfaces stay: late address removals still find them.
    private var names: [Int32: String]

    /// Opens the socket and subscribes it.
    /// - Parameter receiveBufferSize: the socket's receive queue to ask for (1 MiB: some
    ///   thousand events); a burst larger than the kernel grants is lost and reported as
    ///   `.resyncNeeded`.
    public init(receiveBufferSize: Int = 1 << 20) throws {
        guard let s = mnl_socket_open2(NETLINK_ROUTE, Int32(CLinuxNet_SOCK_NONBLOCK) | Int32(CLinuxNet_SOCK_CLOEXEC)) else {
            throw SystemError("netlink socket")
        }
        let groups = UInt32(RTMGRP_LINK) | UInt32(RTMGRP_IPV4_IFADDR) | UInt32(RTMGRP_IPV6_IFADDR)
        guard mnl_socket_bind(s, groups, pid_t(MNL_SOCKET_AUTOPID)) == 0 else {
            let e = errno
            mnl_socket_close(s)
            throw SystemError("netlink bind (link and address groups)", errno: e)
        }
        // SO_RCVBUFFORCE (CAP_NET_ADMIN, which the daemon has) passes net.core.rmem_max.
        var size = Int32(clamping: receiveBufferSize)
        let length = socklen_t(MemoryLayout<Int32>.size)
        if setsockopt(mnl_socket_get_fd(s), SOL_SOCKET, SO_RCVBUFFORCE, &size, length) != 0 {
            setsockopt(mnl_socket_get_fd(s), SOL_SOCKET, SO_RCVBUF, &size, length)
        }
        // Subscribed first, dumped second: a link that appears meanwhile is in the dump or in an
        // event, so address events can name it.
        let requests: RouteNetlink
        var names: [Int32: String] = [:]
        do {
            requests = try RouteNetlink()
            for link in try requests.links() { names[link.index] = link.name }
        } catch {
            mnl_socket_close(s)
            throw error
        }
        socket = s
        fd = mnl_socket_get_fd(s)
        buffer = .allocate(byteCount: NetlinkMonitor.bufferCapacity, alignment: 8)
        self.requests = requests
        self.names = names
    }

    deinit {
        mnl_socket_close(socket)
        buffer.deallocate()
    }

    /// Reads every event queued now, without blocking, and calls `body` for each in the
    /// kernel's order. Returns when the queue is empty (so `fd` is no longer readable).
    /// - Throws: `SystemError` for a failing socket; lost or truncated events are not errors
    ///   but a `.resyncNeeded` event.
    public func readEvents(_ body: (NetlinkEvent) -> Void) throws {
        while true {
            let n = mnl_socket_recvfrom(socket, buffer.baseAddress, buffer.count)
            if n < 0 {
                let e = errno
                switch e {
                case EINTR:
                    continue
                case EAGAIN, EWOULDBLOCK:
                    return
                case ENOBUFS, ENOSPC:
                    // ENOBUFS: the queue overran and the kernel dropped events. ENOSPC (libmnl's
                    // MSG_TRUNC): a datagram larger than the buffer lost its end. Either way some
                    // change is unknown; the names may be stale too.
                    if let links = try? requests.links() {
                        for link in links { names[link.index] = link.name }
                    }
                    body(.resyncNeeded)
                    continue
                default:
                    throw SystemError("netlink monitor receive", errno: e)
                }
            }
            NetlinkMonitor.events(in: UnsafeRawBufferPointer(rebasing: buffer[..<n]), names: &names, body)
        }
    }

    /// The events in one received buffer, naming address events' interfaces from `names`
    /// (which link events update). Malformed or unknown messages are skipped.
    static func events(in buffer: UnsafeRawBufferPointer, names: inout [Int32: String], _ body: (NetlinkEvent) -> Void) {
        RouteMessage.forEach(in: buffer) { _, message in
            switch message {
            case .link(let link, removed: false):
                names[link.index] = link.name
                body(.linkChanged(link))
            case .link(let link, removed: true):
                names[link.index] = link.name
                body(.linkRemoved(index: link.index, name: link.name))
            case .address(let record, let removed):
                // A tentative IPv6 address is reported when DAD completes, by another NEWADDR.
                if !removed && record.isTentative { return }
                let address = InterfaceAddress(
                    interfaceIndex: record.interfaceIndex,
                    interfaceName: names[record.interfaceIndex] ?? record.label ?? "",
                    prefix: record.prefix)
                body(removed ? .addressRemoved(address) : .addressAdded(address))
            default:
                break
            }
        }
    }
}
