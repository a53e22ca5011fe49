// A non-blocking UDP socket on Linux: the platform side of the sans-I/O QUIC core. Converts
// between the core's `SocketAddress` and sockaddr, and reports errors with errno text.
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

    /// Opens a socket bound to `local` (port 0 picks one), optionally to a network interface
    /// (SO_BINDTODEVICE, used later for per-WAN paths).
    public init(bindTo local: SocketAddress, interface: String? = nil) throws {
        isIPv6 = local.isIPv6
        fd = socket(isIPv6 ? AF_INET6 : AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if isIPv6 {
            var v6only: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &v6only, socklen_t(MemoryLayout<Int32>.size))
        }
        // Larger socket buffers: a bonded tunnel bursts.
        var size: Int32 = 4 << 20
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        if let interface {
            let rc = interface.withCString { setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, $0, socklen_t(strlen($0) + 1)) }
            guard rc == 0 else { let e = SystemError("SO_BINDTODEVICE \(interface)"); close(fd); throw e }
        }
        let rc = UDPSocket.withSockaddr(local) { bind(fd, $0, $1) }
        guard rc == 0 else { let e = SystemError("bind \(local)"); close(fd); throw e }
    }

    deinit { close(fd) }

    public var localAddress: SocketAddress? {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return rc == 0 ? UDPSocket.address(from: storage) : nil
    }

    /// Sends one datagram; returns false if the socket buffer is full (EAGAIN).
    @discardableResult
    public func send(_ bytes: [UInt8], to destination: SocketAddress) throws -> Bool {
        let n = bytes.withUnsafeBytes { buf in
            UDPSocket.withSockaddr(destination) { sendto(fd, buf.baseAddress, buf.count, 0, $0, $1) }
        }
        if n < 0 {
            let e = errno
            if e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS { return false }
            // ICMP-reported errors (ECONNREFUSED etc.) are not fatal for an unconnected socket.
            if e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH { return true }
            throw SystemError("sendto \(destination)", errno: e)
        }
        return true
    }

    /// Receives one datagram into `buffer`; nil when nothing is waiting.
    public func receive(into buffer: inout [UInt8]) throws -> (count: Int, from: SocketAddress)? {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let n = buffer.withUnsafeMutableBytes { buf in
            withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, buf.baseAddress, buf.count, 0, $0, &len) }
            }
        }
        if n < 0 {
            let e = errno
            if e == EAGAIN || e == EWOULDBLOCK { return nil }
            if e == ECONNREFUSED || e == EINTR { return try receive(into: &buffer) }
            throw SystemError("recvfrom", errno: e)
        }
        guard let from = UDPSocket.address(from: storage) else { return nil }
        return (n, from)
    }

    /// Waits until the socket is readable or `timeoutMs` passes (-1: forever).
    public func waitReadable(timeoutMs: Int32) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let rc = poll(&p, 1, timeoutMs)
        return rc > 0 && (p.revents & Int16(POLLIN)) != 0
    }

    /// Waits until any of `sockets` is readable or `timeoutMs` passes; returns the readable ones.
    public static func waitReadable(_ sockets: [UDPSocket], timeoutMs: Int32) -> [UDPSocket] {
        var fds = sockets.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
        let rc = poll(&fds, nfds_t(fds.count), timeoutMs)
        guard rc > 0 else { return [] }
        return zip(sockets, fds).filter { $0.1.revents & Int16(POLLIN) != 0 }.map { $0.0 }
    }

    // MARK: - sockaddr conversion

    static func withSockaddr<R>(_ a: SocketAddress, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        if a.isIPv6 {
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = a.port.bigEndian
            withUnsafeMutableBytes(of: &sin6.sin6_addr) { for i in 0..<16 { $0[i] = a.ip[i] } }
            return withUnsafePointer(to: &sin6) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = a.port.bigEndian
        withUnsafeMutableBytes(of: &sin.sin_addr) { for i in 0..<4 { $0[i] = a.ip[i] } }
        return withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }

    static func address(from storage: sockaddr_storage) -> SocketAddress? {
        var s = storage
        switch Int32(s.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &s) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { p in
                    var addr = p.pointee.sin_addr
                    let ip = withUnsafeBytes(of: &addr) { Array($0) }
                    return SocketAddress(ip: ip, port: UInt16(bigEndian: p.pointee.sin_port))
                }
            }
        case AF_INET6:
            return withUnsafePointer(to: &s) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { p in
                    var addr = p.pointee.sin6_addr
                    let ip = withUnsafeBytes(of: &addr) { Array($0) }
                    return SocketAddress(ip: ip, port: UInt16(bigEndian: p.pointee.sin6_port))
                }
            }
        default:
            return nil
        }
    }
}
