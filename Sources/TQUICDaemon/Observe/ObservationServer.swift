// The HTTP listener of `metrics = ADDRESS:PORT`: /metrics for Prometheus, / for the dashboard
// page, /status.json and /history.json (the last five minutes) for the page's charts. SwiftNIO's HTTP/1.1 server on one thread of its own:
// it only reads what the daemon's loop published (MetricsExporter, ObservationBoard), so the
// tunnel's state keeps its single owner (Daemon.swift) and a slow or hostile HTTP client never
// delays a packet.
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// The status JSON the loop published, the latest and those of the last five minutes (so that
/// the dashboard opens on charts, not on an empty page).
final class ObservationBoard: Sendable {
    static let historyLength = 300
    private let state = Mutex<(latest: [UInt8], history: [[UInt8]], next: Int)>((Array("{}\n".utf8), [], 0))

    func publish(_ text: String) {
        let bytes = Array(text.utf8)
        state.withLock { s in
            s.latest = bytes
            if s.history.count < ObservationBoard.historyLength {
                s.history.append(bytes)
            } else {
                s.history[s.next] = bytes
            }
            s.next = (s.next + 1) % ObservationBoard.historyLength
        }
    }

    var current: [UInt8] { state.withLock { $0.latest } }

    /// A JSON array of the kept samples, oldest first.
    var history: [UInt8] {
        state.withLock { s in
            let ordered = s.history.count < ObservationBoard.historyLength ? s.history : Array(s.history[s.next...] + s.history[..<s.next])
            var out: [UInt8] = [UInt8(ascii: "[")]
            for (i, h) in ordered.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                out += h
            }
            out += Array("]\n".utf8)
            return out
        }
    }
}

final class ObservationServer {
    private let group: MultiThreadedEventLoopGroup
    private let channel: Channel
    /// Where it listens (the port the kernel chose for port 0).
    let localPort: Int

    /// Binds `host`:`port` and serves until `close()`.
    /// - Throws: the bind's error (address in use, not an address of this host).
    init(host: String, port: Int, exporter: MetricsExporter, board: ObservationBoard) throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 32)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(ObservationHTTPHandler(exporter: exporter, board: board))
                }
            }
            .childChannelOption(.maxMessagesPerRead, value: 1)
        do {
            channel = try bootstrap.bind(host: host, port: port).wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw error
        }
        self.group = group
        localPort = channel.localAddress?.port ?? port
    }

    func close() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }
}

/// One HTTP connection: GET requests for the three documents, answered whole.
final class ObservationHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let exporter: MetricsExporter
    private let board: ObservationBoard
    private var head: HTTPRequestHead?

    init(exporter: MetricsExporter, board: ObservationBoard) {
        self.exporter = exporter
        self.board = board
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): head = h
        case .body: break  // no request here has a body; what one sends is ignored
        case .end:
            guard let h = head else { return }
            head = nil
            respond(context: context, to: h)
        }
    }

    /// (status, content type, body) for a request.
    func answer(method: HTTPMethod, uri: String) -> (HTTPResponseStatus, String, [UInt8]) {
        guard method == .GET || method == .HEAD else { return (.methodNotAllowed, "text/plain; charset=utf-8", Array("GET only\n".utf8)) }
        let path = uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? uri
        switch path {
        case "/metrics": return (.ok, "text/plain; version=0.0.4; charset=utf-8", exporter.text())
        case "/", "/index.html": return (.ok, "text/html; charset=utf-8", Array(DashboardPage.html.utf8))
        case "/status.json": return (.ok, "application/json", board.current)
        case "/history.json": return (.ok, "application/json", board.history)
        default:
            return (
                .notFound, "text/plain; charset=utf-8",
                Array("not found: /metrics, /status.json, /history.json or / (the dashboard)\n".utf8)
            )
        }
    }

    private func respond(context: ChannelHandlerContext, to h: HTTPRequestHead) {
        let (status, type, body) = answer(method: h.method, uri: h.uri)
        var headers = HTTPHeaders([
            ("Content-Type", type), ("Content-Length", "\(body.count)"), ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
        ])
        let keepAlive = h.isKeepAlive
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: h.version, status: status, headers: headers))), promise: nil)
        if h.method != .HEAD {
            var buffer = context.channel.allocator.buffer(capacity: body.count)
            buffer.writeBytes(body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            if !keepAlive { bound.value.close(promise: nil) }
        }
    }
}
