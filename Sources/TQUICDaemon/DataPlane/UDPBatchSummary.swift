// How well the WAN sockets batch: datagrams per GSO send and per sendmmsg call, datagrams per GRO
// buffer and per recvmmsg call, i.e. how many system calls and kernel buffers the data plane
// spends on its datagrams (docs/vpn-benchmark.md: "Pacing by the quantum").
import LinuxNet

/// Receive-side counters of a data plane's WAN sockets.
struct UDPReceiveCounters {
    /// Datagrams taken out of the sockets (GRO buffers split).
    var datagrams: UInt64 = 0
    /// Kernel buffers they came in (a GRO buffer counts once).
    var buffers: UInt64 = 0
    /// recvmmsg calls that returned at least one datagram.
    var calls: UInt64 = 0

    mutating func count(_ batch: UDPReceiveBatch) {
        datagrams += UInt64(batch.count)
        buffers += UInt64(batch.messageCount)
        calls += 1
    }
}

/// One status line: `udp: sent D datagrams in M messages (G GSO, X per message) by C calls, dropped
/// N; received D datagrams in B buffers (X per buffer) by C calls`.
func udpBatchSummary(sent: [UDPSendBatch.Statistics], received: UDPReceiveCounters) -> String {
    var s = UDPSendBatch.Statistics()
    for t in sent { s.add(t) }
    func per(_ a: some BinaryInteger, _ b: some BinaryInteger) -> String {
        b == 0 ? "0.0" : fixed(Double(a) / Double(b), 1)
    }
    let perMessage = per(s.datagrams, s.messages)
    let perBuffer = per(received.datagrams, received.buffers)
    return "udp: sent \(s.datagrams) datagrams in \(s.messages) messages (\(s.segmentedMessages) GSO, \(perMessage) per message) "
        + "by \(s.calls) calls, dropped \(s.dropped); received \(received.datagrams) datagrams in \(received.buffers) buffers "
        + "(\(perBuffer) per buffer) by \(received.calls) calls"
}
