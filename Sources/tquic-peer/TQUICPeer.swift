// tquic-peer: a QUIC endpoint for interop testing and for people checking our stack against
// others. `server` echoes streams and datagrams (ALPN tquic-echo) and serves files over
// HTTP/0.9 (ALPN hq-interop); `client` sends, checks the echoes and downloads.
import ArgumentParser
import Foundation
import QUIC
import LinuxNet
import Congestion

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

/// Drives one or more UDP sockets around a sans-I/O object: waits for input or a deadline.
struct EventLoop {
    let sockets: [UDPSocket]
    var buffer = [UInt8](repeating: 0, count: 65536)

    init(socket: UDPSocket) { self.sockets = [socket] }
    init(sockets: [UDPSocket]) { self.sockets = sockets }

    /// Waits for input or the deadline, then returns received datagrams with their sender and
    /// ECN codepoint (RFC 9000 §13.4.1).
    mutating func wait(until deadline: Timestamp?, maxWaitMs: Int32 = 1000) throws -> [(bytes: [UInt8], from: SocketAddress, ecn: ECNCodepoint)] {
        var timeout = maxWaitMs
        if let d = deadline {
            let now = MonotonicClock.now()
            let ms = d > now ? Int32(min(Double((d - now).nanoseconds) / 1e6 + 0.999, Double(maxWaitMs))) : 0
            timeout = ms
        }
        var received: [(bytes: [UInt8], from: SocketAddress, ecn: ECNCodepoint)] = []
        for socket in UDPSocket.waitReadable(sockets, timeoutMs: timeout) {
            while received.count < 256, let r = try socket.receive(into: &buffer) {
                received.append((Array(buffer[0..<r.count]), r.from, r.ecn))
            }
        }
        return received
    }
}
