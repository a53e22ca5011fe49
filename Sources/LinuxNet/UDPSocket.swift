// CLinuxNet includes <sys/socket.h> too; without the import a whole-module build cannot see the
// MSG_* flags that header then appears to own.
import CLinuxNet
// A non-blocking UDP socket on Linux: the platform side of the sans-I/O QUIC core. Converts
// between the core's `SocketAddress` and sockaddr, carries each datagram's ECN codepoint
// (sendmsg/recvmsg with the control messages of ECNControlMessage.swift), and reports errors
// with errno text. One datagram per call here; the batched, GSO/GRO data path is
// UDPSendBatch.swift and UDPReceiveBatch.swift, the buffer sizes SocketBuffers.swift.
import Glibc
import QUIC

public struct SystemError: Error, CustomStringConvertible {
    public var operation: String
    public var errno: Int32
    public init(_ operation: String, errno: Int32 = Glibc.errno) {
        self.operation = operation
        self.errno = errno
    }
    public var description: String { "\(operation): \(String(cString: strerror(errno)))" }
}

public final class UDPSocket {
    public let fd: Int32
    public let isIPv6: Bool
    // Control message buffers, allocated once: sending and receiving allocate nothing per datagram.
    private let sendControl: UnsafeMutableRawPointer
    private let receiveControl: UnsafeMutableRawPointer
    /// Whether sends may use UDP GSO (UDP_SEGMENT, udp(7)): probed when the socket opens, and
    /// turned off for good the first time the kernel refuses a segmented send (UDPSendBatch
    /// then sends one datagram per message). Setting it to false forces that fallback.
    public var segmentationOffload: Bool
    /// The port the socket is bound to (after bind: the kernel's choice for port 0).
    public private(set) var localPort: UInt16 = 0
    /// Whether the kernel may coalesce received datagrams (UDP_GRO): off until
    /// `setReceiveOffload(true)`, because a coalesced buffer must be split, which only
    /// `receive(into: UDPReceiveBatch)` does.
    public private(set) var receiveOffload = false
    /// recvmmsg / sendmmsg, until the kernel answers ENOSYS (then one message per call).
    var multipleMessageReceive = true
    var multipleMessageSend = true
    /// What the kernel granted for SO_RCVBUF / SO_SNDBUF (SocketBuffers.swift).
    public private(set) var bufferSizes = SocketBufferSizes()

    /// Opens a socket bound to `local` (port 0 picks one), optionally to a network interface
    /// (SO_BINDTODEVICE, used later for per-WAN paths).
    public init(bindTo local: SocketAddress, interface: String? = nil) throws {
        isIPv6 = local.isIPv6
        fd = socket(
            isIPv6 ? AF_INET6 : AF_INET, Int32(CLinuxNet_SOCK_DGRAM) | Int32(CLinuxNet_SOCK_NONBLOCK) | Int32(CLinuxNet_SOCK_CLOEXEC), 0)
        guard fd >= 0 else { throw SystemError("socket") }
        sendControl = .allocate(byteCount: ECNControlMessage.sendCapacity, alignment: MemoryLayout<Int>.alignment)
        receiveControl = .allocate(byteCount: ECNControlMessage.receiveCapacity, alignment: MemoryLayout<Int>.alignment)
        segmentationOffload = UDPSegmentation.probeSegmentation(fd)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if isIPv6 {
            var v6only: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &v6only, socklen_t(MemoryLayout<Int32>.size))
        }
        // Socket buffers for multi-Gbit paths: a bonded tunnel bursts.
        bufferSizes = SocketBufferSizes.request(fd, bytes: SocketBufferSizes.defaultRequest)
        // RFC 9000 §13.4.1: the receiver reports the ECN codepoint of every packet, so have the
        // kernel attach the TOS byte / traffic class to each received datagram. Best effort:
        // without it every datagram reads Not-ECT, and the peer's validation turns ECN off.
        if isIPv6 {
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_RECVTCLASS, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        // IPv4, also for v4-mapped traffic on an IPv6 socket (dual-stack), which reports IP_TOS.
        setsockopt(fd, Int32(IPPROTO_IP), IP_RECVTOS, &one, socklen_t(MemoryLayout<Int32>.size))
        // Where each datagram arrived (local address, interface): batched receives report it.
        PacketInfoControlMessage.enable(fd, ipv6: isIPv6)
        // Every stored property is set: from here a throw runs deinit, which closes the socket.
        if let interface {
            let rc = interface.withCString { setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, $0, socklen_t(strlen($0) + 1)) }
            guard rc == 0 else { throw SystemError("SO_BINDTODEVICE \(interface)") }
        }
        let rc = UDPSocket.withSockaddr(local) { bind(fd, $0, $1) }
        guard rc == 0 else { throw SystemError("bind \(local)") }
        localPort = localAddress?.port ?? local.port
    }

    deinit {
        close(fd)
        sendControl.deallocate()
        receiveControl.deallocate()
    }

    public var localAddress: SocketAddress? {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return rc == 0 ? UDPSocket.address(from: storage) : nil
    }

    /// Sends one datagram unmarked (Not-ECT); returns false if the socket buffer is full (EAGAIN).
    @discardableResult
    public func send(_ bytes: [UInt8], to destination: SocketAddress) throws -> Bool {
        try send(bytes, to: destination, ecn: .notECT)
    }

    /// Sends one datagram with `ecn` in the IP header's ECN field (RFC 9000 §13.4.2: ECT(0) while
    /// a path tests or uses ECN); returns false if the socket buffer is full (EAGAIN).
    @discardableResult
    public func send(_ bytes: [UInt8], to destination: SocketAddress, ecn: ECNCodepoint) throws -> Bool {
        // Not-ECT is the kernel's default TOS / traffic class: no control message needed.
        let controlLength =
            ecn == .notECT
            ? 0
            : ECNControlMessage.writeMarking(ecn, ipv4: !destination.isIPv6 || UDPSocket.isV4Mapped(destination), into: sendControl)
        let n = bytes.withUnsafeBytes { buf in
            UDPSocket.withSockaddr(destination) { name, nameLength in
                var iov = iovec(iov_base: UnsafeMutableRawPointer(mutating: buf.baseAddress), iov_len: buf.count)
                return withUnsafeMutablePointer(to: &iov) { iovPointer in
                    var msg = msghdr()
                    msg.msg_name = UnsafeMutableRawPointer(mutating: name)
                    msg.msg_namelen = nameLength
                    msg.msg_iov = iovPointer
                    msg.msg_iovlen = 1
                    msg.msg_control = controlLength > 0 ? sendControl : nil
                    msg.msg_controllen = controlLength
                    return sendmsg(fd, &msg, 0)
                }
            }
        }
        if n < 0 {
            let e = errno
            if e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS { return false }
            // ICMP-reported errors (ECONNREFUSED etc.) are not fatal for an unconnected socket.
            if e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH { return true }
            throw SystemError("sendmsg \(destination)", errno: e)
        }
        return true
    }

    /// Receives one datagram into `buffer` with the ECN codepoint it arrived with (RFC 9000
    /// §13.4.1); nil when nothing is waiting.
    public func receive(into buffer: inout [UInt8]) throws -> (count: Int, from: SocketAddress, ecn: ECNCodepoint)? {
        while true {
            var storage = sockaddr_storage()
            var controlLength = 0
            let n = buffer.withUnsafeMutableBytes { buf in
                withUnsafeMutablePointer(to: &storage) { name in
                    var iov = iovec(iov_base: buf.baseAddress, iov_len: buf.count)
                    return withUnsafeMutablePointer(to: &iov) { iovPointer in
                        var msg = msghdr()
                        msg.msg_name = UnsafeMutableRawPointer(name)
                        msg.msg_namelen = socklen_t(MemoryLayout<sockaddr_storage>.size)
                        msg.msg_iov = iovPointer
                        msg.msg_iovlen = 1
                        msg.msg_control = receiveControl
                        msg.msg_controllen = ECNControlMessage.receiveCapacity
                        let n = recvmsg(fd, &msg, 0)
                        // MSG_CTRUNC: the messages did not fit; read none rather than a partial one.
                        controlLength = msg.msg_flags & Int32(MSG_CTRUNC) != 0 ? 0 : msg.msg_controllen
                        return n
                    }
                }
            }
            if n < 0 {
                let e = errno
                if e == EAGAIN || e == EWOULDBLOCK { return nil }
                if e == ECONNREFUSED || e == EINTR { continue }
                throw SystemError("recvmsg", errno: e)
            }
            guard let from = UDPSocket.address(from: storage) else { return nil }
            return (n, from, ECNControlMessage.parseECN(receiveControl, length: controlLength))
        }
    }

    /// Turns UDP GRO on or off (udp(7) UDP_GRO, Linux 5.0); returns whether it is on now. With it
    /// on, one receive may hold several datagrams of a flow: use `receive(into: UDPReceiveBatch)`,
    /// which splits them at the segment size; the single-datagram `receive(into:)` does not.
    @discardableResult
    public func setReceiveOffload(_ on: Bool) -> Bool {
        if on {
            receiveOffload = UDPSegmentation.enableGRO(fd)
        } else {
            var zero: Int32 = 0
            if setsockopt(fd, UDPSegmentation.level, UDPSegmentation.groOption, &zero, socklen_t(MemoryLayout<Int32>.size)) == 0 {
                receiveOffload = false
            }
        }
        return receiveOffload
    }

    /// Datagrams leave with DF set and are never fragmented by this host, whatever the kernel's
    /// cached path MTU says (IP_PMTUDISC_PROBE / IPV6_PMTUDISC_PROBE): QUIC finds each path's MTU
    /// itself (RFC 9000 §14.3, RFC 8899), so a probe larger than the path must be lost, not split.
    /// One larger than the interface fails with EMSGSIZE, which the send batch counts as a loss.
    /// Returns whether the kernel took it.
    @discardableResult
    public func setDontFragment() -> Bool {
        var probe = Int32(IP_PMTUDISC_PROBE)
        var ok = setsockopt(fd, Int32(IPPROTO_IP), IP_MTU_DISCOVER, &probe, socklen_t(MemoryLayout<Int32>.size)) == 0
        if isIPv6 {
            var probe6 = Int32(IPV6_PMTUDISC_PROBE)
            ok = setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_MTU_DISCOVER, &probe6, socklen_t(MemoryLayout<Int32>.size)) == 0
        }
        return ok
    }

    /// Waits until the socket is readable or `timeoutMs` passes (-1: forever).
    public func waitReadable(timeoutMs: Int32) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let rc = poll(&p, 1, timeoutMs)
        return rc > 0 && (p.revents & Int16(POLLIN)) != 0
    }

    /// Waits until any of `sockets` is readable or `nanoseconds` pass (nil: forever), to the
    /// microsecond (ppoll(2); poll's milliseconds would round a pacing gap of 80 µs up to 1 ms).
    /// Returns whether one is; allocates nothing for up to eight sockets.
    public static func waitReadable(_ sockets: [UDPSocket], nanoseconds: Int64?) -> Bool {
        var fds = (pollfd(), pollfd(), pollfd(), pollfd(), pollfd(), pollfd(), pollfd(), pollfd())
        return withUnsafeMutableBytes(of: &fds) { raw -> Bool in
            let inline = raw.bindMemory(to: pollfd.self)
            let heap = sockets.count > inline.count ? UnsafeMutableBufferPointer<pollfd>.allocate(capacity: sockets.count) : nil
            defer { heap?.deallocate() }
            let list = heap ?? inline
            for (i, s) in sockets.enumerated() { list[i] = pollfd(fd: s.fd, events: Int16(POLLIN), revents: 0) }
            var rc: Int32
            if let ns = nanoseconds {
                var ts = timespec(tv_sec: Int(max(ns, 0) / 1_000_000_000), tv_nsec: Int(max(ns, 0) % 1_000_000_000))
                rc = CLinuxNet_ppoll(list.baseAddress, nfds_t(sockets.count), &ts)
            } else {
                rc = CLinuxNet_ppoll(list.baseAddress, nfds_t(sockets.count), nil)
            }
            return rc > 0
        }
    }

    /// Waits until any of `sockets` is readable or `timeoutMs` passes; returns the readable ones.
    public static func waitReadable(_ sockets: [UDPSocket], timeoutMs: Int32) -> [UDPSocket] {
        var fds = sockets.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
        let rc = poll(&fds, nfds_t(fds.count), timeoutMs)
        guard rc > 0 else { return [] }
        return zip(sockets, fds).filter { $0.1.revents & Int16(POLLIN) != 0 }.map { $0.0 }
    }

    // MARK: - sockaddr conversion

    /// ::ffff:a.b.c.d (RFC 4291 §2.5.5.2): an IPv4 peer of a dual-stack IPv6 socket.
    static func isV4Mapped(_ a: SocketAddress) -> Bool {
        a.isIPv6 && a.ipByte(10) == 0xff && a.ipByte(11) == 0xff && (0..<10).allSatisfy { a.ipByte($0) == 0 }
    }

    static func withSockaddr<R>(_ a: SocketAddress, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        if a.isIPv6 {
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = a.port.bigEndian
            withUnsafeMutableBytes(of: &sin6.sin6_addr) { for i in 0..<16 { $0[i] = a.ipByte(i) } }
            return withUnsafePointer(to: &sin6) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = a.port.bigEndian
        withUnsafeMutableBytes(of: &sin.sin_addr) { for i in 0..<4 { $0[i] = a.ipByte(i) } }
        return withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }

    /// Writes `a` as a sockaddr_in / sockaddr_in6 at `name` (room for a sockaddr_storage) and
    /// returns its length: for the names of a batch, converted once per destination.
    static func writeSockaddr(_ a: SocketAddress, to name: UnsafeMutableRawPointer) -> socklen_t {
        withSockaddr(a) { sa, length in
            name.copyMemory(from: UnsafeRawPointer(sa), byteCount: Int(length))
            return length
        }
    }

    /// The address of a sockaddr that recvmsg / recvmmsg filled in, read where it lies.
    static func address(at name: UnsafeRawPointer) -> SocketAddress? {
        switch Int32(name.load(fromByteOffset: 0, as: sa_family_t.self)) {
        case AF_INET:
            let sin = name.load(as: sockaddr_in.self)
            var addr = sin.sin_addr
            return withUnsafeBytes(of: &addr) { SocketAddress(ipBytes: $0, port: UInt16(bigEndian: sin.sin_port)) }
        case AF_INET6:
            let sin6 = name.load(as: sockaddr_in6.self)
            var addr = sin6.sin6_addr
            return withUnsafeBytes(of: &addr) { SocketAddress(ipBytes: $0, port: UInt16(bigEndian: sin6.sin6_port)) }
        default:
            return nil
        }
    }

    static func address(from storage: sockaddr_storage) -> SocketAddress? {
        var s = storage
        switch Int32(s.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &s) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { p in
                    var addr = p.pointee.sin_addr
                    let port = UInt16(bigEndian: p.pointee.sin_port)
                    return withUnsafeBytes(of: &addr) { SocketAddress(ipBytes: $0, port: port) }
                }
            }
        case AF_INET6:
            return withUnsafePointer(to: &s) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { p in
                    var addr = p.pointee.sin6_addr
                    let port = UInt16(bigEndian: p.pointee.sin6_port)
                    return withUnsafeBytes(of: &addr) { SocketAddress(ipBytes: $0, port: port) }
                }
            }
        default:
            return nil
        }
    }
}
