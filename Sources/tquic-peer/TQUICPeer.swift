// tquic-peer: a QUIC endpoint for interop testing and for people checking our stack against
// others. `server` echoes streams and datagrams (ALPN tquic-echo) and serves files over
// HTTP/0.9 (ALPN hq-interop); `client` sends, checks the echoes and downloads.
import ArgumentParser
import Congestion
import Foundation
import LinuxNet
import QUIC

@main
struct TQUICPeer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tquic-peer",
        abstract: "QUIC interop endpoint of the TQUIC project.",
        subcommands: [ServerCommand.self, ClientCommand.self])
}

enum ALPN {
    static let echo = "tquic-echo"
    static let hq = "hq-interop"
}

func out(_ line: String) {
    print(line)
    fflush(stdout)
}

func info(_ line: String) {
    FileHandle.standardError.write(Data("info: \(line)\n".utf8))
}

func errorLine(_ line: String) {
    FileHandle.standardError.write(Data("error: \(line)\n".utf8))
}

/// SSLKEYLOGFILE support (NSS key log format) for Wireshark.
func keyLogger() -> (@Sendable (String) -> Void)? {
    guard let path = ProcessInfo.processInfo.environment["SSLKEYLOGFILE"], !path.isEmpty else { return nil }
    guard let file = fopen(path, "a") else {
        errorLine("cannot open SSLKEYLOGFILE \(path)")
        return nil
    }
    nonisolated(unsafe) let f = file
    return { line in
        fputs(line + "\n", f)
        fflush(f)
    }
}

/// Parses HOST:PORT, [V6]:PORT or V6:PORT (last colon separates the port).
func parseHostPort(_ text: String) throws -> (host: String, address: SocketAddress) {
    var host = text
    var portText = ""
    if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
        host = String(text[text.index(after: text.startIndex)..<close])
        let rest = text[text.index(after: close)...]
        guard rest.hasPrefix(":") else { throw ValidationError("missing port in \(text)") }
        portText = String(rest.dropFirst())
    } else if let colon = text.lastIndex(of: ":") {
        host = String(text[..<colon])
        portText = String(text[text.index(after: colon)...])
    } else {
        throw ValidationError("expected HOST:PORT, got \(text)")
    }
    guard let port = UInt16(portText) else { throw ValidationError("invalid port in \(text)") }
    guard let ip = SocketAddress.parseIP(host) else { throw ValidationError("cannot resolve \(host): use an IP address or localhost") }
    return (host, SocketAddress(ip: ip, port: port))
}

/// Drives one or more UDP sockets around a sans-I/O object: batched receive (recvmmsg, GRO split
/// back into datagrams) into one reused datagram buffer that the core opens in place, and batched
/// send (GSO trains, sendmmsg) through one send batch per socket. Nothing is allocated per datagram.
struct EventLoop {
    let sockets: [UDPSocket]
    let sendBatches: [UDPSendBatch]
    let receiveBatch = UDPReceiveBatch()
    /// The datagram handed to `receive(datagram: &...)`, copied out of the receive batch.
    var datagram: [UInt8]
    /// Datagrams taken per socket per `receive` before the caller gets to send (ACKs) again.
    static let receiveBudget = 512

    init(socket: UDPSocket) { self.init(sockets: [socket]) }
    init(sockets: [UDPSocket]) {
        self.sockets = sockets
        sendBatches = sockets.map { UDPSendBatch(socket: $0) }
        datagram = []
        datagram.reserveCapacity(65536)
        for s in sockets { s.setReceiveOffload(true) }
    }

    /// Queues `t` on the batch of socket `index` (its bytes are copied: the next poll reuses them).
    /// False when the socket buffer was full: stop polling until the next round.
    func send(_ t: Transmit, on index: Int = 0) throws -> Bool {
        try sendBatches[index].append(t.bytes, to: t.destination, ecn: t.ecn)
    }

    /// Sends every queued datagram; false if a socket buffer was full.
    func flush() throws -> Bool {
        var all = true
        for b in sendBatches where !b.isEmpty { if try !b.flush() { all = false } }
        return all
    }

    /// One line on what the batches did: datagrams per message (GSO) and per syscall, each way.
    var statisticsDescription: String {
        var sent = UDPSendBatch.Statistics()
        for b in sendBatches { sent.add(b.statistics) }
        return "sent \(sent.datagrams) datagrams in \(sent.messages) messages (\(sent.segmentedMessages) GSO) and \(sent.calls) calls, "
            + "\(sent.dropped) dropped; received \(receivedDatagrams) datagrams in \(receivedMessages) messages and \(receiveCalls) calls"
    }
    private(set) var receivedDatagrams = 0
    private(set) var receivedMessages = 0
    private(set) var receiveCalls = 0

    /// Waits until a socket is readable or the deadline passes (at most `maxWaitMs`).
    /// To the microsecond: a pacing gap is often well under a millisecond. Returns whether a
    /// socket is readable (false: the deadline passed).
    @discardableResult
    func wait(until deadline: Timestamp?, maxWaitMs: Int64 = 1000) -> Bool {
        var timeout = maxWaitMs * 1_000_000
        if let d = deadline {
            let now = MonotonicClock.now()
            timeout = d > now ? min(Int64(clamping: (d - now).nanoseconds), timeout) : 0
        }
        return UDPSocket.waitReadable(sockets, nanoseconds: timeout)
    }

    /// Hands what is waiting on every socket, without blocking, to `deliver(&datagram, source, ecn)`
    /// (RFC 9000 §13.4.1: with the ECN codepoint of each); returns the number of datagrams.
    mutating func receive(_ deliver: (inout [UInt8], SocketAddress, ECNCodepoint) -> Void) throws -> Int {
        var total = 0
        for socket in sockets {
            var taken = 0
            while taken < EventLoop.receiveBudget {
                let n = try socket.receive(into: receiveBatch)
                receiveCalls += 1
                if n == 0 { break }
                receivedDatagrams += n
                receivedMessages += receiveBatch.messageCount
                for i in 0..<n {
                    receiveBatch.copyDatagram(i, into: &datagram)
                    let d = receiveBatch[i]
                    deliver(&datagram, d.source, d.ecn)
                }
                taken += n
                // A batch that was not filled has emptied the socket.
                if receiveBatch.messageCount < receiveBatch.messageCapacity { break }
            }
            total += taken
        }
        return total
    }
}
