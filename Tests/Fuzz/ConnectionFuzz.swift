// libFuzzer harness for a whole server Connection past its handshake (not only its parsers).
// Built by scripts/fuzz.sh (target `connection`) against the QUIC module and BoringSSL; never part
// of the SwiftPM test target.
//
// Per input: a fresh client and server (seeded randomness, the test fixture certificate) finish a
// real handshake in memory with multipath negotiated. The input is then read as a small program:
// each step appends one frame to the packet being built (structured frames from the Frame
// encoder with fuzzer-chosen fields, deliberately malformed encodings, raw byte runs), sends the
// packet, lets time pass, or makes the server application read, write, open streams or send
// datagrams. A packet is protected with the client's 1-RTT write keys (correct packet numbers,
// header protection, path ID nonce) and handed to the server; everything the server answers is
// polled (and dropped) between packets.
//
// Oracle. Before each packet the harness takes the server's receive-side state
// (`testingSnapshot`) and predicts, frame by frame, what RFC 9000 and draft-ietf-quic-multipath
// require: the first frame that must close the connection names the error code(s) it may close
// with; a packet of frames that are all valid must not close it; where the harness cannot be
// sure (a SHOULD, a MAY, state it does not model) it stops predicting for that packet. A close
// with a code the oracle did not allow, a missing close, or a close on a valid packet is a
// fatalError. After every step the server's per-connection state must stay within bounds that
// follow from the limits it advertised (streams, buffered bytes, queued frames, paths).
import Congestion
@_spi(Testing) import QUIC

#if canImport(Glibc)
    import Glibc
#endif

// MARK: - Fixed setup (once per process)

private let fixtures: String = {
    if let env = getenv("TQUIC_FUZZ_FIXTURES") { return String(cString: env) }
    var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(2)  // Fuzz/ConnectionFuzz.swift
    return parts.joined(separator: "/") + "/QUICTests/Fixtures"
}()

private let serverTLS: TLSContext = {
    var c = TLSConfiguration(alpnProtocols: ["tquic-fuzz"])
    c.certificateChainFile = fixtures + "/server.pem"
    c.privateKeyFile = fixtures + "/server.key"
    do {
        let ctx = try TLSContext(configuration: c, isServer: true)
        ctx.testingUseX25519Only()
        return ctx
    } catch { fatalError("server TLS context (\(fixtures)): \(error)") }
}()

private let clientTLS: TLSContext = {
    let c = TLSConfiguration(alpnProtocols: ["tquic-fuzz"])  // no verification: the handshake is not under test
    do {
        let ctx = try TLSContext(configuration: c, isServer: false)
        ctx.testingUseX25519Only()
        return ctx
    } catch { fatalError("client TLS context: \(error)") }
}()

/// Small limits, so that inputs of a few hundred bytes reach them.
private let streamWindow: UInt64 = 2048
private let connectionWindow: UInt64 = 6144
private let maxStreamsBidi: UInt64 = 4
private let maxStreamsUni: UInt64 = 2
private let maxPathID: UInt32 = 3
private let cidLimit: UInt64 = 4

private func configuration(_ tls: TLSContext) -> ConnectionConfiguration {
    var c = ConnectionConfiguration(tls: tls)
    c.initialMaxData = connectionWindow
    c.initialMaxStreamData = streamWindow
    c.initialMaxStreamsBidi = maxStreamsBidi
    c.initialMaxStreamsUni = maxStreamsUni
    c.activeConnectionIDLimit = cidLimit
    c.maxPathID = maxPathID
    c.maxDatagramFrameSize = 1200
    c.datagramSendQueueLimit = 64
    return c
}

private let clientAddress = SocketAddress(ip: [10, 0, 0, 1], port: 40000)
private let serverAddress = SocketAddress(ip: [10, 0, 0, 2], port: 443)

// MARK: - Error codes

private let frameEncodingError = TransportErrorCode.frameEncodingError.rawValue
private let protocolViolationError = TransportErrorCode.protocolViolation.rawValue
private let flowControlError = TransportErrorCode.flowControlError.rawValue
private let streamStateError = TransportErrorCode.streamStateError.rawValue
private let streamLimitError = TransportErrorCode.streamLimitError.rawValue
private let finalSizeError = TransportErrorCode.finalSizeError.rawValue
private let connectionIDLimitError = TransportErrorCode.connectionIDLimitError.rawValue
private let cryptoBufferExceededError = TransportErrorCode.cryptoBufferExceeded.rawValue

/// What the oracle says a frame (and so the packet, at its first non-valid frame) must do.
private enum Verdict {
    /// Processed without closing the connection.
    case valid
    /// Must close the connection with one of these transport error codes (an RFC MUST).
    case mustClose(Set<UInt64>, String)
    /// May close with one of these codes, or not close (a SHOULD/MAY); `nil`: anything goes.
    case mayClose(Set<UInt64>?, String)
    /// A CONNECTION_CLOSE from the peer: the server drains without an error of its own.
    case peerClosed
}

// MARK: - Input

private struct Input {
    let bytes: [UInt8]
    var i = 0
    var atEnd: Bool { i >= bytes.count }
    mutating func byte() -> UInt8 {
        guard i < bytes.count else { return 0 }
        defer { i += 1 }
        return bytes[i]
    }
    mutating func u16() -> UInt64 { UInt64(byte()) << 8 | UInt64(byte()) }
    mutating func u32() -> UInt64 { u16() << 16 | u16() }
    mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in byte() } }
    /// A value for a varint field, weighted towards small numbers and the edges.
    mutating func value() -> UInt64 {
        let b = byte()
        switch b % 10 {
        case 0, 1, 2: return UInt64(b >> 4)
        case 3: return UInt64(byte())
        case 4: return u16()
        case 5: return u32()
        case 6: return (1 << 60) - 1 + UInt64(byte() % 3)  // 2^60 - 1 ... 2^60 + 1
        case 7: return (1 << 62) - 1 - UInt64(byte() % 4)
        case 8: return (1 << 32) - 1 + UInt64(byte() % 3)
        default: return UInt64(byte()) << 20
        }
    }
}

private func varintOK(_ v: UInt64) -> UInt64 { min(v, (1 << 62) - 1) }

// MARK: - The harness for one input

private final class Session {
    var now = Timestamp(nanoseconds: 1_000_000_000)
    let client: Connection
    let endpoint: Endpoint
    let server: Connection
    var input: Input

    // The packet being built.
    var payload = ByteWriter(capacity: 1500)
    var verdict = Verdict.valid
    var snapshot: Connection.TestingSnapshot!
    var packetPath: UInt32 = 0
    var packetRemote = clientAddress
    var keyUpdates = 0
    var nextPN: [UInt32: UInt64] = [:]
    var packetsSent = 0
    /// Stops predicting once the server closed (later packets still exercise closing/draining).
    var oracleActive = true

    // The shadow of the server's receive state while the packet is built.
    struct ShadowStream {
        var recvLimit: UInt64
        var highest: UInt64
        var finalSize: UInt64?
        var reset: Bool
        var canReceive: Bool
        var canSend: Bool
    }
    var streams: [UInt64: ShadowStream] = [:]
    var dataReceived: UInt64 = 0
    var openedBidi: UInt64 = 0
    var openedUni: UInt64 = 0
    /// Frames earlier in the packet that might have freed stream credit or issued CIDs.
    var mayCollect = 0
    var retires = 0
    var peerCIDs: [UInt64: ConnectionID] = [:]
    var retirePriorTo: UInt64 = 0
    var pathPeerCIDs: [UInt32: [UInt64: ConnectionID]] = [:]
    /// Highest Retire Prior To sent per path ID in this input (the server keeps none per path).
    var pathRetirePriorTo: [UInt32: UInt64] = [:]
    var freshCID: UInt64 = 0

    init(input: Input) {
        self.input = input
        endpoint = Endpoint(
            configuration: Endpoint.Configuration(connection: configuration(serverTLS), tokenKey: [UInt8](repeating: 9, count: 16)),
            random: SeededRandom(seed: 1))
        do {
            client = try Connection(
                clientWith: configuration(clientTLS), serverName: "localhost", remote: serverAddress,
                random: SeededRandom(seed: 2), now: now)
        } catch { fatalError("client: \(error)") }
        // A real handshake, no loss, 1 ms per step; then until both sides are quiet so the
        // client holds the server's connection IDs for every path ID.
        var quiet = 0
        var steps = 0
        while quiet < 2 {
            steps += 1
            if steps > 200 { fatalError("handshake did not finish in 200 steps") }
            var moved = false
            while let t = client.poll(now: now) {
                moved = true
                endpoint.receive(datagram: t.bytes, from: clientAddress, now: now)
            }
            while let t = endpoint.poll(now: now) {
                moved = true
                client.receive(datagram: t.bytes, from: serverAddress, now: now)
            }
            let done = client.handshakeConfirmed && endpoint.connections.first?.handshakeConfirmed == true
            quiet = moved || !done ? 0 : quiet + 1
            now = now + .milliseconds(1)
        }
        guard let s = endpoint.connections.first, s.state == .established, s.isMultipathEnabled else {
            fatalError("handshake left the server unusable")
        }
        server = s
        while server.pollEvent() != nil {}
        for id: UInt32 in 0...maxPathID {
            if let d = client.testingOneRTTDestination(pathID: id) { nextPN[id] = d.nextPacketNumber }
        }
    }

    // MARK: Driving

    func run() {
        while !input.atEnd && packetsSent < 48 {
            let op = input.byte()
            switch op % 8 {
            case 0, 1, 2, 3: appendFrame(kind: input.byte())
            case 4: flush()
            case 5:
                flush()
                // Let time pass: timers fire (loss detection, ACK delay, path validation, idle).
                let ms = UInt64(input.byte()) * UInt64(op >> 3 == 0 ? 1 : 20)
                now = now + .milliseconds(ms)
                server.handleTimeout(now: now)
                drainServer(after: "a timeout")
            case 6:
                flush()
                selectPath(input.byte())
            default:
                flush()
                application(input.byte())
            }
        }
        flush()
        checkBounds("at the end")
    }

    func selectPath(_ b: UInt8) {
        let id = UInt32(b % UInt8(maxPathID + 1))
        if nextPN[id] == nil, let d = client.testingOneRTTDestination(pathID: id) { nextPN[id] = d.nextPacketNumber }
        packetPath = nextPN[id] == nil ? 0 : id
        switch b >> 4 {
        case 0: packetRemote = clientAddress
        case 1: packetRemote = SocketAddress(ip: [10, 0, 0, 1], port: 40001)  // rebinding
        case 2: keyUpdates = min(keyUpdates + 1, 3)
        case 3: if let pn = nextPN[packetPath] { nextPN[packetPath] = pn + UInt64(b & 7) + 1 }  // skip packet numbers
        default: packetRemote = packetPath == 0 ? clientAddress : SocketAddress(ip: [10, 0, 1, UInt8(packetPath)], port: 40000)
        }
    }

    /// The server's application: reads (returning flow-control credit), writes, opens streams, datagrams.
    func application(_ b: UInt8) {
        let snap = server.testingSnapshot()
        switch b % 5 {
        case 0:
            for id in snap.streams.keys.sorted() { _ = server.readStream(id) }
        case 1:
            if let id = snap.streams.keys.sorted().first(where: { snap.streams[$0]!.canSend }) {
                try? server.writeStream(id, [UInt8](repeating: 0x61, count: Int(b) * 8), fin: b & 0x20 != 0)
            }
        case 2:
            if let id = server.openStream(bidirectional: b & 0x10 != 0) { try? server.writeStream(id, [1, 2, 3], fin: b & 0x20 != 0) }
        case 3:
            if b & 0x20 != 0 {
                // The data plane's way: written into a slot, urgent ones ahead of the path's queue.
                _ = try? server.sendDatagram(onPath: UInt32(b >> 6), urgent: b & 0x10 != 0) { buffer in
                    let n = min(Int(b), buffer.count)
                    buffer.initializeMemory(as: UInt8.self, repeating: 0x63)
                    return n
                }
            } else {
                try? server.sendDatagram([UInt8](repeating: 0x62, count: Int(b)), onPath: UInt32(b >> 6))
            }
        default:
            if let id = snap.streams.keys.sorted().last {
                server.stopSending(id, errorCode: 7)
                server.resetStream(id, errorCode: 8)
            }
        }
        drainServer(after: "an application call")
    }

    // MARK: The packet

    func beginPacketIfNeeded() {
        guard snapshot == nil else { return }
        let s = server.testingSnapshot()
        snapshot = s
        verdict = .valid
        streams = s.streams.mapValues {
            ShadowStream(
                recvLimit: $0.recvLimit, highest: $0.highestOffset, finalSize: $0.finalSize, reset: $0.resetReceived,
                canReceive: $0.canReceive, canSend: $0.canSend)
        }
        dataReceived = s.dataReceived
        openedBidi = s.remoteStreamsOpenedBidi
        openedUni = s.remoteStreamsOpenedUni
        mayCollect = 0
        retires = 0
        peerCIDs = s.peerCIDs
        retirePriorTo = s.peerCIDRetirePriorTo
        pathPeerCIDs = s.multipathPeerCIDs
    }

    /// Appends encoded bytes with the oracle's verdict for them.
    func add(_ bytes: [UInt8], _ v: Verdict, apply: () -> Void = {}) {
        if case .mayClose(.some, let why) = verdict {
            // The earlier frame may not have closed the connection, with effects we do not
            // model: a later frame may then close it with any code.
            verdict = .mayClose(nil, why + ", then more frames")
        }
        if case .valid = verdict {
            verdict = v
            if case .valid = v { apply() }
        }
        payload.writeBytes(bytes)
    }

    func encode(_ f: Frame) -> [UInt8] {
        var w = ByteWriter(capacity: 64)
        f.encode(to: &w)
        return w.bytes
    }

    func flush(allowEmpty: Bool = false) {
        guard snapshot != nil else { return }
        defer {
            snapshot = nil
            payload.removeAll()
        }
        if payload.count == 0 {
            // RFC 9000 §12.4: a packet with no frames is a PROTOCOL_VIOLATION.
            verdict = .mustClose([protocolViolationError], "empty packet")
        }
        guard let pn = nextPN[packetPath],
            let dest = client.testingOneRTTDestination(pathID: packetPath),
            let datagram = client.testingSealOneRTTPacket(
                payload: payload.bytes, destinationCID: dest.cid, packetNumber: pn,
                pathID: packetPath, keyUpdates: keyUpdates)
        else { return }
        nextPN[packetPath] = pn + 1
        packetsSent += 1
        let wasOpen = server.state == .established
        let received = server.stats.packetsReceived
        server.receive(datagram: datagram, from: packetRemote, now: now)
        let processed = server.stats.packetsReceived > received
        if oracleActive && wasOpen && processed { judge() }
        if oracleActive && wasOpen && !processed && packetPath == 0 && keyUpdates == 0 {
            fatalError("a well-formed 1-RTT packet on path 0 (pn \(pn)) was dropped; state \(server.state)")
        }
        if server.state != .established { oracleActive = false }
        drainServer(after: "a packet")
    }

    func judge() {
        let closed = server.state == .closing || server.state == .draining || server.state == .closed
        let code = server.stats.closeError?.code.rawValue
        let got = server.stats.closeError.map { "\($0)" } ?? "state \(server.state)"
        switch verdict {
        case .valid:
            if closed { fatalError("a valid packet closed the connection: \(got)") }
        case .mustClose(let codes, let why):
            guard closed, let code, codes.contains(code) else {
                fatalError("\(why): expected a close with \(codes.sorted().map { "0x" + String($0, radix: 16) }), got \(got)")
            }
        case .mayClose(let codes, let why):
            if let codes, closed, let code, !codes.contains(code) {
                fatalError("\(why): a close must use \(codes.sorted().map { "0x" + String($0, radix: 16) }), got \(got)")
            }
        case .peerClosed:
            if server.state != .draining || server.stats.closeError != nil {
                fatalError("CONNECTION_CLOSE from the peer should drain without an error, got \(got)")
            }
        }
    }

    func drainServer(after what: String) {
        var n = 0
        while server.poll(now: now) != nil {
            n += 1
            if n > 200 { fatalError("poll produced more than 200 datagrams after \(what)") }
        }
        while server.pollEvent() != nil {}
        if oracleActive && server.state != .established {
            // Packets are judged in `flush`; a transport error from a timer or an API call has
            // no frame to explain it.
            if let e = server.stats.closeError { fatalError("the server closed on its own after \(what): \(e)") }
            oracleActive = false
        }
        checkBounds("after \(what)")
    }

    func checkBounds(_ when: String) {
        // A closing connection processes no more frames; the frame that closed it may have left
        // one table over its limit (that is why it closed).
        guard server.state == .established else { return }
        let s = server.testingSnapshot()
        func fail(_ what: String) -> Never { fatalError("unbounded state \(when): \(what)") }
        if UInt64(s.streams.count) > s.localMaxStreamsBidi + s.localMaxStreamsUni + s.nextLocalBidiIndex + s.nextLocalUniIndex {
            fail("\(s.streams.count) streams, limits \(s.localMaxStreamsBidi)+\(s.localMaxStreamsUni)")
        }
        for (id, st) in s.streams {
            // RFC 9000 §4.1: a receiver buffers at most what its flow-control window allows.
            if UInt64(st.bufferedBytes) > st.recvLimit - min(st.recvLimit, st.readOffset) {
                fail(
                    "stream \(id) buffers \(st.bufferedBytes) bytes in \(st.outOfOrderChunks) chunks, window \(st.recvLimit - st.readOffset)"
                )
            }
        }
        if s.dataReceived > s.localMaxData { fail("data received \(s.dataReceived) beyond MAX_DATA \(s.localMaxData)") }
        if s.cryptoBufferedBytes > 300 * 1024 { fail("\(s.cryptoBufferedBytes) CRYPTO bytes buffered") }
        if UInt64(s.peerCIDs.count) > s.activeConnectionIDLimit { fail("\(s.peerCIDs.count) peer CIDs") }
        for (id, t) in s.multipathPeerCIDs where UInt64(t.count) > s.activeConnectionIDLimit { fail("\(t.count) peer CIDs on path \(id)") }
        if s.localCIDs.count > 8 { fail("\(s.localCIDs.count) local CIDs") }
        if s.paths.count > Int(maxPathID) + 1 { fail("\(s.paths.count) paths") }
        for (id, p) in s.paths where p.responsesToSend > 8 || p.queuedDatagrams > 64 {
            fail("path \(id): \(p.responsesToSend) PATH_RESPONSEs, \(p.queuedDatagrams) datagrams queued")
        }
        if s.queuedDatagrams > 64 { fail("\(s.queuedDatagrams) datagrams queued") }
        if s.sendQueue > s.streams.count { fail("send queue of \(s.sendQueue) for \(s.streams.count) streams") }
        // Retirements and announcements wait only for room in a packet; the server polled until
        // it had nothing left, so a long queue means they are never sent.
        let queued = s.peerCIDsToRetire + s.multipathPeerCIDsToRetire + s.localCIDsToAnnounce + s.multipathLocalCIDsToAnnounce
        if queued > 64 {
            fail(
                "\(queued) CID frames queued (retire \(s.peerCIDsToRetire)+\(s.multipathPeerCIDsToRetire), announce \(s.localCIDsToAnnounce)+\(s.multipathLocalCIDsToAnnounce))"
            )
        }
        if s.pendingEvents > 0 { fail("\(s.pendingEvents) events left after draining") }
    }

    // MARK: Frames

    func streamID(_ b: UInt8) -> UInt64 {
        let type = UInt64(b & 3)
        let sel = b >> 2
        let index: UInt64
        if sel < 48 {
            index = UInt64(sel % 8)
        } else {
            let limit =
                type == 0
                ? snapshot.localMaxStreamsBidi
                : type == 2
                    ? snapshot.localMaxStreamsUni
                    : type == 1 ? snapshot.nextLocalBidiIndex : snapshot.nextLocalUniIndex
            switch sel % 4 {
            case 0: index = limit
            case 1: index = limit &+ 1
            case 2: index = limit == 0 ? 0 : limit - 1
            default: index = (1 << 60) - 1
            }
        }
        return index << 2 | type
    }

    enum StreamUse { case receive, send, blocked }

    /// RFC 9000 §2.1, §3, §4.6, §19: which stream a frame refers to, or the verdict if it cannot.
    /// Creates the peer's streams up to `id` in the shadow (§3.2) when the frame would.
    func resolveStream(_ id: UInt64, _ use: StreamUse, frame: String) -> (stream: UInt64?, verdict: Verdict?) {
        let serverInitiated = id & 1 == 1
        let bidi = id & 2 == 0
        let index = id >> 2
        if serverInitiated {
            let opened = bidi ? snapshot.nextLocalBidiIndex : snapshot.nextLocalUniIndex
            if !bidi && use != .send {
                // §19.8, §19.4, §19.13: STREAM, RESET_STREAM, STREAM_DATA_BLOCKED on a send-only stream.
                return (nil, .mustClose([streamStateError], "\(frame) on the server's unidirectional stream \(id)"))
            }
            if index >= opened {
                // §19.8, §19.5, §19.10: a locally initiated stream that has not been created.
                if use == .blocked { return (nil, .mayClose([streamStateError], "\(frame) on unopened stream \(id)")) }
                return (nil, .mustClose([streamStateError], "\(frame) on the server's unopened stream \(id)"))
            }
            return streams[id] != nil ? (id, nil) : (nil, .valid)  // forgotten: ignored
        }
        if !bidi && use == .send {
            // §19.5, §19.10: STOP_SENDING / MAX_STREAM_DATA on a receive-only stream.
            return (nil, .mustClose([streamStateError], "\(frame) on the client's unidirectional stream \(id)"))
        }
        if streams[id] != nil { return (id, nil) }
        let opened = bidi ? openedBidi : openedUni
        if index < opened { return (nil, .valid) }  // closed and forgotten
        let limit = bidi ? snapshot.localMaxStreamsBidi : snapshot.localMaxStreamsUni
        if index >= limit {
            // §4.6: a stream ID beyond the limit is STREAM_LIMIT_ERROR (credit may have grown
            // during this packet if a stream was collected: then we cannot be sure).
            if index >= limit + UInt64(mayCollect) {
                return (nil, .mustClose([streamLimitError], "\(frame) on stream \(id) beyond limit \(limit)"))
            }
            return (nil, .mayClose([streamLimitError], "\(frame) near the stream limit"))
        }
        // §3.2: the frame opens this stream and every lower one of its type.
        return (id, nil)
    }

    func openInShadow(_ id: UInt64) {
        guard id & 1 == 0, streams[id] == nil else { return }
        let bidi = id & 2 == 0
        let index = id >> 2
        var i = bidi ? openedBidi : openedUni
        while i <= index {
            streams[i << 2 | (id & 3)] = ShadowStream(
                recvLimit: streamWindow, highest: 0, finalSize: nil, reset: false, canReceive: true, canSend: bidi)
            i += 1
        }
        if bidi { openedBidi = index + 1 } else { openedUni = index + 1 }
    }

    func appendFrame(kind: UInt8) {
        beginPacketIfNeeded()
        if payload.count > 1100 {
            flush()
            beginPacketIfNeeded()
        }
        switch kind % 34 {
        case 0:
            add([UInt8](repeating: 0, count: Int(input.byte() % 16) + 1), .valid)
        case 1:
            add([0x01], .valid)
        case 2:
            ackFrame(pathID: nil)
        case 3:
            let id = streamID(input.byte())
            let code = input.value()
            let finalSize = finalSizeChoice()
            let bytes = encode(.resetStream(streamID: id, errorCode: varintOK(code), finalSize: varintOK(finalSize)))
            resetStream(id, finalSize: varintOK(finalSize), bytes)
        case 4:
            let id = streamID(input.byte())
            let bytes = encode(.stopSending(streamID: id, errorCode: varintOK(input.value())))
            let (s, v) = resolveStream(id, .send, frame: "STOP_SENDING")
            if let v {
                add(bytes, v)
            } else {
                add(bytes, .valid) {
                    openInShadow(s!)
                    mayCollect += 1
                }
            }
        case 5:
            let offset = varintOK(input.value())
            let data = [UInt8](repeating: 0x16, count: Int(input.byte()))
            let bytes = encode(.crypto(offset: offset, data: data[...]))
            if offset + UInt64(data.count) > (1 << 62) - 1 {
                add(bytes, .mustClose([frameEncodingError, cryptoBufferExceededError], "CRYPTO beyond 2^62-1"))
            } else if offset > 1 << 20 {
                add(bytes, .mayClose([cryptoBufferExceededError], "CRYPTO far ahead"))
            } else {
                add(bytes, .mayClose(nil, "1-RTT CRYPTO data goes to TLS"))
            }
        case 6:
            let n = Int(input.byte() % 4)
            // §19.7: an empty token is a FRAME_ENCODING_ERROR; a server never receives NEW_TOKEN.
            add(
                [0x07, UInt8(n)] + [UInt8](repeating: 0x77, count: n),
                n == 0
                    ? .mustClose([frameEncodingError], "empty NEW_TOKEN") : .mustClose([protocolViolationError], "NEW_TOKEN from a client"))
        case 7, 8:
            streamFrame()
        case 9:
            add(encode(.maxData(varintOK(input.value()))), .valid)
        case 10:
            let id = streamID(input.byte())
            let bytes = encode(.maxStreamData(streamID: id, maximum: varintOK(input.value())))
            let (s, v) = resolveStream(id, .send, frame: "MAX_STREAM_DATA")
            if let v { add(bytes, v) } else { add(bytes, .valid) { openInShadow(s!) } }
        case 11, 13:
            let bidi = input.byte() & 1 == 0
            let m = varintOK(input.value())
            let bytes =
                kind % 34 == 11
                ? encode(.maxStreams(bidirectional: bidi, maximum: m)) : encode(.streamsBlocked(bidirectional: bidi, limit: m))
            if m > 1 << 60 {
                // §19.11 MUST FRAME_ENCODING_ERROR; §19.14 STREAM_LIMIT_ERROR or FRAME_ENCODING_ERROR.
                add(
                    bytes,
                    .mustClose(
                        kind % 34 == 11 ? [frameEncodingError] : [frameEncodingError, streamLimitError],
                        "MAX_STREAMS/STREAMS_BLOCKED above 2^60"))
            } else {
                add(bytes, .valid)
            }
        case 12:
            let id = streamID(input.byte())
            let bytes = encode(.streamDataBlocked(streamID: id, limit: varintOK(input.value())))
            let (s, v) = resolveStream(id, .blocked, frame: "STREAM_DATA_BLOCKED")
            if let v { add(bytes, v) } else { add(bytes, .valid) { openInShadow(s!) } }
        case 14:
            newConnectionID(pathID: nil)
        case 15:
            let seq = retireChoice()
            // draft-21 §3.2: PATH_RETIRE_CONNECTION_ID with path ID 0 is the same retirement.
            let bytes = encode(
                input.byte() & 1 == 0
                    ? .retireConnectionID(sequenceNumber: seq)
                    : .pathRetireConnectionID(pathID: 0, sequenceNumber: seq))
            let packetSeq = snapshot.localCIDs.first { $0.value == client.testingOneRTTDestination(pathID: 0)?.cid }?.key
            if seq >= snapshot.nextLocalCIDSequence + UInt64(retires) {
                // §19.16: retiring a sequence number never sent is a PROTOCOL_VIOLATION.
                add(bytes, .mustClose([protocolViolationError], "RETIRE_CONNECTION_ID \(seq) never issued"))
            } else if seq >= snapshot.nextLocalCIDSequence || (packetPath == 0 && seq == packetSeq) {
                add(bytes, .mayClose([protocolViolationError], "RETIRE_CONNECTION_ID of the packet's own CID or a fresh one"))
            } else {
                add(bytes, .valid) { retires += 1 }
            }
        case 16:
            add(encode(.pathChallenge(data: input.u32())), .valid)
        case 17:
            add(encode(.pathResponse(data: input.u32())), .valid)
        case 18:
            let b = input.byte()
            add(
                encode(
                    .connectionClose(
                        ConnectionCloseFrame(isApplication: b & 1 == 1, errorCode: UInt64(b >> 1), frameType: 0, reason: [0x62]))),
                .peerClosed)
        case 19:
            // §19.20: a server receiving HANDSHAKE_DONE: PROTOCOL_VIOLATION.
            add([0x1e], .mustClose([protocolViolationError], "HANDSHAKE_DONE from a client"))
        case 20:
            let n = Int(input.byte())
            add(encode(.datagram(data: [UInt8](repeating: 0x30, count: n)[...], hasLength: true)), .valid)
        case 21:
            ackFrame(pathID: UInt64(input.byte() % UInt8(maxPathID + 2)))
        case 22:
            let pid = pathIDChoice()
            let bytes = encode(.pathAbandon(pathID: pid, errorCode: UInt64(input.byte())))
            let live = snapshot.paths.filter { $0.value.state == "active" || $0.value.state == "validating" }.count
            if pid > UInt64(snapshot.localMaxPathID) && (pid > UInt64(UInt32.max) || snapshot.paths[UInt32(pid)] == nil) {
                add(bytes, .mayClose([protocolViolationError], "PATH_ABANDON for a path ID above our maximum"))
            } else if live <= 1 || pid == UInt64(packetPath) {
                add(bytes, .mayClose(nil, "PATH_ABANDON of the last path or the packet's own"))
            } else {
                add(bytes, .valid) { mayCollect += 1 }
            }
        case 23:
            let pid = pathIDChoice()
            let seq = varintOK(input.value())
            let bytes = encode(
                input.byte() & 1 == 0
                    ? .pathStatusBackup(pathID: pid, sequenceNumber: seq)
                    : .pathStatusAvailable(pathID: pid, sequenceNumber: seq))
            add(
                bytes,
                pid <= UInt64(snapshot.localMaxPathID) ? .valid : .mayClose([protocolViolationError], "PATH_STATUS for an unknown path ID"))
        case 24:
            newConnectionID(pathID: pathIDChoice())
        case 25:
            var pid = pathIDChoice()
            if pid == 0 { pid = 1 }  // path 0's retirements are case 15
            let seq = UInt64(input.byte() % 8)
            let bytes = encode(.pathRetireConnectionID(pathID: pid, sequenceNumber: seq))
            let issued = pid <= UInt64(UInt32.max) && snapshot.multipathLocalCIDs[UInt32(pid)]?[seq] != nil
            add(
                bytes,
                issued && UInt32(pid) != packetPath
                    ? .valid : .mayClose([protocolViolationError], "PATH_RETIRE_CONNECTION_ID of an unknown or own CID"))
        case 26:
            let m = input.byte() & 1 == 0 ? UInt64(input.byte() % 16) : input.value()
            let bytes = encode(.maxPathID(varintOK(m)))
            if m > UInt64(UInt32.max) {
                add(bytes, .mustClose([protocolViolationError], "MAX_PATH_ID above 2^32-1"))
            } else if m < UInt64(maxPathID) {
                add(bytes, .mayClose([protocolViolationError], "MAX_PATH_ID below initial_max_path_id"))
            } else {
                add(bytes, .valid)
            }
        case 27:
            let m = UInt64(input.byte() % 8)
            add(
                encode(.pathsBlocked(maximumPathID: m)),
                m <= UInt64(snapshot.localMaxPathID) ? .valid : .mayClose([protocolViolationError], "PATHS_BLOCKED above our maximum"))
        case 28:
            let pid = pathIDChoice()
            add(
                encode(.pathCIDsBlocked(pathID: pid, nextSequenceNumber: UInt64(input.byte() % 8))),
                pid <= UInt64(snapshot.localMaxPathID) ? .valid : .mayClose([protocolViolationError], "PATH_CIDS_BLOCKED above our maximum")
            )
        case 29:
            // §12.4: a frame of unknown type is a FRAME_ENCODING_ERROR (0x1f, 0x20-0x2f, 0x32-0x3d,
            // and two-byte types other than the multipath ones).
            let unknown: [[UInt8]] = [[0x1f], [0x20], [0x2f], [0x32], [0x3d], [0x40, 0x40], [0x7e, 0x74], [0x7e, 0x7d], [0x7f, 0xff]]
            add(unknown[Int(input.byte()) % unknown.count], .mustClose([frameEncodingError], "unknown frame type"))
        case 30:
            truncatedFrame()
        case 31:
            // §12.4: frame types must be minimally encoded (MAY PROTOCOL_VIOLATION; we do).
            let t = input.byte() % 0x1f
            add([0x40, t == 0 ? 1 : t], .mayClose([protocolViolationError], "non-minimal frame type"))
        case 32:
            rawRun()
        default:
            tailFrame()
        }
    }

    func pathIDChoice() -> UInt64 {
        let b = input.byte()
        return b < 240 ? UInt64(b % UInt8(maxPathID + 2)) : [UInt64(UInt32.max), 1 << 32, (1 << 62) - 1][Int(b) % 3]
    }

    func finalSizeChoice() -> UInt64 {
        let b = input.byte()
        switch b % 4 {
        case 0: return UInt64(b >> 2) * 64
        case 1: return streamWindow + UInt64(b >> 2) - 8
        case 2: return connectionWindow + UInt64(b >> 2) - 8
        default: return input.value()
        }
    }

    func retireChoice() -> UInt64 {
        let b = input.byte()
        return b < 200 ? UInt64(b % 10) : snapshot.nextLocalCIDSequence + UInt64(b % 3)
    }

    func ackFrame(pathID: UInt64?) {
        let pathState = pathID.flatMap { snapshot.paths[UInt32(truncatingIfNeeded: $0)] }
        let known = pathID == nil || pathState != nil || pathID == UInt64(packetPath)
        let next = pathID == nil ? snapshot.paths[0]!.nextPacketNumber : pathState?.nextPacketNumber ?? 0
        let b = input.byte()
        let largest: UInt64 = b & 0x80 == 0 && next > 0 ? next - 1 - min(next - 1, UInt64(b & 0x0f)) : next + UInt64(b & 0x0f)
        let first = UInt64(input.byte() % 4)
        var w = ByteWriter(capacity: 64)
        let ecn = b & 0x40 != 0
        if let pathID {
            w.writeVarInt(ecn ? FrameType.pathAckECN : FrameType.pathAck)
            w.writeVarInt(pathID)
        } else {
            w.writeVarInt(ecn ? 3 : 2)
        }
        let ranges = Int(input.byte() % 3)
        w.writeVarInt(largest)
        w.writeVarInt(UInt64(input.byte()))
        w.writeVarInt(UInt64(ranges))
        w.writeVarInt(first)
        var invalid = first > largest
        var smallest = largest &- first
        for _ in 0..<ranges {
            let gap = UInt64(input.byte() % 8)
            let len = UInt64(input.byte() % 8)
            w.writeVarInt(gap)
            w.writeVarInt(len)
            if invalid || smallest < gap + 2 || smallest - gap - 2 < len { invalid = true } else { smallest = smallest - gap - 2 - len }
        }
        if ecn {
            w.writeVarInt(UInt64(input.byte()))
            w.writeVarInt(0)
            w.writeVarInt(UInt64(input.byte() % 4))
        }
        if invalid {
            // §19.3.1: a negative packet number in the ranges is a FRAME_ENCODING_ERROR.
            add(w.bytes, .mustClose([frameEncodingError], "ACK ranges below packet number 0"))
        } else if !known {
            add(w.bytes, .valid)  // PATH_ACK for a path the server does not have: ignored
        } else if largest >= next {
            // §13.1: acknowledging a packet never sent (the connection says it detects it).
            add(w.bytes, .mustClose([protocolViolationError], "ACK of unsent packet \(largest) (next \(next))"))
        } else {
            add(w.bytes, .valid) { mayCollect += 1 }
        }
    }

    func streamFrame() {
        let id = streamID(input.byte())
        let ob = input.byte()
        let offset: UInt64
        switch ob % 4 {
        case 0: offset = UInt64(ob >> 2) * 16
        case 1: offset = streamWindow - UInt64(ob >> 2)
        case 2: offset = UInt64(ob >> 2)
        default: offset = varintOK(input.value())
        }
        let length = Int(input.byte()) * (ob & 0x80 != 0 ? 4 : 1)
        let fin = input.byte() & 1 == 1
        let bytes = encode(.stream(StreamFrame(streamID: id, offset: offset, data: [UInt8](repeating: 0x53, count: length)[...], fin: fin)))
        let end = offset + UInt64(length)
        if end > (1 << 62) - 1 {
            // §19.8: FRAME_ENCODING_ERROR or FLOW_CONTROL_ERROR.
            add(bytes, .mustClose([frameEncodingError, flowControlError], "STREAM beyond 2^62-1"))
            return
        }
        let (s, v) = resolveStream(id, .receive, frame: "STREAM")
        if let v {
            add(bytes, v)
            return
        }
        guard let s else { return }
        openInShadow(s)
        let st = streams[s]!
        if st.reset {
            add(bytes, .mayClose([finalSizeError], "STREAM after RESET_STREAM"))
            return
        }
        var codes: Set<UInt64> = []
        var should: Set<UInt64> = []
        // §4.1: beyond the stream's or the connection's limit is a FLOW_CONTROL_ERROR.
        if end > st.recvLimit { codes.insert(flowControlError) }
        let newHighest = max(st.highest, end)
        if dataReceived + (newHighest - st.highest) > snapshot.localMaxData { codes.insert(flowControlError) }
        // §4.5: a change of the final size (SHOULD FINAL_SIZE_ERROR).
        if let fs = st.finalSize, end > fs || (fin && end != fs) { should.insert(finalSizeError) }
        if fin && end < st.highest { should.insert(finalSizeError) }
        if !codes.isEmpty {
            add(bytes, .mustClose(codes.union(should), "STREAM \(s) to \(end) beyond flow control"))
        } else if !should.isEmpty {
            add(bytes, .mayClose(should, "STREAM \(s) changes its final size"))
        } else {
            add(bytes, .valid) {
                dataReceived += newHighest - st.highest
                streams[s]!.highest = newHighest
                if fin { streams[s]!.finalSize = end }
            }
        }
    }

    func resetStream(_ id: UInt64, finalSize: UInt64, _ bytes: [UInt8]) {
        let (s, v) = resolveStream(id, .receive, frame: "RESET_STREAM")
        if let v {
            add(bytes, v)
            return
        }
        guard let s else { return }
        openInShadow(s)
        let st = streams[s]!
        if st.reset {
            add(bytes, .mayClose([finalSizeError], "a second RESET_STREAM"))
            return
        }
        var should: Set<UInt64> = []
        if let fs = st.finalSize, fs != finalSize { should.insert(finalSizeError) }
        if finalSize < st.highest { should.insert(finalSizeError) }
        var codes: Set<UInt64> = []
        // §4.5: the final size counts against flow control like the data it stands for.
        if finalSize > st.recvLimit { codes.insert(flowControlError) }
        if dataReceived + (max(finalSize, st.highest) - st.highest) > snapshot.localMaxData { codes.insert(flowControlError) }
        if !codes.isEmpty {
            add(bytes, .mustClose(codes.union(should), "RESET_STREAM \(s) final size \(finalSize) beyond flow control"))
        } else if !should.isEmpty {
            add(bytes, .mayClose(should, "RESET_STREAM \(s) changes the final size"))
        } else {
            add(bytes, .valid) {
                dataReceived += finalSize - st.highest
                streams[s]!.reset = true
                mayCollect += 1
            }
        }
    }

    func newConnectionID(pathID framePathID: UInt64?) {
        // draft-ietf-quic-multipath-21 §3.2: PATH_NEW_CONNECTION_ID with path ID 0 acts on path 0's
        // one set, as NEW_CONNECTION_ID does; only its encoding differs.
        let pathID = framePathID == 0 ? nil : framePathID
        let b = input.byte()
        let table = pathID.map { pathPeerCIDs[UInt32(truncatingIfNeeded: $0)] ?? [:] } ?? peerCIDs
        let top = (table.keys.max() ?? 0)
        var seq: UInt64
        switch b % 4 {
        case 0, 1: seq = top + 1 + UInt64(b >> 6)
        case 2: seq = table.keys.sorted().first ?? 0
        default: seq = UInt64(b >> 2)
        }
        let rb = input.byte()
        var rpt: UInt64
        switch rb % 4 {
        case 0: rpt = 0
        case 1: rpt = pathID == nil ? retirePriorTo : 0
        case 2: rpt = seq >= UInt64(rb >> 2) ? seq - UInt64(rb >> 2) : 0
        default: rpt = seq + UInt64(rb >> 6)  // > seq when rb >> 6 > 0
        }
        seq = varintOK(seq)
        rpt = varintOK(rpt)
        let lb = input.byte()
        let cidLength = lb < 240 ? 8 : [0, 21, 20, 1][Int(lb) % 4]
        let reuse = table[seq]
        freshCID += 1
        var cidBytes = [UInt8](repeating: 0xc1, count: cidLength)
        withUnsafeBytes(of: freshCID.bigEndian) { for (i, x) in $0.enumerated() where i < cidLength { cidBytes[i] ^= x } }
        if let reuse, lb & 1 == 0 { cidBytes = Array(reuse.bytes) }
        var w = ByteWriter(capacity: 64)
        if let framePathID {
            w.writeVarInt(FrameType.pathNewConnectionID)
            w.writeVarInt(framePathID)
        } else {
            w.writeVarInt(FrameType.newConnectionID)
        }
        w.writeVarInt(seq)
        w.writeVarInt(rpt)
        w.writeUInt8(UInt8(cidBytes.count))
        w.writeBytes(cidBytes)
        w.writeBytes([UInt8](repeating: 0x5e, count: 16))
        let name = framePathID == nil ? "NEW_CONNECTION_ID" : "PATH_NEW_CONNECTION_ID"
        // §19.15: Retire Prior To above the sequence number, or a CID length outside 1...20.
        if rpt > seq || cidBytes.isEmpty || cidBytes.count > 20 {
            add(w.bytes, .mustClose([frameEncodingError], "\(name) badly encoded"))
            return
        }
        let cid = ConnectionID(cidBytes)
        if let pathID {
            guard pathID <= UInt64(snapshot.localMaxPathID) else {
                // draft-ietf-quic-multipath §4.6 (as the connection claims): PROTOCOL_VIOLATION.
                add(w.bytes, .mustClose([protocolViolationError], "PATH_NEW_CONNECTION_ID for path ID \(pathID) above our maximum"))
                return
            }
            let pid = UInt32(pathID)
            if snapshot.retiredPathIDs.contains(pid) {
                add(w.bytes, .valid)
                return
            }
            if let reuse {
                add(
                    w.bytes,
                    reuse == cid
                        ? .mayClose(nil, "repeated PATH_NEW_CONNECTION_ID")
                        : .mayClose([protocolViolationError], "sequence reused with another CID"))
                return
            }
            if seq < max(rpt, pathRetirePriorTo[pid] ?? 0) || rpt < (pathRetirePriorTo[pid] ?? 0) {
                add(w.bytes, .mayClose(nil, "PATH_NEW_CONNECTION_ID below an earlier Retire Prior To"))
                return
            }
            var t = table
            t[seq] = cid
            for k in t.keys where k < rpt { t[k] = nil }
            if UInt64(t.count) > snapshot.activeConnectionIDLimit {
                add(w.bytes, .mustClose([connectionIDLimitError], "\(t.count) CIDs on path \(pid) over the limit"))
            } else {
                add(w.bytes, .valid) {
                    pathPeerCIDs[pid] = t
                    pathRetirePriorTo[pid] = max(pathRetirePriorTo[pid] ?? 0, rpt)
                }
            }
            return
        }
        if let reuse {
            if reuse != cid {
                add(w.bytes, .mayClose([protocolViolationError], "sequence reused with another CID"))
                return
            }
            add(w.bytes, rpt <= retirePriorTo ? .valid : .mayClose(nil, "repeated NEW_CONNECTION_ID with a new Retire Prior To"))
            return
        }
        if seq < retirePriorTo {
            add(w.bytes, .valid)
            return
        }  // retired at once
        var t = peerCIDs
        t[seq] = cid
        let newRPT = max(rpt, retirePriorTo)
        for k in t.keys where k < newRPT { t[k] = nil }
        // §5.1.1: more active connection IDs than active_connection_id_limit.
        if UInt64(t.count) > snapshot.activeConnectionIDLimit {
            add(w.bytes, .mustClose([connectionIDLimitError], "\(t.count) active CIDs over the limit \(snapshot.activeConnectionIDLimit)"))
        } else {
            add(w.bytes, .valid) {
                peerCIDs = t
                retirePriorTo = newRPT
            }
        }
    }

    /// A frame cut short at the end of the packet: FRAME_ENCODING_ERROR (§12.4 / §19: every
    /// field of these frames must be present).
    func truncatedFrame() {
        let b = input.byte()
        let frames: [Frame] = [
            .resetStream(streamID: 0, errorCode: 300, finalSize: 20000),
            .stopSending(streamID: 4, errorCode: 70000),
            .maxData(1 << 40),
            .maxStreamData(streamID: 0, maximum: 1 << 20),
            .newConnectionID(
                NewConnectionIDFrame(
                    sequenceNumber: 9, retirePriorTo: 0, connectionID: ConnectionID([1, 2, 3, 4, 5, 6, 7, 8]),
                    statelessResetToken: StatelessResetToken([UInt8](repeating: 3, count: 16)))),
            .pathChallenge(data: 0x0102_0304_0506_0708),
            .connectionClose(ConnectionCloseFrame(isApplication: false, errorCode: 1, frameType: 8, reason: [1, 2, 3])),
            .datagram(data: [1, 2, 3, 4][...], hasLength: true),
            .stream(StreamFrame(streamID: 0, offset: 64, data: [9, 9, 9][...], fin: false)),
            .pathAbandon(pathID: 1, errorCode: 1 << 20),
            .pathStatusAvailable(pathID: 1, sequenceNumber: 1 << 16),
            .maxPathID(1 << 20),
            .pathRetireConnectionID(pathID: 2, sequenceNumber: 1 << 30),
            .ack(AckFrame(ranges: [10...12, 3...5], ackDelay: 1 << 14)),
        ]
        let full = encode(frames[Int(b) % frames.count])
        let cut = 1 + Int(b >> 4) % (full.count - 1)
        add(Array(full.prefix(full.count - cut)), .mustClose([frameEncodingError], "frame truncated by the end of the packet"))
        flush()
    }

    /// Raw bytes: the connection must close with whatever error the frame decoder names for them
    /// (the `frames` target checks the decoder itself); if they decode, the oracle stops here.
    func rawRun() {
        let n = Int(input.byte() % 48)
        let raw = input.bytes(n)
        var r = ByteReader(raw)
        var v = Verdict.mayClose(nil, "raw frames")
        if raw.isEmpty {
            v = .valid
        } else {
            do { _ = try Frame.decode(from: &r, packetType: .oneRTT) } catch let e as TransportError {
                // A truncated frame may still decode with the bytes that follow, unless it is last.
                v = .mayClose([e.code.rawValue], "raw bytes the decoder rejects: \(e)")
            } catch { fatalError("decoder threw \(error)") }
        }
        add(raw, v)
        if case .mayClose(let c?, let why) = v, input.byte() & 1 == 0 {
            verdict = verdict.isValidOrSame(why) ? .mustClose(c, why) : verdict
            flush()
        }
    }

    /// STREAM without a Length or DATAGRAM type 0x30: the data runs to the end of the packet.
    func tailFrame() {
        let b = input.byte()
        let n = Int(input.byte())
        if b & 1 == 0 {
            add([0x30] + [UInt8](repeating: 0x31, count: n), .valid)
        } else {
            let id = UInt64(b >> 1 & 0x0f) << 2
            var w = ByteWriter(capacity: 16)
            w.writeVarInt(0x0c)
            w.writeVarInt(id)
            w.writeVarInt(0)  // OFF, no LEN, no FIN
            w.writeBytes([UInt8](repeating: 0x53, count: n))
            let (s, v) = resolveStream(id, .receive, frame: "STREAM")
            if let v {
                add(w.bytes, v)
            } else if let s {
                openInShadow(s)
                let st = streams[s]!
                let end = UInt64(n)
                let over = end > st.recvLimit || dataReceived + (max(st.highest, end) - st.highest) > snapshot.localMaxData
                let fsBad = st.finalSize.map { end > $0 } ?? false
                if st.reset {
                    add(w.bytes, .mayClose([finalSizeError], "STREAM after reset"))
                } else if over {
                    add(
                        w.bytes,
                        .mustClose(fsBad ? [flowControlError, finalSizeError] : [flowControlError], "tail STREAM beyond flow control"))
                } else if fsBad {
                    add(w.bytes, .mayClose([finalSizeError], "tail STREAM beyond final size"))
                } else {
                    add(w.bytes, .valid)
                }
            }
        }
        flush()
    }
}

extension Verdict {
    /// True if this is the verdict `rawRun` just set (so it may be sharpened to a MUST).
    fileprivate func isValidOrSame(_ why: String) -> Bool {
        if case .mayClose(_, let w) = self { return w == why }
        return false
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConnection(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let session = Session(input: Input(bytes: Array(UnsafeBufferPointer(start: data, count: size))))
    session.run()
    return 0
}
