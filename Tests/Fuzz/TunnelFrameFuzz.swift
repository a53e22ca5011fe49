// libFuzzer harness for the tunnel's receiving side (Bonding): TunnelFrame.decode and the
// counting TunnelFrameDecoder over any bytes a peer could put in a DATAGRAM. Built by
// scripts/fuzz.sh with the pure Bonding sources (one module, no import).
//
// Checks: never traps; a decoded frame's payload is the bytes after the 8-byte header and is
// never empty; re-writing the decoded header gives back the input's first 8 bytes except the bits
// the format ignores; the decoder counts every input exactly once, as decoded or malformed.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    var decoder = TunnelFrameDecoder()
    let viaDecoder = decoder.decode(input)
    guard decoder.decoded + decoder.malformed == 1 else { fatalError("the decoder counted \(decoder.decoded + decoder.malformed) times") }
    switch TunnelFrame.decode(input) {
    case .failure:
        guard viaDecoder == nil else { fatalError("decoder accepted what decode refused") }
    case .success(let frame):
        guard viaDecoder == frame else { fatalError("decoder and decode disagree") }
        guard frame.payload == TunnelFrame.headerLength..<size, !frame.payload.isEmpty else {
            fatalError("payload \(frame.payload) of a \(size)-byte datagram")
        }
        guard frame.header.lane < TunnelFrame.laneCount else { fatalError("lane \(frame.header.lane) out of range") }
        var out = [UInt8](repeating: 0, count: TunnelFrame.headerLength)
        let ok = out.withUnsafeMutableBytes { TunnelFrame.write(frame.header, to: $0, at: 0) }
        guard ok else { fatalError("a decoded header does not write back") }
        // Byte 0: version (2 bits), R bit, one unused bit, lane high nibble.
        guard out[0] == input[0] & 0xef, Array(out[1...]) == Array(input[1..<TunnelFrame.headerLength]) else {
            fatalError("header \(frame.header) does not round-trip")
        }
    }
    return 0
}
