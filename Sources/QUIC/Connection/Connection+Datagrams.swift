// Sending DATAGRAM frames (RFC 9221): from an array the owner hands over, or — the data plane's
// way — written by the owner straight into a slot the connection owns, so a TUN read lands where
// the packet builder copies it from and nothing is allocated or copied on the owner's side.
// Received datagrams are handed over in `Connection+Receive.swift` (`onDatagram`).

extension Connection {
    /// The largest datagram payload that fits one packet on the initial path (path 0) now.
    public var maxDatagramPayloadSize: Int { datagramRoom(path) }

    /// The largest datagram payload that fits one packet on path `id` now: it follows the path's
    /// MTU (`pathMTU(_:)`, `.pathMTUChanged`). nil when there is no such path.
    public func maxDatagramPayloadSize(onPath id: UInt32) -> Int? {
        guard let p = paths[id] else { return nil }
        return datagramRoom(p)
    }

    /// RFC 8899 §4.4: the MPS, what the PLPMTU leaves for a DATAGRAM payload (0 when the peer
    /// takes no datagrams).
    func datagramRoom(_ p: Path) -> Int {
        guard let peerMax = peerMaxDatagramFrameSize, peerMax > 0 else { return 0 }
        // 1-RTT short header: 1 + DCID + up to 4 PN bytes; AEAD tag 16; DATAGRAM frame header.
        let overhead = 1 + p.destinationCID.length + 4 + 16 + 3  // DATAGRAM 0x31 + 2-byte length
        return max(0, min(Int(peerMax) - 1, p.maxDatagramSize - overhead))
    }

    /// Datagrams waiting in the connection's shared queue.
    public var queuedDatagrams: Int { datagramsToSend.count }

    /// Zero-copy slots free for `sendDatagram(onPath:tag:_:)`.
    public var availableDatagramSlots: Int { datagramSlots.available }

    /// Queues an unreliable datagram on any path. The connection keeps a reference to `payload`
    /// (no copy) until it is sent.
    /// - Throws: `.notSupportedByPeer`, or `.tooLarge` (RFC 9221 §5: datagrams are never fragmented).
    public func sendDatagram(_ payload: [UInt8], tag: UInt64? = nil) throws(DatagramError) {
        try checkDatagramSize(payload.count)
        enqueueDatagram(QueuedDatagram(bytes: payload, tag: tag), onPath: nil)
    }

    /// Queues a datagram on one path (the bonding scheduler's choice); a path still being
    /// validated sends it once validated.
    /// - Throws: `.notSupportedByPeer`, `.tooLarge` (for that path's MTU), `.noSuchPath`, `.pathNotUsable`.
    public func sendDatagram(_ payload: [UInt8], onPath id: UInt32, tag: UInt64? = nil) throws(DatagramError) {
        guard let peerMax = peerMaxDatagramFrameSize, peerMax > 0 else { throw .notSupportedByPeer }
        let p = try checkDatagramPath(id)
        let max = datagramRoom(p)
        guard payload.count <= max else { throw .tooLarge(size: payload.count, max: max) }
        enqueueDatagram(QueuedDatagram(bytes: payload, tag: tag), onPath: id)
    }

    /// Queues a datagram whose payload `write` puts straight into connection-owned memory: the
    /// zero-copy send of a data plane (read the TUN device into the buffer at the offset that
    /// leaves room for the tunnel header, write the header in place, return the total).
    /// - Parameters:
    ///   - id: the path to send it on; nil = the shared queue (any path).
    ///   - tag: reported back in `.datagramAcknowledged` / `.datagramLost`.
    ///   - urgent: sent before the path's other queued datagrams (interactive traffic: a ping or
    ///     a call must not wait for the pacer to let out the bulk queued before it). Only with `id`.
    ///   - write: fills the buffer (`maxDatagramPayloadSize(onPath:)` bytes, `maxDatagramPayloadSize`
    ///     for the shared queue) from its start and returns the payload length; 0 queues nothing. The buffer is valid only during the call, and
    ///     `write` must not call back into the connection.
    /// - Returns: the payload length queued.
    /// - Throws: `.notSupportedByPeer`, `.noSuchPath`, `.pathNotUsable`, or `.noBufferSpace` when
    ///   every slot (`ConnectionConfiguration.datagramSlotCount`) holds a waiting datagram.
    /// - Precondition: `write` returns a length within the buffer.
    @discardableResult
    public func sendDatagram(
        onPath id: UInt32? = nil, tag: UInt64? = nil, urgent: Bool = false,
        _ write: (UnsafeMutableRawBufferPointer) -> Int
    ) throws(DatagramError) -> Int {
        guard let peerMax = peerMaxDatagramFrameSize, peerMax > 0 else { throw .notSupportedByPeer }
        let room: Int
        if let id { room = datagramRoom(try checkDatagramPath(id)) } else { room = datagramRoom(path) }
        let capacity = min(room, datagramSlots.slotSize)
        guard capacity > 0 else { throw .notSupportedByPeer }
        guard let slot = datagramSlots.take() else { throw .noBufferSpace }
        let length = write(datagramSlots.buffer(slot, length: capacity))
        precondition(length >= 0 && length <= capacity, "sendDatagram: write returned \(length) for a \(capacity)-byte buffer")
        guard length > 0 else {
            datagramSlots.release(slot)
            return 0
        }
        enqueueDatagram(QueuedDatagram(slot: slot, length: length, tag: tag), onPath: id, urgent: urgent)
        return length
    }

    // MARK: - Internals

    private func checkDatagramSize(_ size: Int) throws(DatagramError) {
        guard let peerMax = peerMaxDatagramFrameSize, peerMax > 0 else { throw .notSupportedByPeer }
        let max = maxDatagramPayloadSize
        guard size <= max else { throw .tooLarge(size: size, max: max) }
    }

    @discardableResult
    private func checkDatagramPath(_ id: UInt32) throws(DatagramError) -> Path {
        guard let p = paths[id] else { throw .noSuchPath(id) }
        guard p.state == .active || p.state == .validating else { throw .pathNotUsable(id) }
        return p
    }

    /// RFC 9221 §5: a full queue drops its oldest datagram (counted in `datagramsDropped`).
    private func enqueueDatagram(_ d: QueuedDatagram, onPath id: UInt32?, urgent: Bool = false) {
        let dropped: QueuedDatagram?
        if let id, let p = paths[id] {
            if urgent {
                dropped = p.urgentDatagrams.append(d, limit: config.datagramSendQueueLimit)
            } else {
                dropped = p.datagrams.append(d, limit: config.datagramSendQueueLimit)
            }
        } else {
            dropped = datagramsToSend.append(d, limit: config.datagramSendQueueLimit)
        }
        if let dropped {
            releaseSlot(of: dropped)
            stats.datagramsDropped += 1
        }
    }

    /// A queued datagram leaves its queue unsent (dropped) or sent: its slot is free again.
    func releaseSlot(of d: QueuedDatagram) {
        if d.slot >= 0 { datagramSlots.release(d.slot) }
    }

    /// Appends a queued datagram's payload to the packet being built and frees its slot.
    func writeDatagramPayload(_ d: QueuedDatagram) {
        if d.slot >= 0 {
            datagramWriter.bytes.append(contentsOf: UnsafeRawBufferPointer(datagramSlots.buffer(d.slot, length: Int(d.slotLength))))
            datagramSlots.release(d.slot)
        } else {
            datagramWriter.writeBytes(d.bytes)
        }
    }
}
