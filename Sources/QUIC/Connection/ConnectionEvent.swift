// What the connection tells its owner, drained with `Connection.pollEvent()`.

public enum ConnectionEvent: Equatable, Sendable {
    case handshakeCompleted(alpn: String?)
    /// The peer opened a stream.
    case streamOpened(id: UInt64)
    /// New data (or the FIN) can be read from a stream.
    case streamReadable(id: UInt64)
    /// A stream's send side has room again after flow control blocked it.
    case streamWritable(id: UInt64)
    case streamReset(id: UInt64, errorCode: UInt64)
    case stopSending(id: UInt64, errorCode: UInt64)
    case datagramReceived([UInt8])
    /// A datagram sent with a tag was acknowledged by the peer (it arrived).
    case datagramAcknowledged(tag: UInt64)
    /// A datagram sent with a tag was declared lost (or its path was abandoned); RFC 9221 §5.2:
    /// QUIC does not retransmit it, the owner may (the bonding layer's reinjection).
    case datagramLost(tag: UInt64)
    /// A TLS session the client can store to resume later (RFC 8446 §4.6.1).
    case sessionTicket([UInt8])
    /// The connection switched to a new peer address after validating it (RFC 9000 §9).
    case peerAddressChanged(SocketAddress)
    /// We issued a new connection ID (the endpoint routes packets for it to this connection).
    case connectionIDIssued(ConnectionID, StatelessResetToken)
    case connectionIDRetired(ConnectionID)
    /// draft-ietf-quic-multipath: the peer negotiated multipath (paths can be opened).
    case multipathNegotiated
    /// A path passed validation and carries traffic now.
    case pathValidated(pathID: UInt32)
    /// A path failed validation or was abandoned (by either side).
    case pathClosed(pathID: UInt32)
    /// The peer changed a path's status (backup or available).
    case peerPathStatus(pathID: UInt32, backup: Bool)
    /// Path MTU discovery (RFC 8899) changed the largest UDP payload the path sends: a probe of
    /// `mtu` bytes was acknowledged, or full-size packets stopped getting through and the path
    /// fell back to 1200. `Connection.maxDatagramPayloadSize(onPath:)` follows; a tunnel resizes
    /// its TUN MTU.
    case pathMTUChanged(pathID: UInt32, mtu: Int)
    case closed(ConnectionCloseReason)
}

public enum ConnectionCloseReason: Equatable, Sendable, CustomStringConvertible {
    case localTransport(code: TransportErrorCode, reason: String)
    case localApplication(code: UInt64, reason: String)
    case peerTransport(code: TransportErrorCode, frameType: UInt64, reason: String)
    case peerApplication(code: UInt64, reason: String)
    case idleTimeout
    case statelessReset
    case versionNegotiationFailed

    public var description: String {
        switch self {
        case .localTransport(let c, let r): return "closed locally: \(c) \(r)"
        case .localApplication(let c, let r): return "closed locally by application: code \(c) \(r)"
        case .peerTransport(let c, let f, let r): return "closed by peer: \(c) (frame 0x\(String(f, radix: 16))) \(r)"
        case .peerApplication(let c, let r): return "closed by peer application: code \(c) \(r)"
        case .idleTimeout: return "idle timeout"
        case .statelessReset: return "stateless reset received"
        case .versionNegotiationFailed: return "no common QUIC version"
        }
    }

    /// Closed without error (application code 0 or transport NO_ERROR).
    public var isClean: Bool {
        switch self {
        case .localApplication(let c, _), .peerApplication(let c, _): return c == 0
        case .localTransport(let c, _): return c == .noError
        case .peerTransport(let c, _, _): return c == .noError
        default: return false
        }
    }
}

/// A datagram to send: bytes, destination, and the path (and so the local socket) to send it from.
public struct Transmit: Sendable {
    public var bytes: [UInt8]
    public var destination: SocketAddress
    public var pathID: UInt32
    /// The local address the path was opened from (nil: the default socket).
    public var source: SocketAddress?
    /// The ECN codepoint to put in the IP header (RFC 9000 §13.4): ECT(0) while the path tests or
    /// trusts ECN. A sender that cannot set it per datagram may send all as not-ECT.
    public var ecn: ECNCodepoint
    public init(
        bytes: [UInt8], destination: SocketAddress, pathID: UInt32 = 0, source: SocketAddress? = nil,
        ecn: ECNCodepoint = .notECT
    ) {
        self.bytes = bytes
        self.destination = destination
        self.pathID = pathID
        self.source = source
        self.ecn = ecn
    }
}
