// Socket buffer sizes for multi-Gbit paths (socket(7) SO_RCVBUF / SO_SNDBUF): a bonded tunnel
// bursts a whole window at once, and the default 208 KiB receive buffer drops it. As root the
// *FORCE variants pass the net.core.rmem_max / wmem_max caps; otherwise the kernel clamps.
import Glibc

/// What the kernel granted, as getsockopt reports it: socket(7) says the kernel doubles the
/// requested value "to allow space for bookkeeping overhead", so 2 × the request when granted.
public struct SocketBufferSizes: Sendable, Equatable, CustomStringConvertible {
    public var receive = 0
    public var send = 0
    /// Whether SO_RCVBUFFORCE / SO_SNDBUFFORCE (CAP_NET_ADMIN) were accepted.
    public var forced = false

    public init(receive: Int = 0, send: Int = 0, forced: Bool = false) {
        self.receive = receive
        self.send = send
        self.forced = forced
    }

    /// 8 MiB each way: about 30 ms of a 2 Gbit/s path.
    public static let defaultRequest = 8 << 20

    public var description: String {
        "SO_RCVBUF \(receive) SO_SNDBUF \(send) bytes (\(forced ? "forced" : "capped by net.core.[rw]mem_max"))"
    }

    /// Asks for `bytes` each way, forced if the process may, and reads back what was granted.
    static func request(_ fd: Int32, bytes: Int) -> SocketBufferSizes {
        var size = Int32(clamping: bytes)
        let length = socklen_t(MemoryLayout<Int32>.size)
        let forcedReceive = setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, length) == 0
        if !forcedReceive { setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, length) }
        let forcedSend = setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, length) == 0
        if !forcedSend { setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, length) }
        return SocketBufferSizes(
            receive: option(fd, SO_RCVBUF), send: option(fd, SO_SNDBUF),
            forced: forcedReceive && forcedSend)
    }

    private static func option(_ fd: Int32, _ name: Int32) -> Int {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(fd, SOL_SOCKET, name, &value, &length) == 0 ? Int(value) : 0
    }
}
