// role = vps: the listening UDP socket(s) and the shared TUN around a TunnelServer (one engine
// per tenant). `listen = [::]:PORT` opens an IPv6 socket and an IPv4 one on the port (the IPv6
// one is IPV6_V6ONLY), so routers reach it over either family.
//
//   UDP (recvmmsg, GRO) → TunnelServer → tenant's engine → source check → TUN
//   TUN → TunnelServer.send (tenant by destination) → engine → UDP (sendmmsg, GSO)
import Bonding
import Congestion
import LinuxNet
import QUIC
import Tunnel

final class VPSDataPlane: DataPlane {
    private var configuration: DaemonConfiguration
    private let log: Log
    private let tun: TUNPacketSource
    private let server: TunnelServer
    private let pins: TenantPins
    private var sockets: [UDPSocket] = []
    private var batches: [UDPSendBatch] = []
    private var udpReceived = UDPReceiveCounters()
    private let receiveBatch = UDPReceiveBatch()
    private var datagram: [UInt8] = []
    private let packet = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)

    private static let tunToken = DaemonToken.firstRole
    private static let firstSocketToken = DaemonToken.firstRole + 1
    private static let receiveBudget = 512
    /// TUN packets read per wake-up before the sockets get a turn.
    private static let tunBudget = 256

    init(configuration: DaemonConfiguration, key: TunnelKey, tun: TUNDevice, maxInnerPacket: Int, log: Log, now: Timestamp) throws {
        guard let vps = configuration.vps else { preconditionFailure("vps role without [vps]") }
        self.configuration = configuration
        self.log = log
        datagram.reserveCapacity(65536)
        self.tun = TUNPacketSource(tun: tun, maxInnerPacket: maxInnerPacket)
        let table = VPSDataPlane.tenantTable(vps)
        let pins = TenantPins(table)
        self.pins = pins
        let tls = try TLSContext(configuration: TunnelTransport.vpsTLS(key: key, isTenant: { pins.contains($0) }), isServer: true)
        let connection = TunnelTransport.connectionConfiguration(
            tls: tls, congestion: CongestionAlgorithm(rawValue: configuration.congestion) ?? .bbr, ipv6: vps.isIPv6Only,
            keepAlive: configuration.keepaliveSeconds > 0 ? .seconds(Double(configuration.keepaliveSeconds)) : nil)
        let random = SystemRandom()
        var endpointConfiguration = Endpoint.Configuration(connection: connection, tokenKey: random.bytes(16))
        if let dir = configuration.qlogDirectory {
            let qlog = try QlogFiles(directory: dir, maxBytes: configuration.qlogMaxBytes, log: log)
            endpointConfiguration.makeQlog = { odcid in qlog.makeSink(role: "vps", connectionID: "\(odcid)", now: MonotonicClock.now()) }
        }
        let endpoint = Endpoint(configuration: endpointConfiguration, random: random)
        var tunnel = TunnelConfiguration()
        tunnel.scheduler = SchedulerKind(rawValue: configuration.scheduler) ?? .default
        server = TunnelServer(endpoint: endpoint, configuration: tunnel, tenants: table)
        var listen = [vps.listen]
        if vps.listen.isIPv6, vps.listen.ip.allSatisfy({ $0 == 0 }) {
            listen.append(SocketAddress(ip: [0, 0, 0, 0], port: vps.listen.port))
        }
        for a in listen {
            let s = try UDPSocket(bindTo: a)
            _ = s.setReceiveOffload(true)
            s.setDontFragment()
            sockets.append(s)
            batches.append(UDPSendBatch(socket: s))
        }
    }

    deinit { packet.deallocate() }

    static func tenantTable(_ vps: VPSConfiguration) -> TenantTable {
        TenantTable(vps.tenants.map { Tenant(name: $0.name, pin: TunnelKey.pin(publicKey: $0.publicKey), allowed: $0.allowed) })
    }

    func register(in loop: EpollLoop) throws {
        try loop.add(fd: tun.tun.fd, events: .readable, token: VPSDataPlane.tunToken)
        for (i, s) in sockets.enumerated() { try loop.add(fd: s.fd, events: .readable, token: VPSDataPlane.firstSocketToken + i) }
    }

    func readable(token: Int, now: Timestamp) {
        if token == VPSDataPlane.tunToken {
            readTUN(now: now)
            return
        }
        let i = token - VPSDataPlane.firstSocketToken
        guard i >= 0, i < sockets.count else { return }
        var taken = 0
        while taken < VPSDataPlane.receiveBudget {
            let n: Int
            do { n = try sockets[i].receive(into: receiveBatch) } catch {
                log.debug("receive: \(error)")
                return
            }
            if n == 0 { return }
            udpReceived.count(receiveBatch)
            for k in 0..<n {
                receiveBatch.copyDatagram(k, into: &datagram)
                let d = receiveBatch[k]
                server.receive(datagram: &datagram, from: d.source, now: now, ecn: d.ecn)
            }
            taken += n
            if receiveBatch.messageCount < receiveBatch.messageCapacity { return }
        }
    }

    /// Packets from the internet (after the kernel's NAT) to tenants: each to the tenant owning
    /// its destination, whose engine copies it into its own buffer.
    private func readTUN(now: Timestamp) {
        var taken = 0
        // A TSO packet is read to its last segment: the rest waits in TUNDevice, not the kernel,
        // so no readable descriptor would bring the loop back for it.
        while taken < VPSDataPlane.tunBudget || tun.tun.hasPendingSegments {
            guard let n = (try? tun.tun.read(into: packet)) ?? nil else { return }
            taken += 1
            let p = UnsafeRawBufferPointer(rebasing: packet[0..<n])
            if InnerPacketAddresses.isLinkScoped(p) {
                tun.linkScoped += 1
                continue
            }
            if n > tun.maxInnerPacket {
                tun.answerTooBig(p)
                continue
            }
            if case .tooBig(let mtu) = server.send(p, now: now) { tun.answerTooBig(p, mtu: mtu) }
        }
    }

    func run(now: Timestamp) {
        server.handleTimeout(now: now)
        let tun = self.tun
        server.process(now: now) { packet, _ in tun.write(packet) }
        tun.flush()
        while let t = server.poll(now: now) {
            let i = sockets.count > 1 && !t.destination.isIPv6 ? 1 : 0
            do { try batches[i].append(t.bytes, to: t.destination, ecn: t.ecn) } catch { log.debug("send: \(error)") }
        }
        for b in batches where !b.isEmpty { _ = try? b.flush() }
    }

    var nextTimeout: Timestamp? { server.nextTimeout }

    func reload(_ new: DaemonConfiguration, now: Timestamp) throws {
        guard let vps = new.vps else { return }
        let table = VPSDataPlane.tenantTable(vps)
        let before = server.tenants.tenants.map(\.name)
        pins.replace(with: table)
        server.updateTenants(table, now: now)
        log.notice("reload: tenants \(before.joined(separator: ",")) -> \(table.tenants.map(\.name).joined(separator: ","))")
        if vps.listen != configuration.vps?.listen || new.privateKey != configuration.privateKey {
            log.warning("reload: listen or the key changed; that takes a restart (systemctl restart tquic)")
        }
        configuration = new
    }

    func shutdown(now: Timestamp) { server.closeAll(now: now) }

    func setScheduler(_ kind: SchedulerKind) {
        server.setScheduler(kind)
        configuration.scheduler = kind.rawValue
    }

    func setCongestion(_ algorithm: CongestionAlgorithm) {
        server.setCongestionControl(algorithm)
        configuration.congestion = algorithm.rawValue
    }

    var observation: Observation { .vps(statusJSON()) }

    func statusJSON() -> VPSStatusJSON {
        var tenants: [TenantJSON] = []
        for (i, t) in server.tenants.tenants.enumerated() {
            let st = server.tenantStatistics[i]
            let s = server.sessions[i]
            let paths =
                s.map { c in c.connection.pathIDs.compactMap { c.connection.pathStatistics($0) }.map { pathJSON($0, interface: nil) } }
                ?? []
            tenants.append(
                TenantJSON(
                    name: t.name, connected: s != nil, remote: s?.connection.remoteAddress.description, paths: paths,
                    packetsDelivered: st.packetsDelivered, bytesDelivered: st.bytesDelivered, packetsSent: st.packetsSent,
                    bytesSent: st.bytesSent, droppedSourceNotAllowed: st.droppedSourceNotAllowed,
                    droppedNotConnected: st.droppedNotConnected, droppedQueueFull: st.droppedQueueFull,
                    droppedCoDel: s?.engine.sender.statistics.droppedCoDel ?? 0,
                    droppedTooBig: st.droppedTooBig, queueGuardHolds: s?.engine.sender.statistics.queueGuardHolds,
                    connectionsAccepted: st.connectionsAccepted,
                    connectionsReplaced: st.connectionsReplaced,
                    reorderHold: s.map { HoldTimesJSON($0.engine.receiver.reorder.holdTimes) },
                    keyUpdates: s?.connection.keyUpdatesCompleted))
        }
        return VPSStatusJSON(
            listen: sockets.compactMap { $0.localAddress?.description }, scheduler: configuration.scheduler,
            congestion: configuration.congestion, droppedNoTenant: server.statistics.droppedNoTenant,
            connectionsRefused: server.statistics.connectionsRefused, droppedDatagrams: server.endpoint.droppedDatagrams,
            tenants: tenants)
    }

    func summary(now: Timestamp) -> String {
        let n = server.sessions.compactMap { $0 }.count
        return "\(n)/\(server.tenants.tenants.count) tenants connected"
    }

    func status(now: Timestamp) -> String {
        var out = "role: vps\n"
        out += "listen: \(sockets.compactMap { $0.localAddress?.description }.joined(separator: ", "))\n"
        out += "scheduler: \(configuration.scheduler)  congestion: \(configuration.congestion)\n"
        let e = server.endpoint
        out +=
            "endpoint: \(e.connections.count) connections; dropped datagrams \(e.droppedDatagrams) (malformed or unknown), "
            + "retries \(e.retriesSent), version negotiations \(e.versionNegotiationsSent), stateless resets \(e.statelessResetsSent)\n"
        out += udpBatchSummary(sent: batches.map(\.statistics), received: udpReceived) + "\n"
        out +=
            "tun: \(tun.tun.name) max inner packet \(tun.maxInnerPacket): written \(tun.packetsWritten), too big \(tun.tooBig), link-scoped \(tun.linkScoped), "
            + "write failures \(tun.writeFailures); no tenant for \(server.statistics.droppedNoTenant) packets, "
            + "\(server.statistics.connectionsRefused) connections refused\n"
            + "  \(tun.offloadSummary)\n"
        out += "tenants:\n"
        for (i, t) in server.tenants.tenants.enumerated() {
            let st = server.tenantStatistics[i]
            var line = "  \(t.name): "
            if let s = server.sessions[i] {
                line += "connected from \(s.connection.remoteAddress), \(s.connection.pathIDs.count) paths"
            } else {
                line += "not connected"
            }
            line +=
                "; from tenant \(st.packetsDelivered) packets (\(st.bytesDelivered) bytes), to tenant \(st.packetsSent) packets "
                + "(\(st.bytesSent) bytes); dropped: source not allowed \(st.droppedSourceNotAllowed), not connected \(st.droppedNotConnected), "
                + "queue full \(st.droppedQueueFull), codel \(server.sessions[i]?.engine.sender.statistics.droppedCoDel ?? 0), too big \(st.droppedTooBig); queue-guard holds \(server.sessions[i]?.engine.sender.statistics.queueGuardHolds ?? 0); connections \(st.connectionsAccepted) (replaced \(st.connectionsReplaced))"
            out += line + "\n"
            if let s = server.sessions[i] {
                for id in s.connection.pathIDs {
                    guard let p = s.connection.pathStatistics(id) else { continue }
                    out +=
                        "    path \(id) \(p.state) from \(p.remote) rtt \(fixed(p.smoothedRTT.milliseconds, 1)) ms loss \(fixed(p.lossRate * 100, 2))%"
                        + " rate \(fixed(p.deliveryRate * 8 / 1e6, 1)) Mbit/s\n"
                }
            }
        }
        return out
    }
}
