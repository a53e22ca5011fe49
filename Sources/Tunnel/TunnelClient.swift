// The router side, sans-I/O: one multipath connection to the VPS over the WAN links, its tunnel
// engine, and what keeps it there for months: a new connection (with backoff) when the old one
// is gone (the VPS rebooted, every WAN was down past the idle timeout), started on a WAN that is
// up, and WAN indexes that stay those of the configuration whatever path IDs come and go.
//
//   out: inner packet (the `source`, the TUN) → engine → `poll` → (datagram, WAN index)
//   in:  datagram from any WAN socket → `receive` → engine → `deliver` (the TUN)
import Bonding
import Congestion
import QUIC

public final class TunnelClient {
    public struct Statistics: Sendable, Equatable {
        public var connectionsOpened: UInt64 = 0
        /// Connections that closed (any reason) and were replaced.
        public var connectionsLost: UInt64 = 0
        public var lastCloseReason: String?
        public init() {}
    }

    /// Makes a client connection to the VPS (the caller's TLS, CIDs, congestion settings).
    public typealias ConnectionFactory = (_ now: Timestamp) throws -> Connection

    public private(set) var configuration: TunnelConfiguration
    /// The WANs in configuration order (their `isDown` follows the path manager).
    public private(set) var wans: [TunnelLink]
    public private(set) var connection: Connection?
    public private(set) var engine: TunnelEngine?
    public private(set) var statistics = Statistics()
    /// The engine's link i is WAN `engineWANs[i]` (link 0 carried the handshake).
    private var engineWANs: [Int] = []
    private let makeConnection: ConnectionFactory
    private var reconnectAt: Timestamp?
    private var backoff: Duration
    public static let firstBackoff: Duration = .milliseconds(500)
    public static let maxBackoff: Duration = .seconds(30)
    private var closing = false

    public init(configuration: TunnelConfiguration, wans: [TunnelLink], makeConnection: @escaping ConnectionFactory) {
        self.configuration = configuration
        self.wans = wans
        self.makeConnection = makeConnection
        backoff = TunnelClient.firstBackoff
    }

    /// Connects now (if a WAN is up).
    public func start(now: Timestamp) {
        reconnectAt = now
        connectIfDue(now: now)
    }

    public var isConnected: Bool { connection.map { $0.handshakeComplete && !$0.isClosed } ?? false }

    /// The WAN the handshake uses: the first up one that is no backup, else the first up one.
    private func handshakeWAN() -> Int? {
        wans.indices.first { !wans[$0].isDown && !wans[$0].isBackup } ?? wans.indices.first { !wans[$0].isDown }
    }

    private func connectIfDue(now: Timestamp) {
        guard !closing, connection == nil, let at = reconnectAt, now >= at, let first = handshakeWAN() else { return }
        reconnectAt = nil
        do {
            let c = try makeConnection(now)
            engineWANs = [first] + wans.indices.filter { $0 != first }
            let links = engineWANs.map { w -> TunnelLink in
                var l = wans[w]
                l.pathID = nil
                return l
            }
            let e = TunnelEngine(connection: c, configuration: configuration, links: links)
            for (i, w) in engineWANs.enumerated() where wans[w].isDown { e.paths.linkDown(i, connection: c, now: now) }
            connection = c
            engine = e
            statistics.connectionsOpened += 1
        } catch {
            statistics.lastCloseReason = "cannot start a connection: \(error)"
            scheduleReconnect(now: now)
        }
    }

    private func scheduleReconnect(now: Timestamp) {
        reconnectAt = now + backoff
        backoff = min(backoff * 2, TunnelClient.maxBackoff)
    }

    /// A datagram from any WAN socket (the connection tells paths apart by connection ID).
    public func receive(datagram: inout [UInt8], from remote: SocketAddress, now: Timestamp, ecn: ECNCodepoint = .notECT) {
        connection?.receive(datagram: &datagram, from: remote, now: now, ecn: ecn)
    }

    /// After every batch of input and at every timer.
    public func process(now: Timestamp, source: InnerPacketSource?, deliver: (UnsafeRawBufferPointer, UInt32) -> Void) {
        if let c = connection, c.isClosed {
            statistics.connectionsLost += 1
            statistics.lastCloseReason = c.closingReason?.description ?? "closed"
            connection = nil
            engine = nil
            // A connection that worked resets the backoff: reconnect soon.
            scheduleReconnect(now: now)
        }
        connectIfDue(now: now)
        if let c = connection, c.handshakeComplete { backoff = TunnelClient.firstBackoff }
        engine?.process(now: now, source: source, deliver: deliver)
    }

    /// One inner packet pushed in (rather than pulled from the `source`); false: dropped.
    @discardableResult
    public func send(_ packet: UnsafeRawBufferPointer, now: Timestamp) -> Bool {
        engine?.send(packet, now: now) ?? false
    }

    /// The next datagram and the WAN (configuration index) whose socket sends it.
    public func poll(now: Timestamp) -> (transmit: Transmit, wan: Int)? {
        guard let c = connection, let t = c.poll(now: now) else { return nil }
        var wan = engineWANs.first ?? 0
        if let e = engine, let i = e.paths.linkIndex(forPath: t.pathID), i < engineWANs.count { wan = engineWANs[i] }
        return (t, wan)
    }

    /// The socket of WAN `w` refused a datagram of `size` bytes as larger than its interface's
    /// MTU: that WAN's path stops sending such sizes at once.
    public func datagramRefusedAsTooLarge(wan w: Int, size: Int, now: Timestamp) {
        guard let c = connection, let e = engine, let i = engineWANs.firstIndex(of: w),
            i < e.paths.links.count, let id = e.paths.links[i].pathID
        else { return }
        c.datagramRefusedAsTooLarge(pathID: id, size: size, now: now)
    }

    /// The earliest of the connection's, the engine's and (while disconnected) the reconnect
    /// deadline. Asked at every wake-up of the daemon's loop: no array built for it.
    public var nextTimeout: Timestamp? {
        var t = connection?.nextTimeout
        if let e = engine?.nextTimeout { t = t.map { min($0, e) } ?? e }
        if connection == nil, let r = reconnectAt { t = t.map { min($0, r) } ?? r }
        return t
    }

    public func handleTimeout(now: Timestamp) {
        if let c = connection, let t = c.nextTimeout, t <= now { c.handleTimeout(now: now) }
    }

    // MARK: - The path manager's events (WAN index = configuration order)

    public func wanDown(_ w: Int, now: Timestamp) {
        guard w < wans.count, !wans[w].isDown else { return }
        wans[w].isDown = true
        if let c = connection, let e = engine, let i = engineWANs.firstIndex(of: w) { e.paths.linkDown(i, connection: c, now: now) }
    }

    public func wanUp(_ w: Int, now: Timestamp) {
        guard w < wans.count, wans[w].isDown else { return }
        wans[w].isDown = false
        if let c = connection, let e = engine, let i = engineWANs.firstIndex(of: w) { e.paths.linkUp(i, connection: c, now: now) }
        // Every WAN was down: connect now rather than at the end of a long backoff.
        if connection == nil, reconnectAt.map({ $0 > now }) ?? true {
            reconnectAt = now
            backoff = TunnelClient.firstBackoff
        }
    }

    /// A WAN added at runtime (a reload); returns its index.
    @discardableResult
    public func addWAN(_ link: TunnelLink, now: Timestamp) -> Int {
        wans.append(link)
        let w = wans.count - 1
        if let c = connection, let e = engine {
            engineWANs.append(w)
            e.paths.addLink(link, connection: c, now: now)
        }
        return w
    }

    /// Another scheduler, now and for later connections.
    public func setScheduler(_ kind: SchedulerKind) {
        configuration.scheduler = kind
        engine?.sender.setScheduler(kind)
    }

    /// WAN `w` becomes a backup or an available link, now and for later connections.
    public func setBackup(_ w: Int, _ backup: Bool) {
        guard w < wans.count else { return }
        wans[w].isBackup = backup
        if let c = connection, let e = engine, let i = engineWANs.firstIndex(of: w) { e.paths.setBackup(i, backup, connection: c) }
    }

    /// SIGTERM: CONNECTION_CLOSE to the VPS; no reconnection afterwards.
    public func close(now: Timestamp) {
        closing = true
        connection?.close(errorCode: 0, reason: "router shutting down", now: now)
    }
}
