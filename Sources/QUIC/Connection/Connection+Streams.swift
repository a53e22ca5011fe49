// The stream and datagram API the application uses (RFC 9000 §2-§4, RFC 9221), and the stream
// bookkeeping behind it: opening within the peer's limits, flow control credit, and cleanup.
import Congestion

public struct StreamError: Error, Equatable, CustomStringConvertible {
    public var description: String
    init(_ d: String) { description = d }
}

extension Connection {
    // MARK: - Opening streams

    /// Opens a new local stream, or returns nil if the peer's stream limit is reached
    /// (RFC 9000 §4.6; a STREAMS_BLOCKED is sent).
    public func openStream(bidirectional: Bool = true) -> UInt64? {
        let index = bidirectional ? nextLocalBidiIndex : nextLocalUniIndex
        let limit = bidirectional ? peerMaxStreamsBidi : peerMaxStreamsUni
        guard index < limit else { return nil }
        let id = index << 2 | (bidirectional ? 0 : 2) | (isServer ? 1 : 0)
        if bidirectional { nextLocalBidiIndex += 1 } else { nextLocalUniIndex += 1 }
        let s = Stream(id: id, isServer: isServer, sendLimit: initialSendLimit(for: id), recvWindow: config.initialMaxStreamData)
        streams[id] = s
        return id
    }

    /// Number of streams the peer still lets us open.
    public func availableStreams(bidirectional: Bool) -> UInt64 {
        bidirectional
            ? peerMaxStreamsBidi - min(peerMaxStreamsBidi, nextLocalBidiIndex)
            : peerMaxStreamsUni - min(peerMaxStreamsUni, nextLocalUniIndex)
    }

    /// Returns the stream, creating peer-initiated streams (and all lower-numbered ones of the
    /// same type, RFC 9000 §3.2) on first reference.
    func streamForReceivedFrame(_ id: UInt64, frameType: UInt64, sending: Bool) throws -> Stream? {
        if let s = streams[id] { return s }
        let local = StreamID.isLocal(id, isServer: isServer)
        let bidi = StreamID.isBidirectional(id)
        if local {
            // RFC 9000 §19.4/§19.8/§19.13: a receive-side frame for one of our unidirectional streams
            // (send-only) is a STREAM_STATE_ERROR, even once the stream is closed and forgotten.
            if !bidi && !sending {
                throw TransportError(.streamStateError, frameType: frameType, "frame for the receive side of send-only stream \(id)")
            }
            // RFC 9000 §19.8/§19.10: a frame for a local stream we have not opened is STREAM_STATE_ERROR.
            let next = bidi ? nextLocalBidiIndex : nextLocalUniIndex
            if id >> 2 >= next { throw TransportError(.streamStateError, frameType: frameType, "stream \(id) not opened") }
            return nil  // already closed and forgotten
        }
        // RFC 9000 §19.8: receiving STREAM on a peer's unidirectional stream we can't... (fine);
        // RFC 9000 §19.10/§19.4: MAX_STREAM_DATA/STOP_SENDING for a receive-only stream is an error.
        if !bidi && sending {
            throw TransportError(.streamStateError, frameType: frameType, "frame for the send side of receive-only stream \(id)")
        }
        let index = id >> 2
        let opened = bidi ? remoteStreamsOpenedBidi : remoteStreamsOpenedUni
        if index < opened { return nil }  // closed already
        let limit = bidi ? localMaxStreamsBidi : localMaxStreamsUni
        // RFC 9000 §4.6: a stream beyond the advertised limit is a STREAM_LIMIT_ERROR.
        guard index < limit else { throw TransportError(.streamLimitError, frameType: frameType, "stream \(id) exceeds limit \(limit)") }
        var s: Stream?
        for i in opened...index {
            let sid = i << 2 | (id & 0x3)
            let st = Stream(id: sid, isServer: isServer, sendLimit: initialSendLimit(for: sid), recvWindow: config.initialMaxStreamData)
            streams[sid] = st
            emit(.streamOpened(id: sid))
            s = st
        }
        if bidi { remoteStreamsOpenedBidi = index + 1 } else { remoteStreamsOpenedUni = index + 1 }
        return s
    }

    // MARK: - Writing

    /// Queues bytes on a stream (and optionally its FIN). Buffers without limit: the application
    /// paces itself with `streamSendBufferedBytes`.
    public func writeStream(_ id: UInt64, _ data: [UInt8], fin: Bool = false) throws {
        guard let s = streams[id], s.canSend else { throw StreamError("stream \(id) is not writable") }
        guard !s.finWritten, s.resetToSend == nil else { throw StreamError("stream \(id) already finished or reset") }
        s.send.append(data)
        if fin { s.finWritten = true }
        scheduleSend(id)
        noteFlowControlBlocking(s)
    }

    /// Bytes written on a stream and not yet acknowledged.
    public func streamSendBufferedBytes(_ id: UInt64) -> Int { streams[id]?.send.bufferedBytes ?? 0 }

    /// RFC 9000 §3.1: abruptly end the sending part (RESET_STREAM).
    public func resetStream(_ id: UInt64, errorCode: UInt64) {
        guard let s = streams[id], s.canSend, s.resetToSend == nil, !s.finAcked else { return }
        s.resetToSend = errorCode
        scheduleSend(id)
    }

    /// RFC 9000 §3.5: ask the peer to stop sending (STOP_SENDING).
    public func stopSending(_ id: UInt64, errorCode: UInt64) {
        guard let s = streams[id], s.canReceive, s.resetReceived == nil, !s.recv.allDataReceived else { return }
        s.stopSendingToSend = errorCode
        s.lastStopSendingCode = errorCode
    }

    // MARK: - Reading

    /// Reads up to `maxBytes` from a stream. `fin` is true once all data up to the FIN was read.
    public func readStream(_ id: UInt64, maxBytes: Int = Int.max) -> (data: [UInt8], fin: Bool)? {
        guard let s = streams[id], s.canReceive else { return nil }
        let data = s.recv.read(max: maxBytes)
        if !data.isEmpty {
            dataConsumed += UInt64(data.count)
            // RFC 9000 §4.2: extend credit once half the window is consumed.
            if s.recv.finalSize == nil && s.recvLimit - s.recv.readOffset < s.recvWindow / 2 {
                s.recvLimit = s.recv.readOffset + s.recvWindow
                s.maxStreamDataToSend = true
            }
            if localMaxData - dataConsumed < config.initialMaxData / 2 {
                localMaxData = dataConsumed + config.initialMaxData
                maxDataToSend = true
            }
        }
        let fin = s.recv.isFinished
        if fin && !s.finDelivered {
            s.finDelivered = true
            maybeCollectStream(s)
        }
        return (data, fin)
    }

    /// The IDs of streams that exist (open or not yet collected).
    public var openStreamIDs: [UInt64] { Array(streams.keys).sorted() }

    // MARK: - Internals

    func scheduleSend(_ id: UInt64) {
        if !sendQueue.contains(id) { sendQueue.append(id) }
    }

    /// Forget a stream whose both halves are done; credit the peer a new stream (RFC 9000 §4.6).
    func maybeCollectStream(_ s: Stream) {
        guard s.isClosed, streams[s.id] != nil else { return }
        streams[s.id] = nil
        if !StreamID.isLocal(s.id, isServer: isServer) {
            if s.isBidirectional {
                closedRemoteBidi += 1
                localMaxStreamsBidi = closedRemoteBidi + config.initialMaxStreamsBidi
                maxStreamsBidiToSend = true
            } else {
                closedRemoteUni += 1
                localMaxStreamsUni = closedRemoteUni + config.initialMaxStreamsUni
                maxStreamsUniToSend = true
            }
        }
    }

    /// RFC 9001 §6: start a key update (allowed once the handshake is confirmed and the current
    /// phase has been acknowledged). Returns false if not allowed yet; it is then retried.
    @discardableResult
    public func initiateKeyUpdate() -> Bool {
        keyUpdate.updateRequested = true
        return tryStartKeyUpdate()
    }

    func tryStartKeyUpdate() -> Bool {
        guard keyUpdate.updateRequested, handshakeConfirmed, keyUpdate.currentPhaseAcked,
            let current = writeKeys[EncryptionLevel.application.rawValue], keyUpdate.nextRead != nil,
            keyUpdate.readPhase == keyUpdate.writePhase
        else { return false }
        writeKeys[EncryptionLevel.application.rawValue] = current.nextGeneration()
        keyUpdate.writePhase.toggle()
        for p in paths.values { p.keyPhaseStartPN = p.space.nextPacketNumber }
        keyUpdate.currentPhaseAcked = false
        keyUpdate.updateRequested = false
        keyUpdate.generation += 1
        return true
    }
}
