// libFuzzer harness for the inner IP parser the sender runs on every packet read from the TUN
// (Bonding's FlowKey): any bytes, as a LAN host could send them. Built by scripts/fuzz.sh with the
// pure Bonding sources (one module, no import).
//
// Checks: never traps, never reads past the input (ASan); the lane is in range and is the
// fallback lane exactly when the packet does not parse; the same bytes give the same key and
// lane (the receiver's lane must match the sender's).

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    // A copy of exactly `size` bytes so ASan catches any read beyond the packet.
    let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(size, 1), alignment: 1)
    defer { copy.deallocate() }
    copy.copyMemory(from: UnsafeRawBufferPointer(start: data, count: size))
    let packet = UnsafeRawBufferPointer(rebasing: copy[0..<size])
    let key = FlowKey(packet: packet)
    let lane = FlowKey.lane(of: packet, seed: 0x1234)
    guard lane < TunnelFrame.laneCount else { fatalError("lane \(lane) out of range") }
    if let key {
        guard lane == key.lane(seed: 0x1234), lane != FlowKey.fallbackLane else { fatalError("lane of \(key) is \(lane)") }
        guard FlowKey(packet: packet) == key else { fatalError("parsing is not deterministic") }
        if size > 0, (packet[0] >> 4) != key.family.rawValue { fatalError("family \(key.family) for version \(packet[0] >> 4)") }
    } else {
        guard lane == FlowKey.fallbackLane else { fatalError("unparsed packet got lane \(lane)") }
    }
    return 0
}
