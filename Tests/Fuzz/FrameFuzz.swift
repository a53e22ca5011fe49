// libFuzzer harness for the frame codec. Built by scripts/fuzz.sh together with the pure wire
// sources (one module, so no import); never part of the SwiftPM test target.
//
// For every packet type: decode the input as a packet payload. A rejection must be a
// FRAME_ENCODING_ERROR or PROTOCOL_VIOLATION. An accepted payload must only hold frames permitted in
// that packet type, and re-encoding must be symmetric: each frame's encodedLength equals the bytes
// written, decode(encode(f)) == f consuming exactly those bytes, and decodeAll of the re-encoded
// payload gives back the same frame list. Any violation crashes via fatalError.

private let packetTypes: [PacketType] = [.initial, .zeroRTT, .handshake, .retry, .versionNegotiation, .oneRTT]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    for packetType in packetTypes {
        let frames: [Frame]
        do {
            frames = try Frame.decodeAll(bytes, packetType: packetType)
        } catch let error as TransportError {
            guard error.code == .frameEncodingError || error.code == .protocolViolation else {
                fatalError("decodeAll threw unexpected \(error)")
            }
            continue
        } catch {
            fatalError("decodeAll threw a non-TransportError: \(error)")
        }

        var writer = ByteWriter(capacity: bytes.count + 64)
        for frame in frames {
            guard Frame.isPermitted(frameType: frame.frameType, in: packetType) else {
                fatalError("decoded \(frame), not permitted in \(packetType)")
            }
            let start = writer.count
            frame.encode(to: &writer)
            let encoded = Array(writer.bytes[start...])
            guard encoded.count == frame.encodedLength else {
                fatalError("encodedLength \(frame.encodedLength) != \(encoded.count) bytes written for \(frame)")
            }
            var reader = ByteReader(encoded)
            do {
                let again = try Frame.decode(from: &reader, packetType: packetType)
                guard again == frame else { fatalError("decode(encode(f)) != f: \(frame) became \(again)") }
                guard reader.isAtEnd else { fatalError("decode(encode(f)) left \(reader.remaining) bytes for \(frame)") }
            } catch {
                fatalError("re-encoded \(frame) failed to decode: \(error)")
            }
        }
        do {
            let again = try Frame.decodeAll(writer.bytes, packetType: packetType)
            guard again == frames else { fatalError("decodeAll(encode(frames)) != frames: \(frames) became \(again)") }
        } catch {
            fatalError("re-encoded payload failed to decode: \(error)")
        }
    }
    return 0
}
