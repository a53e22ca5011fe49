// role = router: the TUN (LAN side) and one UDP socket per WAN around a TunnelClient, plus the
// automatic path manager: rtnetlink tells when a WAN interface goes down, comes back, or gets or
// loses its address, and the WAN stops or starts carrying a path at once.
//
//   TUN → TUNPacketSource (pulled by the engine) → TunnelClient → WAN socket batches (sendmmsg, GSO)
//   WAN sockets (recvmmsg, GRO) → TunnelClient → TUN
import Bonding
import Congestion
import LinuxNet
import QUIC
import Tunnel

/// The congestion controller new connections get: a box the connection factory shares.
final class CongestionChoice {
    var algorithm: CongestionAlgorithm
    init(_ a: CongestionAlgorithm) { algorithm = a }
}

final class RouterDataPlane: DataPlane {
    private var configuration: DaemonConfiguration
    private let router: RouterConfiguration
    private let log: Log
    let source: TUNPacketSource
    private let client: TunnelClient
    private var wans: [WANSocket]
    /// WANs taken out by a reload (their index stays, so path bookkeeping stays simple).
    private var removed: Set<Int> = []
    private let monitor: NetlinkMonitor
    private let netlink: RouteNetlink
    private let receiveBatch = UDPReceiveBatch()
    private var datagram: [UInt8] = []
    private weak var loop: EpollLoop?
    private var tunInterest = true
    private var udpReceived = UDPReceiveCounters()
    /// The TUN's MTU now; with `mtu = auto` it follows the smallest usable path.
    private(set) var tunMTU: Int
    private let maximumMTU: Int
    private let followsPaths: Bool
    private var nextMTUCheck = Timestamp.zero
    private var seenMTUChanges = 0
    /// The congestion controller of new connections (a box the connection factory reads).
    private let congestionChoice: CongestionChoice

    private static let tunToken = DaemonToken.firstRole
    private static let netlinkToken = DaemonToken.firstRole + 1
    private static let firstWANToken = DaemonToken.firstRole + 2
    /// Datagrams taken from one socket per wake-up before the others (and sending) get a turn.
    private static let receiveBudget = 512

    init(
        configuration: DaemonConfiguration, key: TunnelKey, tun: TUNDevice, netlink: RouteNetlink,
        initialMTU: Int, maximumMTU: Int, log: Log, now: Timestamp
    ) throws {
        guard let router = configuration.router else { preconditionFailure("router role without [server]") }
        self.configuration = configuration
        self.router = router
        self.log = log
        self.netlink = netlink
        datagram.reserveCapacity(65536)
        source = TUNPacketSource(
            tun: tun,
            maxInnerPacket: min(initialMTU, TunnelTransport.innerPacketCapacity(maxUDPPayloadSize: TunnelTransport.baseUDPPayloadSize)))
        tunMTU = initialMTU
        self.maximumMTU = maximumMTU
        followsPaths = configuration.tunnel.mtu == nil
        monitor = try NetlinkMonitor()
        wans = router.wans.map { WANSocket(configuration: $0, serverIsIPv6: router.server.isIPv6) }
        let tls = try TLSContext(
            configuration: TunnelTransport.routerTLS(key: key, serverPublicKey: router.serverPublicKey), isServer: false)
        let congestionChoice = CongestionChoice(CongestionAlgorithm(rawValue: configuration.congestion) ?? .bbr)
        self.congestionChoice = congestionChoice
        var settings = TunnelTransport.connectionConfiguration(
            tls: tls, congestion: CongestionAlgorithm(rawValue: configuration.congestion) ?? .bbr, ipv6: router.server.isIPv6,
            keepAlive: configuration.keepaliveSeconds > 0 ? .seconds(Double(configuration.keepaliveSeconds)) : nil)
        let server = router.server
        let random = SystemRandom()
        let qlog = try configuration.qlogDirectory.map { try QlogFiles(directory: $0, maxBytes: configuration.qlogMaxBytes, log: log) }
        var connectionNumber = 0
        var tunnel = TunnelConfiguration()
        tunnel.scheduler = SchedulerKind(rawValue: configuration.scheduler) ?? .default
        client = TunnelClient(
            configuration: tunnel,
            wans: router.wans.map {
                TunnelLink(name: $0.interface, interface: $0.interface, isBackup: $0.isBackup, weight: $0.weight)
            }
        ) { now in
            // A `tquicctl congestion set` applies to the connections made after it too.
            settings.congestion = congestionChoice.algorithm
            connectionNumber += 1
            settings.qlog = qlog?.makeSink(role: "router", connectionID: "connection\(connectionNumber)", now: now)
            return try Connection(clientWith: settings, serverName: nil, remote: server, random: random, now: now)
        }
        refreshInterfaces(now: now, starting: true)
        client.start(now: now)
    }

    func register(in loop: EpollLoop) throws {
        self.loop = loop
        try loop.add(fd: source.tun.fd, events: .readable, token: RouterDataPlane.tunToken)
        try loop.add(fd: monitor.fd, events: .readable, token: RouterDataPlane.netlinkToken)
        for (i, w) in wans.enumerated() {
            if let s = w.socket { try loop.add(fd: s.fd, events: .readable, token: RouterDataPlane.firstWANToken + i) }
        }
    }

    func readable(token: Int, now: Timestamp) {
        switch token {
        case RouterDataPlane.tunToken:
            source.rearm()
        case RouterDataPlane.netlinkToken:
            // Drain the events; whatever they say (a resync included), any change may concern a
            // WAN, so compare with a fresh dump (a few syscalls, rare).
            do { try monitor.readEvents { _ in } } catch { log.warning("netlink monitor: \(error)") }
            refreshInterfaces(now: now, starting: false)
        default:
            let i = token - RouterDataPlane.firstWANToken
            guard i >= 0, i < wans.count, let socket = wans[i].socket else { return }
            receive(from: socket, now: now)
        }
    }

    private func receive(from socket: UDPSocket, now: Timestamp) {
        var taken = 0
        while taken < RouterDataPlane.receiveBudget {
            let n: Int
            do { n = try socket.receive(into: receiveBatch) } catch {
                log.debug("receive: \(error)")
                return
            }
            if n == 0 { return }
            for k in 0..<n {
                receiveBatch.copyDatagram(k, into: &datagram)
                let d = receiveBatch[k]
                client.receive(datagram: &datagram, from: d.source, now: now, ecn: d.ecn)
            }
            udpReceived.count(receiveBatch)
            taken += n
            if receiveBatch.messageCount < receiveBatch.messageCapacity { return }
        }
    }

    func run(now: Timestamp) {
        client.handleTimeout(now: now)
        let source = self.source
        client.process(now: now, source: source) { packet, _ in source.write(packet) }
        source.flush()
        while let (t, wan) = client.poll(now: now) {
            guard wan < wans.count, let batch = wans[wan].batch else { continue }
            do { try batch.append(t.bytes, to: t.destination, ecn: t.ecn) } catch { log.debug("send on \(wans[wan].name): \(error)") }
        }
        for (i, w) in wans.enumerated() {
            guard let b = w.batch else { continue }
            if !b.isEmpty { _ = try? b.flush() }
            // The WAN's own MTU fell below what its path sends (EMSGSIZE): tell the path now.
            if let size = b.takeRefusedSize() { client.datagramRefusedAsTooLarge(wan: i, size: size, now: now) }
        }
        // At once when a path's MTU changed, and now and then (a path came or went).
        let changes = client.engine?.pathMTUChanges ?? 0
        if now >= nextMTUCheck || changes != seenMTUChanges {
            nextMTUCheck = now + .milliseconds(200)
            seenMTUChanges = changes
            followPathMTU()
        }
        // Watch the TUN only while the engine wants packets (it found the TUN empty); when it
        // stopped for lack of room, a readable TUN must not wake the loop in a spin.
        let want = source.drained
        if want != tunInterest, let loop {
            try? loop.modify(fd: source.tun.fd, events: want ? .readable : [], token: RouterDataPlane.tunToken)
            tunInterest = want
        }
    }

    var nextTimeout: Timestamp? { client.nextTimeout }

    /// What the tunnel carries now decides which TUN packets get an ICMP "too big"; the TUN MTU
    /// follows it (never below IPv6's 1280) so the LAN's hosts send packets that fit.
    private func followPathMTU() {
        guard let engine = client.engine, let capacity = engine.innerPacketCapacity, capacity > 0 else { return }
        source.maxInnerPacket = capacity
        source.answersTooBig = engine.answersTooBig
        guard followsPaths else { return }
        let want = max(TunnelTransport.minimumTunnelMTU, min(capacity, maximumMTU))
        guard want != tunMTU else { return }
        do {
            try netlink.setMTU(source.tun.name, want)
            log.notice("\(source.tun.name): mtu \(tunMTU) -> \(want) (the smallest path carries \(capacity)-byte packets)")
            tunMTU = want
        } catch {
            log.warning("\(source.tun.name): setting mtu \(want): \(error)")
        }
    }

    // MARK: - The path manager

    /// Which WANs can carry a path now, from a dump of links and addresses; opens sockets of
    /// WANs that became usable and tells the tunnel about every change.
    private func refreshInterfaces(now: Timestamp, starting: Bool) {
        let links: [NetworkInterface]
        let addresses: [InterfaceAddress]
        do {
            links = try netlink.links()
            addresses = try netlink.addresses()
        } catch {
            log.warning("reading interfaces: \(error)")
            return
        }
        for (i, w) in wans.enumerated() where !removed.contains(i) {
            let link = links.first { $0.name == w.name }
            w.interfaceIndex = link?.index
            w.addresses = addresses.filter { $0.interfaceName == w.name }.map(\.prefix).filter { !isLinkLocal($0) }
            var usable = link.map { $0.isUp && $0.hasCarrier } ?? false
            usable = usable && w.addresses.contains { $0.isIPv6 == router.server.isIPv6 }
            if usable, w.socket == nil {
                if w.open(), let loop, let s = w.socket {
                    try? loop.add(fd: s.fd, events: .readable, token: RouterDataPlane.firstWANToken + i)
                } else if w.socket == nil {
                    log.warning("WAN \(w.name): cannot open its socket: \(w.openError ?? "?")")
                    usable = false
                }
            }
            guard usable != w.isUsable || starting else { continue }
            w.isUsable = usable
            if usable {
                log.notice("WAN \(w.name) is up (\(w.addresses.map(\.description).joined(separator: ", ")))")
                client.wanUp(i, now: now)
            } else {
                log.notice("WAN \(w.name) is down" + (link == nil ? " (no such interface)" : ""))
                client.wanDown(i, now: now)
            }
        }
    }

    private func isLinkLocal(_ p: IPPrefix) -> Bool {
        p.isIPv6
            ? (p.address.ipByte(0) == 0xfe && p.address.ipByte(1) & 0xc0 == 0x80)
            : (p.address.ipByte(0) == 169 && p.address.ipByte(1) == 254)
    }

    // MARK: - Reload and shutdown

    func reload(_ new: DaemonConfiguration, now: Timestamp) throws {
        guard let newRouter = new.router else { return }
        if newRouter.server != router.server || newRouter.serverPublicKey != router.serverPublicKey
            || new.privateKey != configuration.privateKey
        {
            log.warning("reload: the server or a key changed; that takes a restart (systemctl restart tquic)")
        }
        let wanted = newRouter.wans.map(\.interface)
        for (i, w) in wans.enumerated() where !removed.contains(i) && !wanted.contains(w.name) {
            _ = removeWAN(named: w.name, now: now)
            log.notice("reload: WAN \(w.name) removed")
        }
        for c in newRouter.wans where addWAN(c, now: now) {
            log.notice("reload: WAN \(c.interface) added")
        }
        configuration = new
        refreshInterfaces(now: now, starting: false)
    }

    func shutdown(now: Timestamp) { client.close(now: now) }

    // MARK: - Runtime changes (reload, tquicctl)

    /// The index of a WAN in service with this interface.
    func activeWANIndex(named name: String) -> Int? {
        wans.indices.first { wans[$0].name == name && !removed.contains($0) }
    }

    /// A WAN into service (a reload, `tquicctl paths add`); false if it is in service already.
    /// It carries a path as soon as its interface is usable.
    func addWAN(_ c: WANConfiguration, now: Timestamp) -> Bool {
        guard activeWANIndex(named: c.interface) == nil else { return false }
        if let i = wans.firstIndex(where: { $0.name == c.interface }) {
            // Back after a removal: the same index (the link's path history stays with it).
            removed.remove(i)
            wans[i].isUsable = false
            client.setBackup(i, c.isBackup)
        } else {
            wans.append(WANSocket(configuration: c, serverIsIPv6: router.server.isIPv6))
            client.addWAN(TunnelLink(name: c.interface, interface: c.interface, isBackup: c.isBackup, weight: c.weight), now: now)
            client.wanDown(wans.count - 1, now: now)
        }
        refreshInterfaces(now: now, starting: false)
        return true
    }

    /// A WAN out of service: its path is abandoned at once and its socket closed.
    func removeWAN(named name: String, now: Timestamp) -> Bool {
        guard let i = activeWANIndex(named: name) else { return false }
        removed.insert(i)
        client.wanDown(i, now: now)
        if let s = wans[i].socket { try? loop?.remove(fd: s.fd) }
        wans[i].close()
        wans[i].isUsable = false
        return true
    }

    func setBackup(_ w: Int, _ backup: Bool) { client.setBackup(w, backup) }

    func setScheduler(_ kind: SchedulerKind) {
        client.setScheduler(kind)
        configuration.scheduler = kind.rawValue
    }

    func setCongestion(_ algorithm: CongestionAlgorithm) {
        congestionChoice.algorithm = algorithm
        configuration.congestion = algorithm.rawValue
        if let c = client.connection { c.setCongestionControl(algorithm, coupling: c.coupling) }
    }

    var observation: Observation { .router(statusJSON()) }

    func statusJSON() -> RouterStatusJSON {
        let engine = client.engine
        var paths: [PathJSON] = []
        for (i, w) in wans.enumerated() where !removed.contains(i) {
            var p = PathJSON(
                interface: w.name, pathID: nil, state: w.isUsable ? "no path" : "down", up: w.isUsable,
                backup: client.wans[i].isBackup, dead: nil)
            if let e = engine, let link = e.paths.links.first(where: { $0.interface == w.name }) {
                p.dead = link.isDead
                if let id = link.pathID, let st = e.connection.pathStatistics(id) {
                    p = pathJSON(st, interface: w.name)
                    p.up = w.isUsable
                    p.dead = link.isDead
                }
            }
            paths.append(p)
        }
        var tunnel: TunnelCountersJSON?
        if let e = engine {
            let s = e.sender.statistics
            let r = e.receiver.statistics
            tunnel = TunnelCountersJSON(
                innerPacketsSent: s.innerPacketsSent, innerBytesSent: s.innerBytesSent, reinjected: s.reinjected,
                droppedQueueFull: s.droppedQueueFull, droppedCoDel: s.droppedCoDel, droppedTooLarge: s.droppedTooLarge,
                queueGuardHolds: s.queueGuardHolds, delivered: r.delivered,
                deliveredBytes: r.deliveredBytes, receivedMalformed: r.droppedMalformed)
            let o = e.receiver.reorder.statistics
            tunnel?.reorderHeld = o.held
            tunnel?.duplicatesDropped = o.duplicatesDropped
            tunnel?.lateDropped = o.lateDropped
            tunnel?.gapsSkipped = o.gapsSkipped
            tunnel?.reorderHold = HoldTimesJSON(e.receiver.reorder.holdTimes)
        }
        return RouterStatusJSON(
            server: router.server.description, connected: client.isConnected, scheduler: configuration.scheduler,
            congestion: configuration.congestion, tunnelInterface: source.tun.name, tunnelMTU: tunMTU,
            connectionsOpened: client.statistics.connectionsOpened, connectionsLost: client.statistics.connectionsLost,
            lastCloseReason: client.statistics.lastCloseReason, paths: paths, tunnel: tunnel,
            keyUpdates: engine?.connection.keyUpdatesCompleted)
    }

    // MARK: - Status

    func summary(now: Timestamp) -> String {
        let up = wans.indices.filter { !removed.contains($0) && wans[$0].isUsable }.count
        return client.isConnected
            ? "connected to \(router.server), \(up)/\(wans.count - removed.count) WANs up"
            : "connecting to \(router.server), \(up) WANs up"
    }

    func status(now: Timestamp) -> String {
        var out = "role: router\n"
        out += "server: \(router.server) (\(client.isConnected ? "connected" : "not connected"))\n"
        out += "scheduler: \(configuration.scheduler)  congestion: \(configuration.congestion)\n"
        out += "connections: opened \(client.statistics.connectionsOpened), lost \(client.statistics.connectionsLost)"
        if let r = client.statistics.lastCloseReason { out += ", last close: \(r)" }
        out += "\n"
        out +=
            "tun: \(source.tun.name) mtu \(tunMTU)\(followsPaths ? " (auto)" : ""), max inner packet \(source.maxInnerPacket): read \(source.packetsRead), written \(source.packetsWritten), "
            + "too big \(source.tooBig) (answered \(source.tooBigAnswered)), link-scoped \(source.linkScoped), write failures \(source.writeFailures)\n"
            + "  \(source.offloadSummary)\n"
        out += "paths:\n"
        let engine = client.engine
        for (i, w) in wans.enumerated() where !removed.contains(i) {
            var line = "  \(w.name): \(w.isUsable ? "up" : "down")"
            if w.configuration.isBackup { line += " backup" }
            if let e = engine, let li = e.paths.links.firstIndex(where: { $0.interface == w.name }) {
                let link = e.paths.links[li]
                if let id = link.pathID, let s = e.connection.pathStatistics(id) {
                    line +=
                        " path \(id) \(s.state) rtt \(fixed(s.smoothedRTT.milliseconds, 1)) ms loss \(fixed(s.lossRate * 100, 2))%"
                        + " rate \(fixed(s.deliveryRate * 8 / 1e6, 1)) Mbit/s cwnd \(s.congestionWindow) mtu \(s.maxDatagramSize) sent \(s.packetsSent) lost \(s.packetsLost)"
                }
                if link.isDead { line += " (dead)" }
            }
            out += line + "\n"
        }
        if let c = client.connection {
            let st = c.stats
            out +=
                "connection: packets sent \(st.packetsSent) received \(st.packetsReceived) lost \(st.packetsLost); dropped \(st.packetsDropped) "
                + "(malformed or undecryptable: \(st.decryptionFailures) failed to open); received on the WAN sockets \(udpReceived.datagrams) datagrams\n"
        }
        out += udpBatchSummary(sent: wans.compactMap { $0.batch?.statistics }, received: udpReceived) + "\n"
        if let e = engine {
            let s = e.sender.statistics
            let r = e.receiver.statistics
            out +=
                "tunnel: sent \(s.innerPacketsSent) packets (\(s.innerBytesSent) bytes), reinjected \(s.reinjected), "
                + "dropped queue-full \(s.droppedQueueFull) codel \(s.droppedCoDel) too-large \(s.droppedTooLarge) malformed \(s.droppedMalformed), queue-guard holds \(s.queueGuardHolds); received \(r.delivered) delivered, "
                + "\(r.droppedMalformed) malformed\n"
        }
        return out
    }
}
