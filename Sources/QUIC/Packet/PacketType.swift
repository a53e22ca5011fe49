// RFC 9000 §17: the packet types, and the three packet number spaces they map to (§12.3).

public enum PacketType: Sendable, Equatable {
    case initial
    case zeroRTT
    case handshake
    case retry
    case versionNegotiation
    case oneRTT

    /// Long header type bits (RFC 9000 §17.2, Table 5) for QUIC v1.
    public var longHeaderTypeBits: UInt8? {
        switch self {
        case .initial: return 0
        case .zeroRTT: return 1
        case .handshake: return 2
        case .retry: return 3
        default: return nil
        }
    }
}

/// RFC 9000 §12.3: packet number spaces.
public enum PacketNumberSpaceID: Int, Sendable, CaseIterable {
    case initial = 0
    case handshake = 1
    case applicationData = 2
}

extension PacketType {
    public var space: PacketNumberSpaceID? {
        switch self {
        case .initial: return .initial
        case .handshake: return .handshake
        case .zeroRTT, .oneRTT: return .applicationData
        case .retry, .versionNegotiation: return nil
        }
    }
}
