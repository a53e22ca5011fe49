// The nftables rules tquicd needs, as data and as the text libnftables runs: on the VPS, forwarding
// between the tunnel and the egress interface and masquerade of the tenants' inner prefixes; on
// both sides, the TCP MSS clamp on the tunnel interface. A pure renderer (no I/O): every name and
// prefix is validated before it reaches the text, so a config file cannot inject nft syntax.
// NFTablesTable.swift installs the text as one transaction.
import QUIC

/// What went wrong with nftables: an invalid name or prefix, or libnftables' own error text.
public struct NFTablesError: Error, CustomStringConvertible, Equatable {
    public var operation: String
    public var message: String
    public init(_ operation: String, _ message: String) {
        self.operation = operation
        self.message = message
    }
    public var description: String { "nftables \(operation): \(message)" }
}

/// The chains and rules of tquicd's table (family inet), built by `vps(...)` or `router(...)`.
///
/// Chains are base chains with policy accept. In nftables every base chain on a hook sees the
/// packet, in priority order: an `accept` ends the packet's way through *this* chain only, while a
/// `drop` in any chain of any table is final. So our table never opens what another table (a
/// firewall, iptables-nft with Docker's FORWARD DROP) drops, and our policy accept lets through
/// what we do not match, so our table never closes anything another table accepts. (A policy drop
/// here would cut every other forwarded flow on the host.) Where the host's firewall drops
/// forwarded traffic by default, tunnel→egress must be allowed in that firewall too; our accept
/// rules then count the tunnel's traffic (`counter`) and say what the VPS forwards.
public struct NFTablesRuleset: Equatable, Sendable {
    struct Chain: Equatable, Sendable {
        /// Not a grammar keyword (MACHINE.md: `fwd`, `post` fail with "syntax error").
        var name: String
        var type: String
        var hook: String
        var priority: String
        var rules: [String]
    }

    var chains: [Chain]

    /// Both directions of TCP handshakes through the tunnel announce an MSS that fits the route's
    /// MTU, so TCP over the tunnel does not depend on PMTU discovery (ICMP that is often filtered).
    private static func mssClamp(tunnel: String) -> [String] {
        [
            "iifname \"\(tunnel)\" tcp flags syn tcp option maxseg size set rt mtu",
            "oifname \"\(tunnel)\" tcp flags syn tcp option maxseg size set rt mtu",
        ]
    }

    /// The VPS: the MSS clamp on the tunnel; forwarding tunnel → egress, and egress → tunnel for
    /// connections the tunnel side opened (established, related); masquerade of traffic from the
    /// inner prefixes (IPv4 and IPv6) leaving through the egress interface.
    /// - Throws: `NFTablesError` for an invalid interface name, or the same name twice.
    public static func vps(tunnelInterface: String, egressInterface: String, innerPrefixes: [IPPrefix]) throws -> NFTablesRuleset {
        try validateInterfaceName(tunnelInterface)
        try validateInterfaceName(egressInterface)
        guard tunnelInterface != egressInterface else {
            throw NFTablesError("ruleset", "the tunnel and the egress interface are both \(tunnelInterface)")
        }
        let tunnel = tunnelInterface
        let egress = egressInterface
        let forward = Chain(
            name: "tunnel_forward", type: "filter", hook: "forward", priority: "filter",
            rules:
                mssClamp(tunnel: tunnel) + [
                    // Tenants never reach each other through the VPS: a drop is final in any table.
                    "iifname \"\(tunnel)\" oifname \"\(tunnel)\" counter drop",
                    "iifname \"\(tunnel)\" oifname \"\(egress)\" counter accept",
                    "iifname \"\(egress)\" oifname \"\(tunnel)\" ct state established,related counter accept",
                ])
        // Prefixes render from their parsed bytes (IPPrefix.description), never from config text.
        var masquerade: [String] = []
        let networks = innerPrefixes.map(\.network)
        let v4 = unique(networks.filter { !$0.isIPv6 }.map(\.description))
        let v6 = unique(networks.filter(\.isIPv6).map(\.description))
        if !v4.isEmpty { masquerade.append("oifname \"\(egress)\" ip saddr { \(v4.joined(separator: ", ")) } counter masquerade") }
        if !v6.isEmpty { masquerade.append("oifname \"\(egress)\" ip6 saddr { \(v6.joined(separator: ", ")) } counter masquerade") }
        let nat = Chain(name: "tunnel_masquerade", type: "nat", hook: "postrouting", priority: "srcnat", rules: masquerade)
        return NFTablesRuleset(chains: [forward, nat])
    }

    /// The router: the MSS clamp on the tunnel interface, both ways; nothing else (the router
    /// forwards LAN ↔ tunnel by its routes, and the VPS masquerades).
    /// - Throws: `NFTablesError` for an invalid interface name.
    public static func router(tunnelInterface: String) throws -> NFTablesRuleset {
        try validateInterfaceName(tunnelInterface)
        return NFTablesRuleset(chains: [
            Chain(
                name: "tunnel_forward", type: "filter", hook: "forward", priority: "mangle",
                rules: mssClamp(tunnel: tunnelInterface))
        ])
    }

    /// The text `NFTablesTable.install` runs, one nft transaction: `add` + `delete` remove a table
    /// of that name left by a crash (and succeed when there is none), then the table is created
    /// whole. Either all of it applies or nothing changes.
    /// - Precondition: `table` passed `validateTableName`.
    public func script(table: String) -> String {
        precondition((try? NFTablesRuleset.validateTableName(table)) != nil, "unvalidated table name")
        var text = NFTablesRuleset.removalScript(table: table)
        text += "table inet \(table) {\n"
        for chain in chains {
            text += "\tchain \(chain.name) {\n"
            text += "\t\ttype \(chain.type) hook \(chain.hook) priority \(chain.priority); policy accept;\n"
            for rule in chain.rules { text += "\t\t\(rule)\n" }
            text += "\t}\n"
        }
        text += "}\n"
        return text
    }

    /// Deletes table `table` of family inet if it exists, and nothing else.
    /// - Precondition: `table` passed `validateTableName`.
    public static func removalScript(table: String) -> String {
        precondition((try? validateTableName(table)) != nil, "unvalidated table name")
        return "add table inet \(table)\ndelete table inet \(table)\n"
    }

    /// Linux interface names as tquicd accepts them: 1 to 15 (IFNAMSIZ - 1) of [A-Za-z0-9_.-],
    /// not "." or "..". (The kernel allows more; these are the ones safe in nft text and paths.)
    public static func validateInterfaceName(_ name: String) throws {
        let bytes = Array(name.utf8)
        guard (1...15).contains(bytes.count), name != ".", name != "..",
            bytes.allSatisfy({ isAlphanumeric($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") })
        else { throw NFTablesError("ruleset", "invalid interface name \"\(printable(name))\" (1 to 15 of A-Z a-z 0-9 _ . -)") }
    }

    /// Table names: a letter, then up to 63 of [A-Za-z0-9_] ("tquic", "tquic_lab1").
    public static func validateTableName(_ name: String) throws {
        let bytes = Array(name.utf8)
        guard (1...64).contains(bytes.count), isLetter(bytes[0]),
            bytes.allSatisfy({ isAlphanumeric($0) || $0 == UInt8(ascii: "_") })
        else { throw NFTablesError("table", "invalid table name \"\(printable(name))\" (a letter, then up to 63 of A-Z a-z 0-9 _)") }
    }

    private static func isLetter(_ b: UInt8) -> Bool { (b | 0x20) >= UInt8(ascii: "a") && (b | 0x20) <= UInt8(ascii: "z") }
    private static func isAlphanumeric(_ b: UInt8) -> Bool { isLetter(b) || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) }
    /// A rejected name as it can be shown in a log line (no control characters).
    private static func printable(_ s: String) -> String {
        String(s.unicodeScalars.prefix(40).map { $0.properties.generalCategory == .control ? "?" : Character($0) })
    }
    private static func unique(_ items: [String]) -> [String] {
        var seen = Set<String>()
        return items.filter { seen.insert($0).inserted }
    }
}
