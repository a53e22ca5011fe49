import CLinuxNet
// Batched UDP receive (recvmmsg(2)): several datagrams per syscall, each with its source address,
// its ECN codepoint (IP_RECVTOS / IPV6_RECVTCLASS, ECNControlMessage.swift) and, where GRO
// coalesced several datagrams of a flow into one buffer (UDPSegmentation.swift), split back into
// the datagrams at the segment size. The first step of the receive path: socket → batch → core.
import Glibc
import QUIC

/// The buffers of one recvmmsg call, allocated once: headers, iovecs, names, control buffers and
/// one data buffer per message. After `UDPSocket.receive(into:)` it holds `count` datagrams,
/// read with the subscript, valid until the next receive into the batch.
public final class UDPReceiveBatch {
    /// One received datagram, where it lies in the batch's buffer.
    public struct Datagram {
        public let bytes: UnsafeRawBufferPointer
        public let source: SocketAddress
        public let ecn: ECNCodepoint
        /// The UDP_GRO segment size of the buffer it came in; 0 when the kernel did not coalesce.
        public let segmentSize: Int
        /// Where it arrived (local address and interface, IP_PKTINFO / IPV6_PKTINFO); nil when the
        /// kernel attached none.
        public let packetInfo: PacketInfo?
    }

    /// Messages (kernel buffers) one receive can fill; with GRO each may hold up to 64 datagrams.
    public let messageCapacity: Int
    /// Bytes per message buffer: 64 KiB takes the largest UDP datagram or GRO buffer.
    public let bufferSize: Int

    /// Datagrams in the batch after the last receive (GRO buffers split).
    public private(set) var count = 0
    /// Messages the last receive returned (a GRO buffer counts once).
    public private(set) var messageCount = 0
    /// Datagrams dropped because they did not fit a buffer (MSG_TRUNC), since the batch was made.
    public private(set) var truncatedDatagrams = 0

    private static let controlStride = ECNControlMessage.align(
        ECNControlMessage.receiveCapacity + UDPSegmentation.groMessageSpace
            + PacketInfoControlMessage.receiveSpace)
    /// UDP_GRO_CNT_MAX: the kernel coalesces at most 64 datagrams into one buffer.
    private static let segmentsPerMessage = 64

    let messages: UnsafeMutablePointer<CLinuxNet_mmsghdr>
    private let iovecs: UnsafeMutablePointer<iovec>
    private let names: UnsafeMutablePointer<sockaddr_storage>
    private let controls: UnsafeMutableRawPointer
    private let data: UnsafeMutableRawPointer
    /// Per message: its source, codepoint and GRO segment size.
    private let sources: UnsafeMutablePointer<SocketAddress>
    private let codepoints: UnsafeMutablePointer<ECNCodepoint>
    private let segmentSizes: UnsafeMutablePointer<Int>
    private let packetInfos: UnsafeMutablePointer<PacketInfo?>
    /// The receiving socket's port (the local address's port in the packet info).
    var localPort: UInt16 = 0
    /// Per datagram: (message, offset in its buffer, length).
    private let datagrams: UnsafeMutablePointer<(message: Int32, offset: Int32, length: Int32)>
    private let datagramCapacity: Int

    public init(messages messageCapacity: Int = 16, bufferSize: Int = 65536) {
        precondition(messageCapacity > 0 && bufferSize > 0)
        self.messageCapacity = messageCapacity
        self.bufferSize = bufferSize
        messages = .allocate(capacity: messageCapacity)
        messages.initialize(repeating: CLinuxNet_mmsghdr(), count: messageCapacity)
        iovecs = .allocate(capacity: messageCapacity)
        names = .allocate(capacity: messageCapacity)
        names.initialize(repeating: sockaddr_storage(), count: messageCapacity)
        controls = .allocate(byteCount: messageCapacity * UDPReceiveBatch.controlStride, alignment: MemoryLayout<Int>.alignment)
        data = .allocate(byteCount: messageCapacity * bufferSize, alignment: 64)
        sources = .allocate(capacity: messageCapacity)
        sources.initialize(repeating: SocketAddress(ip: [0, 0, 0, 0], port: 0), count: messageCapacity)
        codepoints = .allocate(capacity: messageCapacity)
        codepoints.initialize(repeating: .notECT, count: messageCapacity)
        segmentSizes = .allocate(capacity: messageCapacity)
        segmentSizes.initialize(repeating: 0, count: messageCapacity)
        packetInfos = .allocate(capacity: messageCapacity)
        packetInfos.initialize(repeating: nil, count: messageCapacity)
        datagramCapacity = messageCapacity * UDPReceiveBatch.segmentsPerMessage
        datagrams = .allocate(capacity: datagramCapacity)
        datagrams.initialize(repeating: (0, 0, 0), count: datagramCapacity)
        for i in 0..<messageCapacity {
            iovecs[i] = iovec(iov_base: data + i * bufferSize, iov_len: bufferSize)
            messages[i].msg_hdr.msg_iov = iovecs + i
            messages[i].msg_hdr.msg_iovlen = 1
            messages[i].msg_hdr.msg_name = UnsafeMutableRawPointer(names + i)
            messages[i].msg_hdr.msg_control = controls + i * UDPReceiveBatch.controlStride
        }
    }

    deinit {
        messages.deallocate()
        iovecs.deallocate()
        names.deallocate()
        controls.deallocate()
        data.deallocate()
        sources.deallocate()
        codepoints.deallocate()
        segmentSizes.deallocate()
        packetInfos.deallocate()
        datagrams.deallocate()
    }

    public subscript(i: Int) -> Datagram {
        precondition(i >= 0 && i < count, "datagram index out of range")
        let d = datagrams[i]
        let m = Int(d.message)
        return Datagram(
            bytes: UnsafeRawBufferPointer(start: data + m * bufferSize + Int(d.offset), count: Int(d.length)),
            source: sources[m], ecn: codepoints[m], segmentSize: segmentSizes[m], packetInfo: packetInfos[m])
    }

    /// Copies datagram `i` into `array`, which takes its length (a reused array allocates nothing
    /// once its capacity suffices): for `receive(datagram: &array, ...)`, which opens in place.
    public func copyDatagram(_ i: Int, into array: inout [UInt8]) {
        let bytes = self[i].bytes
        array.removeAll(keepingCapacity: true)
        array.append(contentsOf: bytes.bindMemory(to: UInt8.self))
    }

    /// Resets what the kernel changes in each header (name and control lengths, flags).
    func prepare() {
        count = 0
        messageCount = 0
        for i in 0..<messageCapacity {
            messages[i].msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_storage>.size)
            messages[i].msg_hdr.msg_controllen = UDPReceiveBatch.controlStride
            messages[i].msg_hdr.msg_flags = 0
            messages[i].msg_len = 0
        }
    }

    /// Reads the first `received` messages: source, codepoint, GRO segment size, and the datagrams
    /// each holds.
    func collect(_ received: Int) {
        messageCount = received
        for m in 0..<received {
            let header = messages[m].msg_hdr
            let length = Int(messages[m].msg_len)
            // MSG_TRUNC: the datagram was longer than the buffer; its tail is lost, so drop it.
            if header.msg_flags & Int32(MSG_TRUNC) != 0 {
                truncatedDatagrams += 1
                continue
            }
            guard let source = UDPSocket.address(at: names + m) else { continue }
            // MSG_CTRUNC: the messages did not fit; read none rather than a partial one.
            let controlLength = header.msg_flags & Int32(MSG_CTRUNC) != 0 ? 0 : header.msg_controllen
            var ecn = ECNCodepoint.notECT
            var segmentSize = 0
            var info: PacketInfo?
            let port = localPort
            ECNControlMessage.forEach(controls + m * UDPReceiveBatch.controlStride, length: controlLength) {
                level, type, data, dataLength in
                if let c = ECNControlMessage.codepoint(level: level, type: type, data: data, length: dataLength) {
                    ecn = c
                } else if let s = UDPSegmentation.groSegmentSize(level: level, type: type, data: data, length: dataLength) {
                    segmentSize = s
                } else if let p = PacketInfoControlMessage.packetInfo(level: level, type: type, data: data, length: dataLength, port: port)
                {
                    info = p
                }
            }
            packetInfos[m] = info
            sources[m] = source
            codepoints[m] = ecn
            segmentSizes[m] = segmentSize
            // udp(7) UDP_GRO: the buffer holds datagrams of segmentSize bytes, the last one shorter
            // or equal; without the message it is one datagram.
            let step = segmentSize > 0 ? segmentSize : max(length, 1)
            var offset = 0
            while offset < length {
                guard count < datagramCapacity else {
                    truncatedDatagrams += 1
                    break
                }
                let n = min(step, length - offset)
                datagrams[count] = (Int32(m), Int32(offset), Int32(n))
                count += 1
                offset += n
            }
            if length == 0 {
                // A zero-length datagram is a datagram too.
                guard count < datagramCapacity else { continue }
                datagrams[count] = (Int32(m), 0, 0)
                count += 1
            }
        }
    }
}

extension UDPSocket {
    /// Receives what is waiting, up to the batch's message capacity, in one recvmmsg(2); returns
    /// the number of datagrams now in the batch (GRO buffers split), 0 when nothing was waiting.
    /// Where the kernel lacks recvmmsg (ENOSYS), recvmsg fills the same buffers one by one.
    public func receive(into batch: UDPReceiveBatch) throws -> Int {
        batch.prepare()
        batch.localPort = localPort
        var received = 0
        if multipleMessageReceive {
            while true {
                let n = CLinuxNet_recvmmsg(fd, batch.messages, UInt32(batch.messageCapacity), Int32(MSG_DONTWAIT), nil)
                if n >= 0 {
                    received = Int(n)
                    break
                }
                let e = errno
                if e == EAGAIN || e == EWOULDBLOCK { return 0 }
                // An ICMP error queued by an earlier send (unconnected socket): not this batch's.
                if e == ECONNREFUSED || e == EINTR { continue }
                if e == ENOSYS {
                    multipleMessageReceive = false
                    break
                }
                throw SystemError("recvmmsg", errno: e)
            }
        }
        if !multipleMessageReceive {
            while received < batch.messageCapacity {
                let n = recvmsg(fd, &batch.messages[received].msg_hdr, Int32(MSG_DONTWAIT))
                if n >= 0 {
                    batch.messages[received].msg_len = UInt32(n)
                    received += 1
                    continue
                }
                let e = errno
                if e == EAGAIN || e == EWOULDBLOCK { break }
                if e == ECONNREFUSED || e == EINTR { continue }
                if received > 0 { break }
                throw SystemError("recvmsg", errno: e)
            }
        }
        batch.collect(received)
        return batch.count
    }
}
