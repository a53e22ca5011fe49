import Congestion
// What the client sends and expects: echo streams, datagrams (re-sent until echoed: they are
// unreliable), a pattern transfer, hq-interop downloads.
import Foundation
import QUIC

final class ClientApplication {
    let command: ClientCommand
    let connection: Connection
    let host: String
    var started = false
    var closing = false
    var failed: String?
    var closeReason: ConnectionEvent?
    var latestTicket: [UInt8]?

    /// One expected echo (a class, so appending received bytes never copies them).
    final class Transfer {
        let expected: [UInt8]
        let label: String
        var got: [UInt8] = []
        var done = false
        init(expected: [UInt8], label: String) {
            self.expected = expected
            self.label = label
        }
    }

    /// One hq-interop download, written to DIR/NAME.part as it arrives and renamed to DIR/NAME
    /// once complete: memory stays flat however large the file.
    final class Download {
        let label: String
        var received = 0
        var done = false
        var fd: Int32 = -1
        var path = ""
        init(label: String) { self.label = label }
        /// An unfinished download leaves no file behind.
        deinit {
            if fd >= 0 {
                close(fd)
                unlink(path + ".part")
            }
        }
    }

    // Echo streams by stream id.
    var echoStreams: [UInt64: Transfer] = [:]
    // Datagrams not echoed yet, with their last send time.
    var pendingDatagrams: [String: Timestamp] = [:]
    var echoedDatagrams: Set<String> = []
    // hq downloads by stream id.
    var downloads: [UInt64: Download] = [:]
    var printedResumption = false
    var keyUpdateRequested = false

    init(command: ClientCommand, connection: Connection, host: String) {
        self.command = command
        self.connection = connection
        self.host = host
    }

    var nextResend: Timestamp? {
        pendingDatagrams.values.min().map { $0 + .milliseconds(300) }
    }

    var isComplete: Bool {
        started && failed == nil && echoStreams.values.allSatisfy { $0.done } && pendingDatagrams.isEmpty
            && downloads.values.allSatisfy { $0.done } && (command.sessionFile == nil || printedResumption)
    }

    var missingDescription: String {
        var parts: [String] = []
        if !connection.handshakeComplete { parts.append("handshake not complete") }
        for s in echoStreams.values where !s.done { parts.append("stream \(s.label) got \(s.got.count)/\(s.expected.count) bytes") }
        for d in pendingDatagrams.keys { parts.append("datagram \(d) not echoed") }
        for d in downloads.values where !d.done { parts.append("download \(d.label) got \(d.received) bytes") }
        return parts.joined(separator: "; ")
    }

    func startRequests(now: Timestamp) {
        guard !started else { return }
        started = true
        if command.get.isEmpty {
            for text in command.stream { openEcho(Array(text.utf8), label: text) }
            if let n = command.downloadBytes {
                openEcho(patternBytes(n), label: "\(n) bytes echoed")
            }
            for text in command.datagram {
                pendingDatagrams[text] = now
                do { try connection.sendDatagram(Array(text.utf8)) } catch { failed = "cannot send datagram: \(error)" }
            }
        } else {
            for url in command.get {
                let path = urlPath(url)
                guard let id = connection.openStream() else {
                    failed = "no stream available for \(url)"
                    return
                }
                let name = path.split(separator: "/").last.map(String.init) ?? "index"
                downloads[id] = Download(label: name)
                do { try connection.writeStream(id, Array("GET \(path)\r\n".utf8), fin: true) } catch { failed = "\(error)" }
            }
        }
    }

    private func urlPath(_ url: String) -> String {
        // https://HOST:PORT/NAME -> /NAME
        guard let schemeEnd = url.range(of: "://") else { return url.hasPrefix("/") ? url : "/" + url }
        let rest = url[schemeEnd.upperBound...]
        guard let slash = rest.firstIndex(of: "/") else { return "/" }
        return String(rest[slash...])
    }

    private func openEcho(_ bytes: [UInt8], label: String) {
        guard let id = connection.openStream() else {
            failed = "no stream available"
            return
        }
        echoStreams[id] = Transfer(expected: bytes, label: label)
        do { try connection.writeStream(id, bytes, fin: true) } catch { failed = "\(error)" }
    }

    func handleEvents(now: Timestamp) {
        while let e = connection.pollEvent() {
            switch e {
            case .handshakeCompleted:
                if command.sessionFile != nil {
                    out("resumed: \(connection.isResumed ? "yes" : "no")")
                    printedResumption = true
                }
                if command.zeroRtt {
                    out("zero-rtt: \(connection.earlyDataAccepted ? "accepted" : "rejected")")
                }
                info("connected: alpn=\(connection.negotiatedALPN ?? "-") cipher=\(connection.cipherSuite?.name ?? "-")")
                startRequests(now: now)
            case .streamReadable(let id):
                readStream(id)
            case .streamReset(let id, let code):
                failed = "server reset stream \(id) with error \(code)"
            case .datagramReceived(let d):
                let text = String(decoding: d, as: UTF8.self)
                if pendingDatagrams.removeValue(forKey: text) != nil, !echoedDatagrams.contains(text) {
                    echoedDatagrams.insert(text)
                    out("datagram: \(text)")
                }
            case .sessionTicket(let t):
                latestTicket = t
            case .closed:
                closeReason = e
            default:
                break
            }
        }
        if command.keyUpdate && !keyUpdateRequested && connection.handshakeConfirmed {
            keyUpdateRequested = true
            connection.initiateKeyUpdate()
        }
        if keyUpdateRequested && connection.keyUpdatesCompleted > 0 && !reportedKeyUpdate {
            reportedKeyUpdate = true
            info("key updates: local=\(connection.keyUpdatesCompleted)")
        }
        // Datagrams are unreliable: re-send the unanswered ones every 300 ms.
        for (text, sentAt) in pendingDatagrams where now >= sentAt + .milliseconds(300) {
            pendingDatagrams[text] = now
            try? connection.sendDatagram(Array(text.utf8))
        }
    }

    var reportedKeyUpdate = false

    private func readStream(_ id: UInt64) {
        guard let r = connection.readStream(id) else { return }
        if let s = echoStreams[id] {
            s.got += r.data
            if r.fin && !s.done {
                s.done = true
                if s.got == s.expected {
                    out("stream: \(s.label)")
                } else {
                    failed = "stream \(id) echo differs from what was sent (\(s.got.count) of \(s.expected.count) bytes)"
                }
            }
        } else if let d = downloads[id], !d.done {
            if d.fd < 0 {
                let dir = command.downloads!
                d.path = (dir as NSString).appendingPathComponent(d.label)
                try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                d.fd = open(d.path + ".part", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
                if d.fd < 0 {
                    failed = "cannot write \(d.path).part: \(String(cString: strerror(errno)))"
                    return
                }
            }
            if !r.data.isEmpty {
                if !writeAll(d.fd, r.data) {
                    failed = "cannot write \(d.path).part: \(String(cString: strerror(errno)))"
                    return
                }
                d.received += r.data.count
            }
            if r.fin {
                d.done = true
                close(d.fd)
                d.fd = -1
                if rename(d.path + ".part", d.path) != 0 { failed = "cannot rename \(d.path).part: \(String(cString: strerror(errno)))" }
            }
        }
    }

    private func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { buf in
            var done = 0
            while done < buf.count {
                let n = write(fd, buf.baseAddress! + done, buf.count - done)
                if n > 0 { done += n } else if n < 0 && errno == EINTR { continue } else { return false }
            }
            return true
        }
    }
}

/// Byte i = i % 251 (the interop suite's transfer pattern), built by doubling instead of per byte.
func patternBytes(_ n: Int) -> [UInt8] {
    var out = [UInt8]()
    out.reserveCapacity(n)
    let block = (0..<251).map { UInt8($0) }
    while out.count + 251 <= n { out += block }
    out += block.prefix(n - out.count)
    return out
}
