// What tquicd changes on the host, and undoes at stop: the TUN device with its MTU, addresses
// and routes (rtnetlink), the nftables table it owns (router: MSS clamp; VPS: forwarding and
// masquerade), and IP forwarding. Nothing here runs `ip` or `nft`.
import Congestion
import Glibc
import LinuxNet
import QUIC
import Tunnel

final class HostSetup {
    let configuration: DaemonConfiguration
    let log: Log
    let netlink: RouteNetlink
    private(set) var tun: TUNDevice?
    private var table: NFTablesTable?
    /// The TUN's MTU at start: the configured one, or (`mtu = auto`) the largest the tunnel
    /// carries; on the router it then follows the smallest path (RouterDataPlane), on the VPS
    /// it stays (each tenant's packets are checked against that tenant's paths).
    let initialMTU: Int
    /// The largest inner packet a path of the largest MTU carries.
    let maximumMTU: Int

    /// The nftables table of this instance: one per tunnel device, so two instances on one host
    /// (two VPS roles, or a lab) never touch each other's rules.
    var tableName: String { "tquic_" + String(configuration.tunnel.name.map { $0.isLetter || $0.isNumber ? $0 : "_" }) }

    init(configuration: DaemonConfiguration, log: Log) throws {
        self.configuration = configuration
        self.log = log
        netlink = try RouteNetlink()
        let outerIPv6 = configuration.router?.server.isIPv6 ?? configuration.vps?.isIPv6Only ?? false
        let capacity = TunnelTransport.innerPacketCapacity(maxUDPPayloadSize: TunnelTransport.maxUDPPayloadSize(ipv6: outerIPv6))
        maximumMTU = capacity
        if let mtu = configuration.tunnel.mtu, mtu > capacity {
            log.warning("\(configuration.file): mtu = \(mtu) is more than the tunnel carries (\(capacity)); using \(capacity)")
        }
        if let mtu = configuration.tunnel.mtu {
            initialMTU = min(mtu, capacity)
        } else {
            // The largest the tunnel carries: most WANs take 1500-byte packets, and a TCP
            // connection opened now has its MSS clamped to this for its whole life; packets that
            // do not fit while the paths still search are dropped (not answered) for that moment.
            initialMTU = capacity
        }
    }

    /// Creates and configures everything; on failure undoes what was done and throws.
    func apply() throws {
        do {
            let t = configuration.tunnel
            let device = try TUNDevice(name: t.name, offloads: t.offload)
            if t.offload && !device.offloads {
                log.warning("\(device.name): the kernel refused TUN offloads (TSO, checksum); packets go one by one")
            }
            tun = device
            // No IPv6 link-local address on the TUN (addr_gen_mode 1): without one the kernel
            // sends no router solicitations or MLD reports into the tunnel, which the peer
            // would only count and drop.
            try? Sysctl.set("net/ipv6/conf/\(device.name)/addr_gen_mode", "1")
            try netlink.setMTU(device.name, initialMTU)
            for a in t.addresses { try netlink.addAddress(a, to: device.name) }
            try netlink.setLinkUp(device.name, up: true)
            switch configuration.role {
            case .router:
                for r in t.routes { try addRoute(r, device: device.name) }
                try installTable(try NFTablesRuleset.router(tunnelInterface: device.name))
                // The LAN's packets are forwarded into the tunnel and back.
                try Sysctl.set("net/ipv4/ip_forward", "1")
                try? Sysctl.set("net/ipv6/conf/all/forwarding", "1")
            case .vps:
                let vps = configuration.vps!
                for tenant in vps.tenants { for p in tenant.allowed { try addRoute(p.network, device: device.name) } }
                let prefixes = vps.tenants.flatMap(\.allowed) + t.addresses.map(\.network)
                try installTable(
                    try NFTablesRuleset.vps(tunnelInterface: device.name, egressInterface: vps.egress, innerPrefixes: prefixes))
                try Sysctl.set("net/ipv4/ip_forward", "1")
                try? Sysctl.set("net/ipv6/conf/all/forwarding", "1")
            }
            log.info(
                "\(device.name) up: mtu \(initialMTU)\(t.mtu == nil && configuration.role == .router ? " (following the paths)" : ""), \(t.addresses.map(\.description).joined(separator: ", ")); nftables table inet \(tableName)"
            )
        } catch {
            undo()
            throw error
        }
    }

    /// A route through the tunnel; one the kernel already has (the subnet of the TUN's own
    /// address) is fine.
    private func addRoute(_ p: IPPrefix, device: String) throws {
        do { try netlink.addRoute(p, device: device) } catch let e as SystemError where e.errno == EEXIST {}
    }

    private func installTable(_ ruleset: NFTablesRuleset) throws {
        let t = try NFTablesTable(name: tableName)
        try t.install(ruleset)
        table = t
    }

    /// A reload on the VPS: routes and masquerade for the new tenant prefixes (old routes of
    /// removed tenants go).
    func updateTenantRoutes(old: DaemonConfiguration, new: DaemonConfiguration) throws {
        guard let device = tun?.name, let newVPS = new.vps, let oldVPS = old.vps else { return }
        let before = Set(oldVPS.tenants.flatMap(\.allowed).map(\.network))
        let after = Set(newVPS.tenants.flatMap(\.allowed).map(\.network))
        for p in before.subtracting(after) { try? netlink.deleteRoute(p, device: device) }
        for p in after.subtracting(before) { try addRoute(p, device: device) }
        let prefixes = newVPS.tenants.flatMap(\.allowed) + new.tunnel.addresses.map(\.network)
        try installTable(try NFTablesRuleset.vps(tunnelInterface: device, egressInterface: newVPS.egress, innerPrefixes: prefixes))
    }

    /// Removes the table and the TUN (its addresses and routes go with it). Forwarding stays on:
    /// other software may rely on it, and it was on for us only while we ran is not knowable.
    func undo() {
        if let table {
            do { try table.remove() } catch { log.warning("removing nftables table \(table.name): \(error)") }
            self.table = nil
        }
        tun?.close()
        tun = nil
    }
}
