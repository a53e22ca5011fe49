// The TUN interface: where the router reads the LAN's packets to carry them through the tunnel, and
// where the VPS writes them back out. One IP packet per read or write (IFF_TUN | IFF_NO_PI: no
// Ethernet header, no packet-information prefix); the descriptor is non-blocking for the daemon's
// epoll loop. The interface's MTU, state and addresses are set over rtnetlink (RouteNetlink.swift).
import Glibc
import CLinuxNet
import Synchronization

/// A TUN interface (tun(4) driver, IFF_TUN | IFF_NO_PI) opened non-blocking.
///
/// The interface exists while the device is open (it is not made persistent) and lives in the
/// network namespace of the thread that opened it.
///
/// Reading several packets per wake-up is the caller's loop: after epoll reports `fd` readable,
/// call `read(into:)` until it returns nil. Reads and writes allocate nothing.
///
/// Reads and writes may come from different threads at once (the kernel serialises them on the
/// descriptor); `close()` must not race with them: stop the threads that use the device first.
public final class TUNDevice: @unchecked Sendable {
    /// The descriptor, for epoll (readable: a packet is waiting; writable after a full queue).
    public let fd: Int32
    /// The interface's name as the kernel made it ("tquic0" for a requested "tquic%d").
    public let name: String
    private let closed = Atomic<Bool>(false)

    /// Opens /dev/net/tun and attaches it to the TUN interface `name`, creating it if absent.
    /// - Parameter name: at most 15 bytes; a "%d" in it lets the kernel pick the first free number.
    /// - Throws: `SystemError` for open (ENOENT: no /dev/net/tun) or TUNSETIFF (EPERM: not
    ///   CAP_NET_ADMIN; EBUSY: the interface exists and another descriptor holds it; EINVAL: an
    ///   interface of that name that is not a TUN).
    public init(name requested: String = "tquic%d") throws {
        fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open /dev/net/tun") }
        var actual = [CChar](repeating: 0, count: Int(CLinuxNet_interfaceNameCapacity))
        guard CLinuxNet_tunAttach(fd, requested, &actual) == 0 else {
            let e = errno
            Glibc.close(fd)
            throw SystemError("TUNSETIFF \(requested)", errno: e)
        }
        name = String(decoding: actual.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    deinit { close() }

    /// Closes the descriptor, which removes the interface (and its addresses and routes). Further
    /// calls do nothing; reads and writes after it are a programming error.
    public func close() {
        if closed.exchange(true, ordering: .acquiringAndReleasing) { return }
        Glibc.close(fd)
    }

    /// Reads one IP packet into `buffer`.
    /// - Parameter buffer: should hold the interface's MTU; the kernel cuts a longer packet to
    ///   the buffer's size without saying so.
    /// - Returns: the packet's length, or nil when no packet is waiting (EAGAIN).
    /// - Throws: `SystemError` for anything else (EBADF after `close()`; EFAULT).
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int? {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n >= 0 { return n }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return nil }
            throw SystemError("read \(name)", errno: e)
        }
    }

    /// Writes one IP packet (IPv4 or IPv6, told apart by its version nibble) for the kernel to
    /// route as if the interface had received it.
    /// - Returns: true when the kernel took the packet; false when it refused this one packet and
    ///   the next may go: the queue is full (EAGAIN, ENOBUFS), the packet is malformed (EINVAL:
    ///   neither version 4 nor 6, or shorter than an IP header) or the interface is down (EIO).
    ///   The caller counts those as drops.
    /// - Throws: `SystemError` for errors of the descriptor itself (EBADF after `close()`).
    public func write(_ packet: UnsafeRawBufferPointer) throws -> Bool {
        while true {
            let n = Glibc.write(fd, packet.baseAddress, packet.count)
            if n >= 0 { return true }
            let e = errno
            if e == EINTR { continue }
            if TUNDevice.isPacketDrop(e) { return false }
            throw SystemError("write \(name)", errno: e)
        }
    }

    /// The errors of `write` that lose one packet and leave the device usable.
    static func isPacketDrop(_ e: Int32) -> Bool {
        e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS || e == ENOMEM || e == EINVAL || e == EIO || e == EMSGSIZE
    }
}
