// `tquic-peer server`: accepts connections on one UDP socket; echoes (tquic-echo) or serves
// files (hq-interop); prints one line per connection event for tests and people.
import ArgumentParser
import Congestion
import Foundation
import LinuxNet
import QUIC

struct ServerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "server", abstract: "Accept QUIC connections.")

    @Option(help: "Address to listen on, HOST:PORT.") var listen: String
    @Option(help: "PEM certificate chain.") var cert: String
    @Option(help: "PEM private key.") var key: String
    @Option(parsing: .upToNextOption, help: "ALPN protocols to accept (default: tquic-echo and hq-interop).") var alpn: [String] = []
    @Flag(help: "Validate client addresses with a Retry packet.") var retry = false
    @Option(help: "Directory served over HTTP/0.9 (hq-interop).") var www: String?
    @Option(help: "Directory for qlog files (one per connection).") var qlogDir: String?
    @Option(help: "Congestion controller of every path: newreno, cubic, bbr, copa, westwood.") var cc: String = "newreno"
    @Option(help: "Coupling across paths: none, lia, olia, balia.") var coupling: String = "none"
    @Flag(name: .customLong("no-gso"), help: "Send one datagram per message (no UDP GSO), to compare.") var noGSO = false

    func run() throws {
        let (_, address) = try parseHostPort(listen)
        var tlsConfig = TLSConfiguration(alpnProtocols: alpn.isEmpty ? [ALPN.echo, ALPN.hq] : alpn)
        tlsConfig.certificateChainFile = cert
        tlsConfig.privateKeyFile = key
        tlsConfig.enableEarlyData = true
        tlsConfig.keyLog = keyLogger()
        let tls = try TLSContext(configuration: tlsConfig, isServer: true)
        let random = SystemRandom()
        var connConfig = ConnectionConfiguration(tls: tls)
        guard let algorithm = CongestionAlgorithm(rawValue: cc) else { throw ValidationError("unknown --cc \(cc)") }
        guard let couplingAlgorithm = CouplingAlgorithm(rawValue: coupling) else { throw ValidationError("unknown --coupling \(coupling)") }
        connConfig.congestion = algorithm
        connConfig.coupling = couplingAlgorithm
        connConfig.statelessResetKey = random.bytes(32)
        // draft-ietf-quic-multipath: accept up to 8 paths (IDs 0-7) in every ALPN.
        connConfig.maxPathID = 7
        var endpointConfig = Endpoint.Configuration(connection: connConfig, tokenKey: random.bytes(16))
        endpointConfig.requireRetry = retry
        if let qlogDir {
            try FileManager.default.createDirectory(atPath: qlogDir, withIntermediateDirectories: true)
            let start = MonotonicClock.now()
            endpointConfig.makeQlog = { odcid in
                guard let f = fopen((qlogDir as NSString).appendingPathComponent("\(odcid).sqlog"), "w") else { return nil }
                nonisolated(unsafe) let file = f
                return QlogWriter(
                    title: "tquic-peer server", vantagePoint: "server", originalDestinationConnectionID: "\(odcid)",
                    start: start
                ) {
                    fputs($0, file)
                    fflush(file)
                }
            }
        }
        let endpoint = Endpoint(configuration: endpointConfig, random: random)
        let socket = try UDPSocket(bindTo: address)
        if noGSO { socket.segmentationOffload = false }
        out("listening on \(listen)")
        info("socket: \(socket.bufferSizes), GSO \(socket.segmentationOffload ? "on" : "off")")
        var loop = EventLoop(socket: socket)
        var apps: [ObjectIdentifier: ServerApplication] = [:]
        while true {
            // Take what is waiting; block only when nothing is.
            var now = MonotonicClock.now()
            func deliver(_ datagram: inout [UInt8], from: SocketAddress, ecn: ECNCodepoint) {
                endpoint.receive(datagram: &datagram, from: from, now: now, ecn: ecn)
            }
            if try loop.receive(deliver) == 0 {
                if loop.wait(until: endpoint.nextTimeout) {
                    now = MonotonicClock.now()
                    _ = try loop.receive(deliver)
                }
            }
            now = MonotonicClock.now()
            endpoint.handleTimeout(now: now)
            for c in endpoint.acceptedConnections() {
                apps[ObjectIdentifier(c)] = ServerApplication(connection: c, www: www, retried: retry)
            }
            for c in endpoint.connections {
                guard let app = apps[ObjectIdentifier(c)] else { continue }
                app.handleEvents(now: now)
                if c.isClosed {
                    apps[ObjectIdentifier(c)] = nil
                    info("socket: \(loop.statisticsDescription)")
                }
            }
            // Datagrams go out in batches: consecutive ones to one peer become one GSO send.
            while let t = endpoint.poll(now: now) {
                if try !loop.send(t) { break }
            }
            _ = try loop.flush()
            // Connections already closed and drained by the endpoint.
            if apps.count > endpoint.connections.count {
                let live = Set(endpoint.connections.map { ObjectIdentifier($0) })
                apps = apps.filter { live.contains($0.key) }
            }
        }
    }
}

/// Per-connection server behaviour, chosen by the negotiated ALPN.
final class ServerApplication {
    let connection: Connection
    let www: String?
    let retried: Bool
    var requests: [UInt64: [UInt8]] = [:]
    var answered: Set<UInt64> = []
    var echoFinished: Set<UInt64> = []
    /// hq-interop files being sent, by stream, and the buffer they are read into.
    var files: [UInt64: Int32] = [:]
    lazy var fileBuffer = [UInt8](repeating: 0, count: ServerApplication.fileChunk)
    var lastKeyPhaseGeneration = 0

    init(connection: Connection, www: String?, retried: Bool) {
        self.connection = connection
        self.www = www
        self.retried = retried
    }

    var peer: String { connection.remoteAddress.description }

    func handleEvents(now: Timestamp) {
        while let e = connection.pollEvent() {
            switch e {
            case .handshakeCompleted(let alpn):
                out(
                    "connection: peer=\(peer) alpn=\(alpn ?? "-") cipher=\(connection.cipherSuite?.name ?? "-") "
                        + "resumed=\(connection.isResumed ? "yes" : "no") early_data=\(connection.earlyDataAccepted ? "yes" : "no") "
                        + "retry=\(retried ? "yes" : "no")")
            case .streamReadable(let id):
                if connection.negotiatedALPN == ALPN.hq { serveHQ(id) } else { echo(id) }
            case .datagramReceived(let d):
                if connection.negotiatedALPN != ALPN.hq { try? connection.sendDatagram(d) }
            case .closed(let reason):
                out("closed: peer=\(peer) \(reason)")
            case .peerAddressChanged(let a):
                info("peer \(peer) moved to \(a)")
            case .pathValidated(let id):
                if let st = connection.pathStatistics(id) { out("path: peer=\(peer) id=\(id) remote=\(st.remote) validated") }
            case .pathClosed(let id):
                out("path: peer=\(peer) id=\(id) closed")
            default:
                break
            }
        }
        sendFiles()
        if connection.keyUpdatesCompleted != lastKeyPhaseGeneration {
            lastKeyPhaseGeneration = connection.keyUpdatesCompleted
            out("key-update: peer=\(peer) trigger=remote phase=\(lastKeyPhaseGeneration)")
        }
    }

    private func echo(_ id: UInt64) {
        guard StreamID.isBidirectional(id), !echoFinished.contains(id) else { return }
        guard let r = connection.readStream(id) else { return }
        if !r.data.isEmpty || r.fin { try? connection.writeStream(id, r.data, fin: r.fin) }
        if r.fin { echoFinished.insert(id) }
    }

    private func serveHQ(_ id: UInt64) {
        guard !answered.contains(id), let r = connection.readStream(id) else { return }
        requests[id, default: []] += r.data
        let request = requests[id]!
        guard r.fin || request.contains(0x0a) else { return }
        answered.insert(id)
        requests[id] = nil
        // HTTP/0.9: "GET /path\r\n"
        // (Bytes, not Characters: Swift treats "\r\n" as one Character.)
        let lineEnd = request.firstIndex(where: { $0 == 0x0d || $0 == 0x0a }) ?? request.count
        let line = String(decoding: request[..<lineEnd], as: UTF8.self)
        let parts = line.split(separator: " ")
        guard parts.count >= 2, parts[0] == "GET", let www else {
            info("stream \(id): bad request \(String(decoding: request.prefix(80), as: UTF8.self).debugDescription)")
            connection.resetStream(id, errorCode: 0x10)
            return
        }
        let name = parts[1].hasPrefix("/") ? String(parts[1].dropFirst()) : String(parts[1])
        // No path traversal out of the served directory.
        let fd =
            name.isEmpty || name.split(separator: "/").contains("..")
            ? -1
            : open((www as NSString).appendingPathComponent(name), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            info("stream \(id): not found: \(name)")
            connection.resetStream(id, errorCode: 0x10)
            return
        }
        files[id] = fd
        sendFiles()
    }

    /// Keeps every served file's stream at least `fileHighWater` bytes ahead of what the peer has
    /// acknowledged, in `fileChunk` reads: memory stays flat however large the file.
    func sendFiles() {
        guard !files.isEmpty else { return }
        var finished: [UInt64] = []
        for (id, fd) in files {
            while connection.streamSendBufferedBytes(id) < ServerApplication.fileHighWater {
                let n = fileBuffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n < 0 {
                    info("stream \(id): read failed: \(String(cString: strerror(errno)))")
                    connection.resetStream(id, errorCode: 0x10)
                    finished.append(id)
                    break
                }
                do {
                    try connection.writeStream(id, n == fileBuffer.count ? fileBuffer : Array(fileBuffer[0..<n]), fin: n == 0)
                } catch {
                    finished.append(id)  // reset by the peer meanwhile
                    break
                }
                if n == 0 {
                    finished.append(id)
                    break
                }
            }
        }
        for id in finished { close(files.removeValue(forKey: id)!) }
    }

    static let fileChunk = 1 << 20
    static let fileHighWater = 4 << 20

    deinit { for fd in files.values { close(fd) } }
}
