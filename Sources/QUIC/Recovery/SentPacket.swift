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
    var frames: [SentFrame]
    /// The path's delivery state when this packet left (delivery-rate samples, BBR).
    var delivery = DeliverySnapshot()
    /// Sent ECT(0)-marked (RFC 9000 §13.4.2 counts these).
    var ecnMarked = false
}
