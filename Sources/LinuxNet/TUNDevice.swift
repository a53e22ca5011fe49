import CLinuxNet
// The TUN interface: where the router reads the LAN's packets to carry them through the tunnel, and
// where the VPS writes them back out. IFF_TUN | IFF_NO_PI: no Ethernet header, no packet-information
// prefix; the descriptor is non-blocking for the daemon's epoll loop. The interface's MTU, state
// and addresses are set over rtnetlink (RouteNetlink.swift).
//
// With offloads (IFF_VNET_HDR, TUNSETOFFLOAD TSO4/TSO6/CSUM, as wireguard-go does) the kernel no
// longer cuts the LAN's TCP into MTU-sized packets before the TUN, nor computes their checksums:
// one read brings up to 64 KB of one flow, which `read` cuts into the packets the tunnel carries
// (FrameSegmentation.swift), and `write` joins a flow's consecutive segments back into one packet
// (TCPCoalescing.swift) that `flushWrites` hands over. One syscall and one pass through the
// kernel's forwarding path per 64 KB instead of per packet.
import Glibc
import Synchronization

/// A TUN interface (tun(4) driver, IFF_TUN | IFF_NO_PI, optionally IFF_VNET_HDR offloads) opened
/// non-blocking.
///
/// The interface exists while the device is open (it is not made persistent) and lives in the
/// network namespace of the thread that opened it.
///
/// Reading several packets per wake-up is the caller's loop: after epoll reports `fd` readable,
/// call `read(into:)` until it returns nil. With offloads, `write` may hold a packet back to join
/// it with the next ones: call `flushWrites()` after each batch. Reads and writes allocate nothing.
///
/// Reads may come from one thread while writes come from another (their state is separate, and
/// the kernel serialises them on the descriptor); `close()` must not race with them: stop the
/// threads that use the device first.
public final class TUNDevice: @unchecked Sendable {
    /// The descriptor, for epoll (readable: a packet is waiting; writable after a full queue).
    public let fd: Int32
    /// The interface's name as the kernel made it ("tquic0" for a requested "tquic%d").
    public let name: String
    /// Whether the kernel took the offloads asked for: reads and writes then carry a virtio
    /// header and TCP packets of up to 64 KB (the callers see single packets either way).
    public let offloads: Bool
    private let closed = Atomic<Bool>(false)

    // Offloads, the read side: the TSO packet last read, cut one segment per `read`.
    private let readBuffer: UnsafeMutableRawPointer?
    private var pending: GSOFrame?
    private var pendingNext = 0
    /// TSO packets read, and the segments cut from them.
    public private(set) var superPacketsRead: UInt64 = 0
    public private(set) var segmentsCut: UInt64 = 0
    /// Segments of a TSO packet not yet read (a reader that stops at a budget must not leave
    /// them: the descriptor is not readable for them).
    public var hasPendingSegments: Bool { pending != nil }
    /// Reads that brought something that is no packet this can cut (dropped).
    public private(set) var malformedReads: UInt64 = 0

    // Offloads, the write side.
    private var coalescer: TCPCoalescer?
    /// A virtio header that asks for nothing, in front of packets written as they are.
    private let plainHeader: UnsafeMutableRawPointer?
    /// Packets written as parts of coalesced ones, and the coalesced writes.
    public private(set) var segmentsCoalesced: UInt64 = 0
    public private(set) var coalescedWrites: UInt64 = 0
    /// Packets that `write` held and the kernel then refused at `flushWrites` (the caller's own
    /// drop count misses them: `write` had said yes).
    public private(set) var heldPacketsDropped: UInt64 = 0

    /// The offloads asked for: checksums and TSO for IPv4 and IPv6 (with ECN). No UDP
    /// segmentation: the inner UDP flows (QUIC, VoIP) send single packets.
    static let offloadFlags = UInt32(
        CLinuxNet_tunOffloadChecksum | CLinuxNet_tunOffloadTSO4
            | CLinuxNet_tunOffloadTSO6 | CLinuxNet_tunOffloadTSOECN)

    /// Opens /dev/net/tun and attaches it to the TUN interface `name`, creating it if absent.
    /// - Parameters:
    ///   - name: at most 15 bytes; a "%d" in it lets the kernel pick the first free number.
    ///   - offloads: ask for IFF_VNET_HDR with TSO and checksum offload; a kernel that refuses
    ///     them gets a plain TUN (`offloads` then says false).
    /// - Throws: `SystemError` for open (ENOENT: no /dev/net/tun) or TUNSETIFF (EPERM: not
    ///   CAP_NET_ADMIN; EBUSY: the interface exists and another descriptor holds it; EINVAL: an
    ///   interface of that name that is not a TUN).
    public init(name requested: String = "tquic%d", offloads: Bool = false) throws {
        var (fd, name) = try TUNDevice.attach(requested, virtioHeader: offloads)
        var granted = offloads
        if offloads && CLinuxNet_tunSetOffload(fd, TUNDevice.offloadFlags, Int32(VirtioNetHeader.size)) != 0 {
            // Refused: the same interface again without the header (closing removed it).
            Glibc.close(fd)
            (fd, name) = try TUNDevice.attach(requested, virtioHeader: false)
            granted = false
        }
        self.fd = fd
        self.name = name
        self.offloads = granted
        if granted {
            // The packet read, then room to cut a segment too long for the caller's buffer.
            readBuffer = UnsafeMutableRawPointer.allocate(byteCount: 2 * TCPCoalescer.capacity, alignment: 16)
            coalescer = TCPCoalescer(buffer: UnsafeMutableRawPointer.allocate(byteCount: TCPCoalescer.capacity, alignment: 16))
            plainHeader = UnsafeMutableRawPointer.allocate(byteCount: VirtioNetHeader.size, alignment: 8)
            VirtioNetHeader().store(to: plainHeader!)
        } else {
            readBuffer = nil
            plainHeader = nil
        }
    }

    private static func attach(_ requested: String, virtioHeader: Bool) throws -> (Int32, String) {
        let fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open /dev/net/tun") }
        var actual = [CChar](repeating: 0, count: Int(CLinuxNet_interfaceNameCapacity))
        guard CLinuxNet_tunAttach(fd, requested, &actual, virtioHeader ? 1 : 0) == 0 else {
            let e = errno
            Glibc.close(fd)
            throw SystemError("TUNSETIFF \(requested)", errno: e)
        }
        return (fd, String(decoding: actual.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    deinit {
        close()
        readBuffer?.deallocate()
        coalescer?.buffer.deallocate()
        plainHeader?.deallocate()
    }

    /// Closes the descriptor, which removes the interface (and its addresses and routes). Further
    /// calls do nothing; reads and writes after it are a programming error.
    public func close() {
        if closed.exchange(true, ordering: .acquiringAndReleasing) { return }
        Glibc.close(fd)
    }

    // MARK: Reading

    /// Reads one IP packet into `buffer`; with offloads, the next segment of a TSO packet (its
    /// checksums completed), or a packet whose checksum the kernel left to us, completed.
    /// - Parameter buffer: should hold the interface's MTU; the kernel cuts a longer packet to
    ///   the buffer's size without saying so (with offloads this cuts a longer packet or segment
    ///   the same way).
    /// - Returns: the packet's length, or nil when no packet is waiting (EAGAIN).
    /// - Throws: `SystemError` for anything else (EBADF after `close()`; EFAULT).
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int? {
        guard let readBuffer else { return try readRaw(into: buffer.baseAddress!, count: buffer.count) }
        while true {
            if let g = pending {
                let i = pendingNext
                pendingNext += 1
                if pendingNext == g.segmentCount { pending = nil }
                segmentsCut += 1
                let length = g.segmentLength(i)
                guard length <= buffer.count else {
                    // Longer than the caller takes (the MTU fell after the kernel built it): its
                    // start, as a plain read would cut it, for the caller to drop or answer.
                    g.writeSegment(i, to: readBuffer + TCPCoalescer.capacity)
                    buffer.baseAddress!.copyMemory(from: readBuffer + TCPCoalescer.capacity, byteCount: buffer.count)
                    return buffer.count
                }
                g.writeCompleteSegment(i, to: buffer.baseAddress!)
                return length
            }
            guard let n = try readRaw(into: readBuffer, count: TCPCoalescer.capacity) else { return nil }
            guard n > VirtioNetHeader.size else {
                malformedReads += 1
                continue
            }
            let header = VirtioNetHeader(loading: readBuffer)
            let packet = UnsafeRawBufferPointer(start: readBuffer + VirtioNetHeader.size, count: n - VirtioNetHeader.size)
            if header.isGSO {
                guard let g = GSOFrame(packet: packet, header: header), g.segmentCount > 0 else {
                    malformedReads += 1
                    continue
                }
                superPacketsRead += 1
                pending = g
                pendingNext = 0
                continue
            }
            let length = min(packet.count, buffer.count)
            buffer.baseAddress!.copyMemory(from: packet.baseAddress!, byteCount: length)
            if header.flags & VirtioNetHeader.needsChecksum != 0 {
                VirtioNetHeader.completeChecksum(
                    buffer.baseAddress!, count: length,
                    start: Int(header.checksumStart), offset: Int(header.checksumOffset))
            }
            return length
        }
    }

    private func readRaw(into p: UnsafeMutableRawPointer, count: Int) throws -> Int? {
        while true {
            let n = Glibc.read(fd, p, count)
            if n >= 0 { return n }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return nil }
            throw SystemError("read \(name)", errno: e)
        }
    }

    // MARK: Writing

    /// Writes one IP packet (IPv4 or IPv6, told apart by its version nibble) for the kernel to
    /// route as if the interface had received it. With offloads a TCP data segment may be held
    /// to be joined with the next ones of its flow, until `flushWrites()`.
    /// - Returns: true when the kernel took the packet (or it is held); false when it refused
    ///   this one packet and the next may go: the queue is full (EAGAIN, ENOBUFS), the packet is
    ///   malformed (EINVAL: neither version 4 nor 6, or shorter than an IP header) or the
    ///   interface is down (EIO). The caller counts those as drops.
    /// - Throws: `SystemError` for errors of the descriptor itself (EBADF after `close()`).
    public func write(_ packet: UnsafeRawBufferPointer) throws -> Bool {
        guard let plainHeader else { return try writeRaw(packet.baseAddress!, count: packet.count) }
        if coalescer!.append(packet) { return true }
        if coalescer!.segments > 0 {
            try flushWrites()
            if coalescer!.append(packet) { return true }
        }
        // Not TCP data: as it is, behind a header that asks for nothing.
        var parts = (
            iovec(iov_base: plainHeader, iov_len: VirtioNetHeader.size),
            iovec(iov_base: UnsafeMutableRawPointer(mutating: packet.baseAddress), iov_len: packet.count)
        )
        return try withUnsafePointer(to: &parts) {
            try $0.withMemoryRebound(to: iovec.self, capacity: 2) { try writeVector($0, count: 2) }
        }
    }

    /// Hands over the packet `write` holds, if any (offloads only; nothing to do otherwise).
    public func flushWrites() throws {
        guard coalescer != nil, coalescer!.segments > 0 else { return }
        let segments = coalescer!.segments
        let bytes = coalescer!.finish()
        if segments > 1 {
            segmentsCoalesced += UInt64(segments)
            coalescedWrites += 1
        }
        if try !writeRaw(bytes.baseAddress!, count: bytes.count) { heldPacketsDropped += UInt64(segments) }
    }

    private func writeRaw(_ p: UnsafeRawPointer, count: Int) throws -> Bool {
        try retryingWrite { Glibc.write(fd, p, count) }
    }

    private func writeVector(_ v: UnsafePointer<iovec>, count: Int32) throws -> Bool {
        try retryingWrite { Glibc.writev(fd, v, count) }
    }

    /// `write` or `writev` again after EINTR; false for an error that loses only this packet.
    @inline(__always)
    private func retryingWrite(_ call: () -> Int) throws -> Bool {
        while true {
            if call() >= 0 { return true }
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
