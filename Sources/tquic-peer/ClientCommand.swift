// `tquic-peer client`: connects, sends the requested streams/datagrams/downloads, verifies the
// echoes, prints one line per success and exits 0 only when everything expected arrived.
import ArgumentParser
import Congestion
import Foundation
import LinuxNet
import QUIC

struct ClientCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "client", abstract: "Connect to a QUIC server.")

    @Option(help: "Server address, HOST:PORT.") var connect: String
    @Option(help: "ALPN to offer (default tquic-echo, or hq-interop with --get).") var alpn: String?
    @Flag(help: "Do not verify the server certificate.") var insecure = false
    @Option(help: "PEM CA file to verify the server certificate against.") var ca: String?
    @Option(help: "Accept a server whose public key (SubjectPublicKeyInfo) has this SHA-256, hex.") var pin: String?
    @Option(help: "Server name for SNI and certificate checks (default: the host of --connect).") var serverName: String?
    @Option(help: "Send TEXT on its own stream and expect it echoed.") var stream: [String] = []
    @Option(help: "Send TEXT as a DATAGRAM and expect it echoed.") var datagram: [String] = []
    @Option(help: "Echo N pattern bytes through one stream and verify them.") var downloadBytes: Int?
    @Flag(help: "Offer only TLS_CHACHA20_POLY1305_SHA256.") var chacha20 = false
    @Flag(help: "Initiate a 1-RTT key update once the handshake is confirmed.") var keyUpdate = false
    @Option(parsing: .upToNextOption, help: "hq-interop URLs to fetch (https://HOST:PORT/NAME).") var get: [String] = []
    @Option(help: "Directory for --get downloads.") var downloads: String?
    @Option(help: "Load a session ticket from FILE if present, save the new one there.") var sessionFile: String?
    @Flag(help: "Send the requests as 0-RTT when a ticket allows it.") var zeroRtt = false
    @Option(help: "Give up after SECONDS.") var timeout: Double = 20
    @Option(help: "Write a qlog file here.") var qlog: String?
    @Option(help: "Congestion controller of every path: newreno, cubic, bbr, copa, westwood.") var cc: String = "newreno"
    @Option(help: "Coupling across paths: none, lia, olia, balia.") var coupling: String = "none"
    @Flag(name: .customLong("no-gso"), help: "Send one datagram per message (no UDP GSO), to compare.") var noGSO = false
    @Option(help: "Open an extra path from this local address (repeatable; multipath, draft-ietf-quic-multipath).") var path: [String] = []

    func validate() throws {
        if insecure && ca != nil { throw ValidationError("--insecure and --ca exclude each other") }
        if !get.isEmpty && downloads == nil { throw ValidationError("--get needs --downloads DIR") }
        if stream.isEmpty && datagram.isEmpty && downloadBytes == nil && get.isEmpty {
            throw ValidationError("nothing to do: give --stream, --datagram, --download-bytes or --get")
        }
    }

    func run() throws {
        let (host, address) = try parseHostPort(connect)
        let protocolName = alpn ?? (get.isEmpty ? ALPN.echo : ALPN.hq)
        var tlsConfig = TLSConfiguration(alpnProtocols: [protocolName])
        if let ca { tlsConfig.verification = .caFile(ca) }
        if let pin {
            guard let bytes = hexBytes(pin), bytes.count == 32 else { throw ValidationError("--pin must be 64 hex digits") }
            tlsConfig.verification = .pinnedPublicKeySHA256([bytes])
        }
        if chacha20 { tlsConfig.cipherSuites = [.chacha20Poly1305SHA256] }
        tlsConfig.enableEarlyData = zeroRtt
        tlsConfig.keyLog = keyLogger()
        let tls = try TLSContext(configuration: tlsConfig, isServer: false)
        var config = ConnectionConfiguration(tls: tls)
        guard let algorithm = CongestionAlgorithm(rawValue: cc) else { throw ValidationError("unknown --cc \(cc)") }
        guard let couplingAlgorithm = CouplingAlgorithm(rawValue: coupling) else { throw ValidationError("unknown --coupling \(coupling)") }
        config.congestion = algorithm
        config.coupling = couplingAlgorithm
        let random = SystemRandom()
        config.statelessResetKey = random.bytes(32)
        let qlogFile = qlog.flatMap { fopen($0, "w") }
        let start = MonotonicClock.now()
        let saved = sessionFile.flatMap { SavedSession.load(from: $0) }
        if let f = qlogFile {
            nonisolated(unsafe) let file = f
            config.qlog = QlogWriter(
                title: "tquic-peer client", vantagePoint: "client", originalDestinationConnectionID: "",
                start: start
            ) { fputs($0, file) }
        }
        if !path.isEmpty { config.maxPathID = 7 }
        let socket = try UDPSocket(bindTo: SocketAddress(ip: address.isIPv6 ? [UInt8](repeating: 0, count: 16) : [0, 0, 0, 0], port: 0))
        // One socket per extra path, bound to its local address (in the appliance: to its WAN interface).
        var pathSockets: [(socket: UDPSocket, local: SocketAddress)] = []
        for text in path {
            guard let ip = SocketAddress.parseIP(text) ?? SocketAddress(text).map({ $0.ip }) else {
                throw ValidationError("--path expects a local IP address, got \(text)")
            }
            let port = SocketAddress(text)?.port ?? 0
            let s = try UDPSocket(bindTo: SocketAddress(ip: ip, port: port))
            guard let local = s.localAddress else { throw ValidationError("cannot read the local address of \(text)") }
            pathSockets.append((s, local))
        }
        let connection = try Connection(
            clientWith: config, serverName: serverName ?? host, remote: address, random: random,
            now: start, session: saved?.ticket, rememberedParameters: saved?.parameters)
        let app = ClientApplication(command: self, connection: connection, host: host)
        if zeroRtt && saved != nil { app.startRequests(now: start) }
        if noGSO { for s in [socket] + pathSockets.map({ $0.socket }) { s.segmentationOffload = false } }
        var loop = EventLoop(sockets: [socket] + pathSockets.map { $0.socket })
        var pathsOpened = false
        let deadline = start + .seconds(timeout)
        var exitCode: Int32 = 1
        while true {
            var now = MonotonicClock.now()
            if !pathsOpened && connection.handshakeConfirmed && !pathSockets.isEmpty {
                if connection.isMultipathEnabled {
                    pathsOpened = true
                    for p in pathSockets {
                        if let id = connection.openPath(local: p.local, now: now) {
                            info("opening path \(id) from \(p.local)")
                        } else {
                            errorLine("could not open a path from \(p.local)")
                        }
                    }
                } else if connection.peerParameters != nil {
                    pathsOpened = true
                    info("server does not support multipath: staying on one path")
                }
            }
            // Datagrams go out in batches: consecutive ones of a path become one GSO send.
            while let t = connection.poll(now: now) {
                let index = t.source.flatMap { src in pathSockets.firstIndex { $0.local == src }.map { $0 + 1 } } ?? 0
                if try !loop.send(t, on: index) { break }
            }
            _ = try loop.flush()
            if connection.isClosed { break }
            if now >= deadline {
                errorLine("timed out after \(timeout) s: \(app.missingDescription)")
                break
            }
            // Take what is waiting; block only when nothing is.
            now = MonotonicClock.now()
            func deliver(_ datagram: inout [UInt8], from: SocketAddress, ecn: ECNCodepoint) {
                connection.receive(datagram: &datagram, from: from, now: now, ecn: ecn)
            }
            if try loop.receive(deliver) == 0 {
                var wake = deadline
                if let t = connection.nextTimeout, t < wake { wake = t }
                if let t = app.nextResend, t < wake { wake = t }
                if loop.wait(until: wake) {
                    now = MonotonicClock.now()
                    _ = try loop.receive(deliver)
                }
            }
            now = MonotonicClock.now()
            if let t = connection.nextTimeout, t <= now { connection.handleTimeout(now: now) }
            app.handleEvents(now: now)
            if app.failed != nil { connection.close(errorCode: 1, reason: "check failed", now: now) }
            if app.isComplete && !app.closing {
                app.closing = true
                connection.close(errorCode: 0, reason: "done", now: now)
            }
        }
        if let f = qlogFile { fclose(f) }
        info("sockets: \(loop.statisticsDescription)")
        // One line per path, also for a single path: its ECN validation state (RFC 9000 §13.4.2)
        // shows whether the network and the peer carry the marks.
        for st in connection.allPathStatistics {
            info(
                "path \(st.id) local=\(st.local.map { "\($0)" } ?? "default") state=\(st.state.rawValue) packets sent=\(st.packetsSent) received=\(st.packetsReceived) bytes acked=\(st.bytesAcked) srtt=\(st.smoothedRTT) ecn=\(st.ecnState)"
            )
        }
        if let sessionFile, let ticket = app.latestTicket {
            SavedSession(ticket: ticket, parameters: connection.peerParameters?.encode() ?? []).save(to: sessionFile)
        }
        if let failure = app.failed {
            errorLine(failure)
        } else if app.isComplete {
            exitCode = 0
        } else if case .closed(let reason)? = app.closeReason, !app.isComplete {
            errorLine("connection closed before all echoes arrived: \(reason)")
        }
        if exitCode != 0 { throw ExitCode(exitCode) }
    }
}

func hexBytes(_ s: String) -> [UInt8]? {
    let chars = Array(s)
    guard chars.count % 2 == 0 else { return nil }
    var out: [UInt8] = []
    for i in stride(from: 0, to: chars.count, by: 2) {
        guard let b = UInt8(String(chars[i...i + 1]), radix: 16) else { return nil }
        out.append(b)
    }
    return out
}

/// A resumption ticket and the server's transport parameters (RFC 9000 §7.4.1: 0-RTT uses the
/// remembered limits), stored in a small file.
struct SavedSession {
    var ticket: [UInt8]
    var parameters: [UInt8]

    static func load(from path: String) -> SavedSession? {
        guard let d = FileManager.default.contents(atPath: path) else { return nil }
        var r = ByteReader([UInt8](d))
        guard let magic = try? r.readUInt32(), magic == 0x5451_5331,  // "TQS1"
            let tl = try? r.readUInt32(), let t = try? r.readBytes(Int(tl)),
            let pl = try? r.readUInt32(), let p = try? r.readBytes(Int(pl))
        else { return nil }
        return SavedSession(ticket: Array(t), parameters: Array(p))
    }

    func save(to path: String) {
        var w = ByteWriter()
        w.writeUInt32(0x5451_5331)
        w.writeUInt32(UInt32(ticket.count))
        w.writeBytes(ticket)
        w.writeUInt32(UInt32(parameters.count))
        w.writeBytes(parameters)
        _ = FileManager.default.createFile(atPath: path, contents: Data(w.bytes))
    }
}
