import CLinuxNet
// Batched UDP send: the last step of the send path (core → batch → socket). Datagrams are copied
// into one buffer as they come; consecutive ones to the same destination with the same ECN
// codepoint and size form a train that leaves as one GSO send (UDP_SEGMENT, UDPSegmentation.swift;
// the last segment may be shorter), and all trains of a flush go in one sendmmsg(2). Where the
// kernel refuses GSO, every datagram is its own message of the sendmmsg, from then on.
import Glibc
import QUIC

/// The outgoing datagrams of one socket, with every buffer allocated once: nothing is allocated
/// per datagram or per flush.
public final class UDPSendBatch {
    /// Counters since the batch was made.
    public struct Statistics: Sendable, Equatable {
        /// Datagrams handed to the kernel.
        public var datagrams = 0
        /// Messages handed to the kernel (a GSO send counts once).
        public var messages = 0
        /// Of those, GSO sends of more than one segment.
        public var segmentedMessages = 0
        /// sendmmsg / sendmsg calls.
        public var calls = 0
        /// Datagrams dropped: the socket buffer was full (EAGAIN / ENOBUFS), or the kernel refused
        /// one (EMSGSIZE) or reported an ICMP error (ECONNREFUSED, unreachable) for it.
        public var dropped = 0
        /// Of those, datagrams larger than the interface's MTU (EMSGSIZE).
        public var tooLarge = 0
        public init() {}

        /// Adds another batch's counters (several sockets' totals in one line of status).
        public mutating func add(_ other: Statistics) {
            datagrams += other.datagrams
            messages += other.messages
            segmentedMessages += other.segmentedMessages
            calls += other.calls
            dropped += other.dropped
            tooLarge += other.tooLarge
        }
    }

    public let socket: UDPSocket
    /// Datagrams the batch holds before `append` flushes by itself.
    public let capacity: Int
    /// Segments per GSO send (at most the kernel's 64).
    public let maxSegments: Int
    public private(set) var statistics = Statistics()
    /// The smallest datagram the kernel refused as larger than the interface's MTU (EMSGSIZE;
    /// with UDP GSO, EINVAL for a segment size above it) since the last `takeRefusedSize`. The
    /// owner tells the path's MTU discovery: the interface itself says it cannot carry that size.
    public private(set) var refusedSize: Int?
    /// Datagrams waiting for `flush`.
    public var count: Int { datagramCount }
    public var isEmpty: Bool { datagramCount == 0 }

    /// One train: datagrams first..<first+count, contiguous in `data` from `offset`, all of
    /// `segmentSize` bytes but the last, which may be shorter (and then ends the train).
    private struct Train {
        var destination: SocketAddress
        var ecn: ECNCodepoint
        var markAsIPv4: Bool
        var segmentSize: Int
        var first: Int
        var count: Int
        var offset: Int
        var bytes: Int
        var closed: Bool
    }

    private static let controlStride = ECNControlMessage.sendCapacity + UDPSegmentation.segmentMessageSpace
    private let dataCapacity: Int
    private let data: UnsafeMutableRawPointer
    private var used = 0
    private var datagramCount = 0
    private let trains: UnsafeMutablePointer<Train>
    private var trainCount = 0
    private let names: UnsafeMutablePointer<sockaddr_storage>
    private let nameLengths: UnsafeMutablePointer<socklen_t>
    private let messages: UnsafeMutablePointer<CLinuxNet_mmsghdr>
    private let iovecs: UnsafeMutablePointer<iovec>
    private let controls: UnsafeMutableRawPointer
    /// Per built message: its train and its datagram count.
    private let messageTrain: UnsafeMutablePointer<Int>
    private let messageDatagrams: UnsafeMutablePointer<Int>
    /// A GSO train the kernel refused with an error that may mean either "no GSO here" or "segment
    /// larger than the MTU": it goes again one datagram per message, and how a full-size one fares
    /// tells which (`verdictOnSegmentation`).
    private var splitTrain: Int?

    /// - Parameters:
    ///   - socket: where the batch sends.
    ///   - capacity: datagrams held before `append` flushes (the messages of one sendmmsg).
    ///   - maxSegments: segments per GSO send, 1...64 (the kernel's UDP_MAX_SEGMENTS).
    public init(socket: UDPSocket, capacity: Int = 128, maxSegments: Int = 64) {
        precondition(capacity > 0 && (1...UDPSegmentation.maxSegments).contains(maxSegments))
        self.socket = socket
        self.capacity = capacity
        self.maxSegments = maxSegments
        // Room for `capacity` full-size datagrams, and at least the largest one UDP can carry.
        dataCapacity = max(capacity * 1500, 2 * 65536)
        data = .allocate(byteCount: dataCapacity, alignment: 64)
        trains = .allocate(capacity: capacity)
        names = .allocate(capacity: capacity)
        names.initialize(repeating: sockaddr_storage(), count: capacity)
        nameLengths = .allocate(capacity: capacity)
        nameLengths.initialize(repeating: 0, count: capacity)
        messages = .allocate(capacity: capacity)
        messages.initialize(repeating: CLinuxNet_mmsghdr(), count: capacity)
        iovecs = .allocate(capacity: capacity)
        iovecs.initialize(repeating: iovec(), count: capacity)
        controls = .allocate(byteCount: capacity * UDPSendBatch.controlStride, alignment: MemoryLayout<Int>.alignment)
        messageTrain = .allocate(capacity: capacity)
        messageTrain.initialize(repeating: 0, count: capacity)
        messageDatagrams = .allocate(capacity: capacity)
        messageDatagrams.initialize(repeating: 0, count: capacity)
    }

    deinit {
        data.deallocate()
        trains.deallocate()
        names.deallocate()
        nameLengths.deallocate()
        messages.deallocate()
        iovecs.deallocate()
        controls.deallocate()
        messageTrain.deallocate()
        messageDatagrams.deallocate()
    }

    /// Copies one datagram into the batch, to `destination` with `ecn` in its IP header (RFC 9000
    /// §13.4). Flushes first when the batch is full; returns false if that flush found the socket
    /// buffer full (the datagrams it could not send were dropped, as a network would), so the
    /// caller may stop producing until the socket drains.
    @discardableResult
    public func append(_ bytes: UnsafeRawBufferPointer, to destination: SocketAddress, ecn: ECNCodepoint = .notECT) throws -> Bool {
        guard bytes.count <= UDPSegmentation.maxSendBytes else {
            statistics.dropped += 1
            return true
        }
        var sent = true
        if datagramCount == capacity || used + bytes.count > dataCapacity { sent = try flush() }
        if bytes.count > 0 { (data + used).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
        if trainCount > 0, canExtend(trains[trainCount - 1], with: bytes.count, to: destination, ecn: ecn) {
            trains[trainCount - 1].count += 1
            trains[trainCount - 1].bytes += bytes.count
            if bytes.count < trains[trainCount - 1].segmentSize { trains[trainCount - 1].closed = true }
        } else {
            let t = trainCount
            nameLengths[t] = UDPSocket.writeSockaddr(destination, to: UnsafeMutableRawPointer(names + t))
            (trains + t).initialize(
                to: Train(
                    destination: destination, ecn: ecn,
                    // Linux sends v4-mapped destinations of an IPv6 socket through the IPv4 stack (IP_TOS).
                    markAsIPv4: !destination.isIPv6 || UDPSocket.isV4Mapped(destination),
                    segmentSize: bytes.count, first: datagramCount, count: 1, offset: used, bytes: bytes.count,
                    closed: bytes.count == 0))
            trainCount += 1
        }
        used += bytes.count
        datagramCount += 1
        return sent
    }

    /// As `append(_:to:ecn:)` for the bytes of an array (e.g. a `Transmit`'s, which the next
    /// `poll` reuses: the batch keeps a copy).
    @discardableResult
    public func append(_ bytes: [UInt8], to destination: SocketAddress, ecn: ECNCodepoint = .notECT) throws -> Bool {
        try bytes.withUnsafeBytes { try append($0, to: destination, ecn: ecn) }
    }

    private func canExtend(_ t: Train, with length: Int, to destination: SocketAddress, ecn: ECNCodepoint) -> Bool {
        !t.closed && length <= t.segmentSize && t.count < maxSegments
            && t.bytes + length <= UDPSegmentation.maxSendBytes && t.ecn == ecn && t.destination == destination
    }

    /// Sends everything in the batch: one message per train with GSO, else one per datagram, in
    /// as few sendmmsg calls as the kernel takes. Returns false if the socket buffer was full; the
    /// rest is dropped then. Either way the batch is empty afterwards.
    @discardableResult
    public func flush() throws -> Bool {
        defer {
            used = 0
            datagramCount = 0
            trainCount = 0
        }
        guard datagramCount > 0 else { return true }
        defer { splitTrain = nil }
        var built = build(fromTrain: 0)
        var next = 0
        while next < built {
            let n = sendMessages(from: next, count: built - next)
            statistics.calls += 1
            if n > 0 {
                for m in next..<(next + n) {
                    account(message: m)
                    if messageTrain[m] == splitTrain { verdictOnSegmentation(message: m, refused: false) }
                }
                next += n
                continue
            }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS {
                for m in next..<built { statistics.dropped += messageDatagrams[m] }
                return false
            }
            if messageDatagrams[next] > 1 && (UDPSegmentation.isRefusal(e) || e == EMSGSIZE) {
                // udp(7): the kernel or the route cannot segment, or the segment size is above the
                // interface's MTU (EINVAL or EMSGSIZE): send this train one datagram per message
                // and see; a shorter last segment may still fit.
                splitTrain = messageTrain[next]
                built = build(fromTrain: messageTrain[next])
                next = 0
                continue
            }
            if e == EMSGSIZE || e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH {
                // Like a loss on the way: the datagram is gone, QUIC's recovery takes it from here.
                statistics.dropped += messageDatagrams[next]
                if e == EMSGSIZE {
                    statistics.tooLarge += messageDatagrams[next]
                    refusedSize = min(refusedSize ?? Int.max, iovecs[next].iov_len)
                    if messageTrain[next] == splitTrain { verdictOnSegmentation(message: next, refused: true) }
                }
                next += 1
                continue
            }
            throw SystemError("sendmmsg \(trains[messageTrain[next]].destination)", errno: e)
        }
        return true
    }

    /// The refused size since the last call, and forgets it.
    public func takeRefusedSize() -> Int? {
        defer { refusedSize = nil }
        return refusedSize
    }

    /// A full-size datagram of a split train was sent (`refused` false) or refused as too large:
    /// sent, the kernel could not segment (never ask this socket again); refused, the segments were
    /// too large for the interface, GSO is fine.
    private func verdictOnSegmentation(message m: Int, refused: Bool) {
        guard let t = splitTrain, iovecs[m].iov_len == trains[t].segmentSize else { return }
        if !refused { socket.segmentationOffload = false }
        splitTrain = nil
    }

    private func account(message m: Int) {
        statistics.messages += 1
        statistics.datagrams += messageDatagrams[m]
        if messageDatagrams[m] > 1 { statistics.segmentedMessages += 1 }
    }

    /// One sendmmsg, or one sendmsg where the kernel lacks sendmmsg (ENOSYS); messages sent, or
    /// -1 with errno.
    private func sendMessages(from first: Int, count: Int) -> Int {
        if socket.multipleMessageSend {
            let n = CLinuxNet_sendmmsg(socket.fd, messages + first, UInt32(count), 0)
            if n >= 0 || errno != ENOSYS { return Int(n) }
            socket.multipleMessageSend = false
        }
        let n = sendmsg(socket.fd, &messages[first].msg_hdr, 0)
        return n >= 0 ? 1 : -1
    }

    /// Fills `messages` from train `firstTrain` on: one per train while the socket may segment
    /// (but the split train), else one per datagram. Returns the number of messages.
    private func build(fromTrain firstTrain: Int) -> Int {
        var m = 0
        for t in firstTrain..<trainCount {
            let train = trains[t]
            if (socket.segmentationOffload && t != splitTrain) || train.count == 1 {
                fill(message: m, train: t, offset: train.offset, bytes: train.bytes, datagrams: train.count)
                m += 1
            } else {
                var offset = train.offset
                for d in 0..<train.count {
                    let length = d == train.count - 1 ? train.bytes - (offset - train.offset) : train.segmentSize
                    fill(message: m, train: t, offset: offset, bytes: length, datagrams: 1)
                    offset += length
                    m += 1
                }
            }
        }
        return m
    }

    private func fill(message m: Int, train t: Int, offset: Int, bytes: Int, datagrams: Int) {
        let train = trains[t]
        iovecs[m] = iovec(iov_base: data + offset, iov_len: bytes)
        let control = controls + m * UDPSendBatch.controlStride
        var controlLength = 0
        // Not-ECT is the kernel's default TOS / traffic class: no control message needed.
        if train.ecn != .notECT {
            controlLength += ECNControlMessage.writeMarking(train.ecn, ipv4: train.markAsIPv4, into: control)
        }
        if datagrams > 1 {
            controlLength += UDPSegmentation.writeSegmentSize(train.segmentSize, into: control + controlLength)
        }
        messages[m].msg_hdr = msghdr(
            msg_name: UnsafeMutableRawPointer(names + t), msg_namelen: nameLengths[t],
            msg_iov: iovecs + m, msg_iovlen: 1,
            msg_control: controlLength > 0 ? control : nil, msg_controllen: controlLength, msg_flags: 0)
        messages[m].msg_len = 0
        messageTrain[m] = t
        messageDatagrams[m] = datagrams
    }
}
