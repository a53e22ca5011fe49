// RFC 9000 §20: transport error codes, and the error value that closes a connection.
// Parsers throw `TransportError` so the connection can send the right CONNECTION_CLOSE.

public struct TransportErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public static let noError = TransportErrorCode(rawValue: 0x00)
    public static let internalError = TransportErrorCode(rawValue: 0x01)
    public static let connectionRefused = TransportErrorCode(rawValue: 0x02)
    public static let flowControlError = TransportErrorCode(rawValue: 0x03)
    public static let streamLimitError = TransportErrorCode(rawValue: 0x04)
    public static let streamStateError = TransportErrorCode(rawValue: 0x05)
    public static let finalSizeError = TransportErrorCode(rawValue: 0x06)
    public static let frameEncodingError = TransportErrorCode(rawValue: 0x07)
    public static let transportParameterError = TransportErrorCode(rawValue: 0x08)
    public static let connectionIDLimitError = TransportErrorCode(rawValue: 0x09)
    public static let protocolViolation = TransportErrorCode(rawValue: 0x0a)
    public static let invalidToken = TransportErrorCode(rawValue: 0x0b)
    public static let applicationError = TransportErrorCode(rawValue: 0x0c)
    public static let cryptoBufferExceeded = TransportErrorCode(rawValue: 0x0d)
    public static let keyUpdateError = TransportErrorCode(rawValue: 0x0e)
    public static let aeadLimitReached = TransportErrorCode(rawValue: 0x0f)
    public static let noViablePath = TransportErrorCode(rawValue: 0x10)
    /// RFC 9000 §20.1: 0x0100-0x01ff carry a TLS alert.
    public static func cryptoError(alert: UInt8) -> TransportErrorCode { TransportErrorCode(rawValue: 0x0100 + UInt64(alert)) }

    public var description: String {
        let names: [UInt64: String] = [
            0: "NO_ERROR", 1: "INTERNAL_ERROR", 2: "CONNECTION_REFUSED", 3: "FLOW_CONTROL_ERROR",
            4: "STREAM_LIMIT_ERROR", 5: "STREAM_STATE_ERROR", 6: "FINAL_SIZE_ERROR", 7: "FRAME_ENCODING_ERROR",
            8: "TRANSPORT_PARAMETER_ERROR", 9: "CONNECTION_ID_LIMIT_ERROR", 10: "PROTOCOL_VIOLATION",
            11: "INVALID_TOKEN", 12: "APPLICATION_ERROR", 13: "CRYPTO_BUFFER_EXCEEDED", 14: "KEY_UPDATE_ERROR",
            15: "AEAD_LIMIT_REACHED", 16: "NO_VIABLE_PATH",
        ]
        if let n = names[rawValue] { return n }
        if rawValue >= 0x100 && rawValue <= 0x1ff { return "CRYPTO_ERROR(alert \(rawValue - 0x100))" }
        return "0x" + String(rawValue, radix: 16)
    }
}

/// A connection error: the code and frame type go into CONNECTION_CLOSE (type 0x1c).
public struct TransportError: Error, Equatable, Sendable, CustomStringConvertible {
    public var code: TransportErrorCode
    public var frameType: UInt64
    public var reason: String

    public init(_ code: TransportErrorCode, frameType: UInt64 = 0, _ reason: String = "") {
        self.code = code
        self.frameType = frameType
        self.reason = reason
    }

    public var description: String {
        "\(code) (frame type 0x\(String(frameType, radix: 16))): \(reason)"
    }
}
