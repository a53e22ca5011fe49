import CLinuxNet
// AF_PACKET raw sockets (packet(7)): whole Ethernet frames in and out of one interface, for
// tquic-netem's bridge between two veths. Batched both ways (recvmmsg/sendmmsg) over buffers the
// caller owns (`PacketBatch` points each message at one of them), so neither way allocates or
// copies per frame; the kernel's own receive-queue drops are read with `takeKernelDrops`.
import Glibc

/// A raw packet socket bound to one interface, every protocol (ETH_P_ALL), non-blocking.
///
/// It does not read back frames sent on the interface (PACKET_IGNORE_OUTGOING: neither its own
/// nor the host's), and holds the interface in promiscuous mode while open (a veth passes every
/// frame anyway; a real NIC would filter others' MAC addresses). Frames arrive as the kernel saw
/// them: with GSO/TSO on at the sender a "frame" can be a 64 KB super-packet, and with checksum
/// offload on its L4 checksum is not filled in; open the socket with `offloadHeader` to learn
/// both (and pass them on when sending), or turn those offloads off on the veth that feeds it.
public final class PacketSocket {
    public let fd: Int32
    public let interface: String
    public let index: Int32
    /// The interface's MTU (IP bytes; a frame adds the 14-byte Ethernet header).
    public let mtu: Int
    /// Each frame read or written is preceded by a `VirtioNetHeader` (PACKET_VNET_HDR).
    public let hasOffloadHeader: Bool

    /// - Parameters:
    ///   - bufferBytes: the socket's receive and send buffer (forced past rmem_max as root).
    ///   - offloadHeader: PACKET_VNET_HDR: frames come and go with their checksum and GSO
    ///     metadata (`VirtioNetHeader`, FrameSegmentation.swift), so a sender's checksum offload
    ///     and GSO/TSO need not be turned off.
    /// - Throws: `SystemError` (ENODEV: no such interface; EPERM: needs CAP_NET_RAW).
    public init(interface: String, bufferBytes: Int = 8 << 20, offloadHeader: Bool = false) throws {
        var index: Int32 = 0
        var mtu: Int32 = 0
        let fd = CLinuxNet_packetSocketOpen(interface, Int32(clamping: bufferBytes), offloadHeader ? 1 : 0, &index, &mtu)
        guard fd >= 0 else {
            throw SystemError("AF_PACKET socket on \(interface)", errno: errno == 0 ? ENODEV : errno)
        }
        self.fd = fd
        self.interface = interface
        self.index = index
        self.mtu = Int(mtu)
        hasOffloadHeader = offloadHeader
    }

    deinit { close(fd) }

    /// Receives up to `batch.count` frames into the batch's buffers (recvmmsg, MSG_TRUNC: a frame
    /// longer than its buffer reports its real length and `isTruncated`).
    /// - Returns: how many messages were filled (0 when none was waiting).
    public func receive(into batch: PacketBatch, count: Int) throws -> Int {
        precondition(count <= batch.capacity)
        batch.prepareReceive(count)
        while true {
            let n = CLinuxNet_recvmmsg(fd, batch.messages, UInt32(count), Int32(MSG_TRUNC), nil)
            if n >= 0 { return Int(n) }
            let e = errno
            if e == EINTR { continue }
            // ENETDOWN: the interface went down (a cut link in the lab); the error is reported
            // once and the socket works again when it comes back up.
            if e == EAGAIN || e == EWOULDBLOCK || e == ENETDOWN { return 0 }
            throw SystemError("recvmmsg \(interface)", errno: e)
        }
    }

    /// Sends the first `count` messages of the batch, each a whole frame (sendmmsg).
    /// - Returns: how many the kernel took before it refused one; the caller counts the refused
    ///   one as a drop and goes on with the next (`send(_:from:count:)`).
    public func send(_ batch: PacketBatch, from first: Int = 0, count: Int) -> SendOutcome {
        precondition(first + count <= batch.capacity)
        guard count > 0 else { return .sent(0) }
        while true {
            let n = CLinuxNet_sendmmsg(fd, batch.messages + first, UInt32(count), 0)
            if n > 0 { return .sent(Int(n)) }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return .wouldBlock }
            return .refused(errno: e)
        }
    }

    /// What `send` did with the first frame it could not send.
    public enum SendOutcome: Equatable {
        /// This many went (the first `count` if it equals the count asked for).
        case sent(Int)
        /// The socket's send buffer is full: retry when it is writable.
        case wouldBlock
        /// The kernel refused the first frame (ENOBUFS: the interface's queue is full; ENETDOWN;
        /// EMSGSIZE: longer than the MTU): drop it and send the rest.
        case refused(errno: Int32)
    }

    /// Frames the kernel dropped because this socket's receive queue was full, since the last call.
    public func takeKernelDrops() -> Int {
        var received: UInt32 = 0
        var dropped: UInt32 = 0
        guard CLinuxNet_packetSocketDrops(fd, &received, &dropped) == 0 else { return 0 }
        return Int(dropped)
    }

    /// Lets the calling thread's timed waits (epoll_pwait2) wake within `nanoseconds` of their
    /// deadline instead of the default 50 µs.
    public static func setTimerSlack(nanoseconds: UInt) {
        _ = CLinuxNet_setTimerSlack(nanoseconds)
    }
}

/// The headers of one recvmmsg or sendmmsg call, allocated once; each message points at a
/// caller-owned buffer (and, to receive, optionally an overflow buffer for what does not fit)
/// set with `setBuffer` before the call.
public final class PacketBatch {
    public let capacity: Int
    let messages: UnsafeMutablePointer<CLinuxNet_mmsghdr>
    private let iovecs: UnsafeMutablePointer<iovec>
    /// Per message, room for the receive timestamp's control message.
    private let controls: UnsafeMutableRawPointer
    private static let controlSize = 64

    public init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
        messages = .allocate(capacity: capacity)
        messages.initialize(repeating: CLinuxNet_mmsghdr(), count: capacity)
        iovecs = .allocate(capacity: 2 * capacity)
        iovecs.initialize(repeating: iovec(), count: 2 * capacity)
        controls = .allocate(byteCount: capacity * PacketBatch.controlSize, alignment: 16)
        for i in 0..<capacity {
            messages[i].msg_hdr.msg_iov = iovecs + 2 * i
            messages[i].msg_hdr.msg_iovlen = 1
        }
    }

    deinit {
        messages.deallocate()
        iovecs.deallocate()
        controls.deallocate()
    }

    /// Points message `i` at `length` bytes from `base`: the room to receive into, or the frame
    /// to send.
    @inline(__always)
    public func setBuffer(_ i: Int, _ base: UnsafeMutableRawPointer, length: Int) {
        iovecs[2 * i].iov_base = base
        iovecs[2 * i].iov_len = length
        messages[i].msg_hdr.msg_iovlen = 1
    }

    /// Points message `i` at `length` bytes from `base`, then `overflowLength` bytes from
    /// `overflow` for the rest of a longer frame (a GSO super-frame).
    @inline(__always)
    public func setBuffer(
        _ i: Int, _ base: UnsafeMutableRawPointer, length: Int,
        overflow: UnsafeMutableRawPointer, overflowLength: Int
    ) {
        iovecs[2 * i] = iovec(iov_base: base, iov_len: length)
        iovecs[2 * i + 1] = iovec(iov_base: overflow, iov_len: overflowLength)
        messages[i].msg_hdr.msg_iovlen = 2
    }

    /// The received length of message `i` (its real length when `isTruncated`).
    @inline(__always)
    public func length(_ i: Int) -> Int { Int(messages[i].msg_len) }

    /// True when message `i`'s frame was longer than its buffer (and was cut).
    @inline(__always)
    public func isTruncated(_ i: Int) -> Bool {
        let room = iovecs[2 * i].iov_len + (messages[i].msg_hdr.msg_iovlen == 2 ? iovecs[2 * i + 1].iov_len : 0)
        return messages[i].msg_hdr.msg_flags & Int32(MSG_TRUNC) != 0 || Int(messages[i].msg_len) > room
    }

    /// When the kernel received message `i`'s frame (CLOCK_REALTIME nanoseconds, SO_TIMESTAMPNS);
    /// nil when it attached no time.
    @inline(__always)
    public func receiveTime(_ i: Int) -> UInt64? {
        let t = withUnsafePointer(to: &messages[i].msg_hdr) { CLinuxNet_receiveTimestamp($0) }
        return t >= 0 ? UInt64(t) : nil
    }

    func prepareReceive(_ count: Int) {
        for i in 0..<count {
            messages[i].msg_hdr.msg_flags = 0
            messages[i].msg_len = 0
            messages[i].msg_hdr.msg_control = controls + i * PacketBatch.controlSize
            messages[i].msg_hdr.msg_controllen = PacketBatch.controlSize
        }
    }
}
