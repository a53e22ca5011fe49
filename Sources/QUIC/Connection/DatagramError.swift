// Typed errors of the datagram and path API, for an owner (the daemon, the tunnel) that switches
// on what went wrong instead of reading a message.

/// Why a DATAGRAM (RFC 9221) was not queued.
public enum DatagramError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The peer's transport parameters do not carry max_datagram_frame_size (RFC 9221 §3), or
    /// the handshake has not delivered them yet.
    case notSupportedByPeer
    /// The payload does not fit one packet on the path now (RFC 9221 §5: never fragmented).
    case tooLarge(size: Int, max: Int)
    /// No path has this ID (never opened, or forgotten after it closed).
    case noSuchPath(UInt32)
    /// The path is abandoned or closed: nothing more will be sent on it.
    case pathNotUsable(UInt32)
    /// Every slot of the zero-copy send holds a queued datagram: the owner should wait for
    /// `poll` to send some (back-pressure, e.g. stop reading the TUN device for now).
    case noBufferSpace

    public var description: String {
        switch self {
        case .notSupportedByPeer: return "peer does not accept DATAGRAM frames"
        case .tooLarge(let size, let max): return "datagram of \(size) bytes exceeds the maximum \(max)"
        case .noSuchPath(let id): return "no path \(id)"
        case .pathNotUsable(let id): return "path \(id) is abandoned or closed"
        case .noBufferSpace: return "no free datagram slot"
        }
    }
}

/// Why a per-path operation failed.
public enum PathError: Error, Equatable, Sendable, CustomStringConvertible {
    case noSuchPath(UInt32)

    public var description: String {
        switch self {
        case .noSuchPath(let id): return "no path \(id)"
        }
    }
}
