// RFC 9002 §A.1.1: what a sender remembers about each packet until it is acknowledged or lost,
// including which frames to retransmit (QUIC retransmits information, never packets: RFC 9000 §13.3).
import Congestion

/// The retransmittable content of a sent packet.
enum SentFrame {
    case crypto(offset: UInt64, length: Int)
    case stream(id: UInt64, offset: UInt64, length: Int, fin: Bool)
    case resetStream(id: UInt64)
    case stopSending(id: UInt64)
    case maxData
    case maxStreamData(id: UInt64)
    case maxStreams(bidirectional: Bool)
    case dataBlocked
    case streamDataBlocked(id: UInt64)
    case streamsBlocked(bidirectional: Bool)
    case newConnectionID(sequence: UInt64)
    case retireConnectionID(sequence: UInt64)
    case handshakeDone
    case newToken
    /// The largest packet number an ACK frame in this packet acknowledged (RFC 9000 §13.2.4).
    case ack(largest: UInt64)
    case ping
    /// A DATAGRAM frame; the owner's tag, if it wants to hear about its fate.
    case datagram(tag: UInt64?)
    /// `count` DATAGRAM frames whose tags run from `firstTag` (a packet full of small datagrams,
    /// e.g. the inner TCP's ACKs, takes one entry instead of spilling onto the heap).
    case datagrams(firstTag: UInt64, count: UInt32)
    case pathChallenge
    case pathResponse
    case connectionClose
    // draft-ietf-quic-multipath
    case pathNewConnectionID(pathID: UInt32, sequence: UInt64)
    case pathRetireConnectionID(pathID: UInt32, sequence: UInt64)
    case pathStatus(pathID: UInt32)
    case pathAbandon(pathID: UInt32)
    case maxPathID
}

struct SentPacket {
    var packetNumber: UInt64
    var timeSent: Timestamp
    var size: Int
    var ackEliciting: Bool
    var inFlight: Bool
    var frames: SentFrames
    /// The path's delivery state when this packet left (delivery-rate samples, BBR).
    var delivery = DeliverySnapshot()
    /// Sent ECT(0)-marked (RFC 9000 §13.4.2 counts these).
    var ecnMarked = false
    /// A PMTU probe (RFC 9000 §14.4): its loss is no congestion signal, and it does not arm the
    /// probe timeout (its own PROBE_TIMER covers it, `Connection+PathMTU.swift`).
    var isPMTUProbe = false
}

/// The frames of one sent packet, the first four held inline: a packet of the tunnel carries an
/// ACK and a DATAGRAM or two, so recording it allocates nothing (an array would allocate per
/// packet). A packet with more frames (stream data, control frames) spills into `overflow`.
struct SentFrames: RandomAccessCollection {
    private var f0 = SentFrame.ping, f1 = SentFrame.ping, f2 = SentFrame.ping, f3 = SentFrame.ping
    private var overflow: [SentFrame] = []
    private(set) var count = 0

    static let inlineCapacity = 4

    init() {}
    init(_ frames: [SentFrame]) { for f in frames { append(f) } }

    var startIndex: Int { 0 }
    var endIndex: Int { count }

    subscript(i: Int) -> SentFrame {
        precondition(i >= 0 && i < count, "SentFrames index out of range")
        switch i {
        case 0: return f0
        case 1: return f1
        case 2: return f2
        case 3: return f3
        default: return overflow[i - SentFrames.inlineCapacity]
        }
    }

    /// PATH_CHALLENGE or PATH_RESPONSE among the frames (RFC 9000 §8.2.1: such datagrams are padded).
    var containsPathProbe: Bool {
        for i in 0..<count {
            switch self[i] {
            case .pathChallenge, .pathResponse: return true
            default: continue
            }
        }
        return false
    }

    /// A tagged DATAGRAM frame: extends the last entry when the tags follow on.
    mutating func appendDatagram(tag: UInt64?) {
        guard let tag, count > 0 else {
            append(.datagram(tag: tag))
            return
        }
        switch self[count - 1] {
        case .datagram(let t?) where t &+ 1 == tag:
            replaceLast(.datagrams(firstTag: t, count: 2))
        case .datagrams(let first, let n) where first &+ UInt64(n) == tag && n < UInt32.max:
            replaceLast(.datagrams(firstTag: first, count: n + 1))
        default:
            append(.datagram(tag: tag))
        }
    }

    private mutating func replaceLast(_ f: SentFrame) {
        switch count - 1 {
        case 0: f0 = f
        case 1: f1 = f
        case 2: f2 = f
        case 3: f3 = f
        default: overflow[count - 1 - SentFrames.inlineCapacity] = f
        }
    }

    mutating func append(_ f: SentFrame) {
        switch count {
        case 0: f0 = f
        case 1: f1 = f
        case 2: f2 = f
        case 3: f3 = f
        default: overflow.append(f)
        }
        count += 1
    }
}
