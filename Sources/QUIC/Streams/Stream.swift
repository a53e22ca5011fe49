// One QUIC stream's state (RFC 9000 §2-§4): its send half, receive half and stream-level flow
// control in both directions. Stream IDs encode initiator and direction (§2.1).

public enum StreamID {
    public static func isBidirectional(_ id: UInt64) -> Bool { id & 0x2 == 0 }
    public static func isClientInitiated(_ id: UInt64) -> Bool { id & 0x1 == 0 }
    public static func isLocal(_ id: UInt64, isServer: Bool) -> Bool { isClientInitiated(id) != isServer }
}

final class Stream {
    let id: UInt64
    let isBidirectional: Bool
    /// Can we send on it (ours, or the peer's bidirectional)?
    let canSend: Bool
    /// Can we receive on it?
    let canReceive: Bool

    // MARK: Send half
    var send = SendBuffer()
    /// Peer's limit on the bytes we may send (MAX_STREAM_DATA).
    var sendLimit: UInt64
    var finWritten = false
    var finSent = false
    var finAcked = false
    /// RESET_STREAM to send (error code) and whether it was acknowledged.
    var resetToSend: UInt64?
    var resetSentFinalSize: UInt64?
    var resetAcked = false
    var streamDataBlockedSentAt: UInt64?
    /// The stream limit to report in a STREAM_DATA_BLOCKED frame (RFC 9000 §4.1), once per limit.
    var streamDataBlockedToSend: UInt64?

    // MARK: Receive half
    var recv = ReceiveBuffer()
    /// Our limit on what the peer may send (advertised with MAX_STREAM_DATA).
    var recvLimit: UInt64
    let recvWindow: UInt64
    var maxStreamDataToSend = false
    /// STOP_SENDING to send (error code).
    var stopSendingToSend: UInt64?
    var lastStopSendingCode: UInt64 = 0
    var resetReceived: (errorCode: UInt64, finalSize: UInt64)?
    var finDelivered = false

    init(id: UInt64, isServer: Bool, sendLimit: UInt64, recvWindow: UInt64) {
        self.id = id
        isBidirectional = StreamID.isBidirectional(id)
        let local = StreamID.isLocal(id, isServer: isServer)
        canSend = isBidirectional || local
        canReceive = isBidirectional || !local
        self.sendLimit = sendLimit
        self.recvLimit = recvWindow
        self.recvWindow = recvWindow
    }

    /// Something to put on the wire for this stream's send half?
    var wantsToSend: Bool {
        guard canSend, resetSentFinalSize == nil else { return resetToSend != nil && resetSentFinalSize == nil }
        if resetToSend != nil { return true }
        return send.hasLostData || (send.unsentNewBytes > 0 && send.nextNewOffset < sendLimit)
            || (finWritten && !finSent && send.unsentNewBytes == 0)
    }

    /// Something `wantsToSend` that can go on the wire now, given the connection-level room for
    /// new bytes (RFC 9000 §4.1): lost data, a reset or a bare FIN need none.
    func canSendNow(connectionRoom: UInt64) -> Bool {
        guard wantsToSend else { return false }
        if resetToSend != nil || send.hasLostData || (finWritten && !finSent && send.unsentNewBytes == 0) { return true }
        return connectionRoom > 0
    }

    /// Both halves are finished and their final state acknowledged or consumed.
    var isClosed: Bool {
        // RFC 9000 §3.1 "Data Recvd": the FIN and every byte before it acknowledged.
        let sendDone = !canSend || (finAcked && send.allAcknowledged) || resetAcked
        let recvDone = !canReceive || finDelivered || resetReceived != nil
        return sendDone && recvDone
    }
}
