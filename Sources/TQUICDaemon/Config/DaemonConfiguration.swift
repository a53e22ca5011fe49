// What /etc/tquic.conf means: the typed configuration of tquicd for its two roles, checked key by
// key. Every error names the file and line (ConfigError); unknown sections and keys are errors,
// so a typo never silently becomes a default. The example files under etc/ show every key.
// Pure Swift without Foundation (fuzzed by Tests/Fuzz/ConfigFuzz.swift).
#if canImport(QUIC)
    import QUIC
#endif

public enum DaemonRole: String, Sendable {
    case router, vps
}

/// One WAN link of the router: a UDP socket bound to this interface carries one path.
public struct WANConfiguration: Equatable, Sendable {
    public var interface: String
    public var weight: Int = 1
    /// Carries traffic only while no other link is usable (PATH_STATUS_BACKUP).
    public var isBackup = false
    /// The local address to bind (nil: the interface's own, chosen by the kernel).
    public var source: SocketAddress?
    public var line: Int
}

/// One router the VPS accepts: its key and the inner addresses it may use as sources (and that
/// are routed to it), like WireGuard's AllowedIPs.
public struct TenantConfiguration: Equatable, Sendable {
    public var name: String
    public var publicKey: [UInt8]
    public var allowed: [IPPrefix]
    public var file: String
    public var line: Int
}

public struct TunnelInterfaceConfiguration: Equatable, Sendable {
    public var name = "tquic0"
    public var addresses: [IPPrefix] = []
    /// nil: follow the smallest path MTU (RFC 8899 discovery per path).
    public var mtu: Int?
    /// Router: destinations sent into the tunnel (default: everything, as two halves of each
    /// family so the WANs' own default routes stay). VPS: unused (tenants' prefixes are routed).
    public var routes: [IPPrefix] = []
    /// TCP segmentation and checksum offload on the TUN (IFF_VNET_HDR): the kernel hands over
    /// 64 KB TCP packets that the daemon cuts, and takes back coalesced ones (TUNDevice.swift).
    public var offload = true
}

public struct RouterConfiguration: Equatable, Sendable {
    public var server: SocketAddress
    public var serverPublicKey: [UInt8]
    public var wans: [WANConfiguration]
}

public struct VPSConfiguration: Equatable, Sendable {
    public var listen: SocketAddress
    /// The interface toward the internet: masquerade goes out of it.
    public var egress: String
    public var tenants: [TenantConfiguration]
    /// A directory of `*.conf` files holding more [tenant] sections (one file per tenant, so a
    /// fleet tool can write them).
    public var tenantDirectory: String?

    /// Only IPv6 routers can come (an IPv6 address other than `[::]`, which also takes IPv4):
    /// then the largest datagram is IPv6's.
    public var isIPv6Only: Bool { listen.isIPv6 && !(0..<16).allSatisfy { listen.ipByte($0) == 0 } }
}

public struct DaemonConfiguration: Equatable, Sendable {
    public var file: String
    public var role: DaemonRole
    /// The 32-byte Ed25519 seed (`tquicctl genkey`).
    public var privateKey: [UInt8]
    public var scheduler = "aggregate"
    public var congestion = "bbr"
    /// Seconds between keep-alives on an idle path (NAT bindings; 0: none).
    public var keepaliveSeconds = 25
    public var controlSocket = "/run/tquic/tquic.sock"
    public var logLevel = "info"
    /// A directory for one qlog file per connection (nil: none), and the size at which a file is
    /// rotated (the directory keeps `DaemonConfiguration.qlogFilesKept` files at most).
    public var qlogDirectory: String?
    public var qlogMaxBytes = 64 << 20
    /// Where the HTTP listener of /metrics (Prometheus) and the dashboard is (nil: none).
    public var metricsAddress: SocketAddress?
    /// A network namespace (`ip netns add NAME`: /run/netns/NAME) to run in, as a container
    /// would; nil: the namespace tquicd was started in.
    public var networkNamespace: String?
    public static let qlogFilesKept = 16
    public var tunnel = TunnelInterfaceConfiguration()
    public var router: RouterConfiguration?
    public var vps: VPSConfiguration?

    /// The names tquicd accepts; DaemonConfigurationTests checks they are the Bonding and
    /// Congestion modules' own.
    public static let schedulerNames = ["aggregate", "minrtt", "roundrobin", "weighted", "blest", "ecf", "redundant"]
    public static let congestionNames = ["newreno", "cubic", "bbr", "copa", "westwood"]
    public static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
    public static let defaultPort: UInt16 = 4433

    static let knownKeys: [String: [String]] = [
        "tquic": [
            "role", "private-key", "scheduler", "congestion", "keepalive", "control-socket", "log-level", "qlog-dir", "qlog-max-mb",
            "metrics", "netns",
        ],
        "tunnel": ["name", "address", "mtu", "routes", "offload"],
        "server": ["address", "public-key"],
        "wan": ["interface", "weight", "backup", "source"],
        "vps": ["listen", "egress", "tenant-dir"],
        "tenant": ["name", "public-key", "allowed"],
    ]

    /// Parses and checks a whole file's text (tenant files are added by `addingTenants`).
    public static func parse(_ text: String, file: String) throws -> DaemonConfiguration {
        let sections = try ConfigFile.parse(text, file: file)
        let reader = SectionReader(file: file)
        for s in sections {
            guard let known = knownKeys[s.name] else {
                throw ConfigError(
                    file: file, line: s.line,
                    "unknown section [\(s.name)] (known: \(knownKeys.keys.sorted().map { "[\($0)]" }.joined(separator: ", ")))")
            }
            for e in s.entries where !known.contains(e.key) {
                throw ConfigError(
                    file: file, line: e.line, "unknown key `\(e.key)` in [\(s.name)] (known: \(known.joined(separator: ", ")))")
            }
        }
        let single = try Dictionary(grouping: sections, by: \.name).mapValues { group -> [ConfigSection] in
            if ["tquic", "tunnel", "server", "vps"].contains(group[0].name), group.count > 1 {
                throw ConfigError(file: file, line: group[1].line, "[\(group[0].name)] appears twice (first on line \(group[0].line))")
            }
            return group
        }
        guard let main = single["tquic"]?.first else {
            throw ConfigError(file: file, line: 0, "no [tquic] section (it holds role and private-key)")
        }
        let roleEntry = try reader.required("role", in: main)
        guard let role = DaemonRole(rawValue: roleEntry.value.lowercased()) else {
            throw ConfigError(file: file, line: roleEntry.line, "role must be `router` or `vps`, got `\(roleEntry.value)`")
        }
        let keyEntry = try reader.required("private-key", in: main)
        let privateKey = try reader.key(keyEntry, what: "private-key (the output of `tquicctl genkey`)")
        var c = DaemonConfiguration(file: file, role: role, privateKey: privateKey)
        if let e = main.entries.first(where: { $0.key == "scheduler" }) { c.scheduler = try reader.oneOf(e, schedulerNames) }
        if let e = main.entries.first(where: { $0.key == "congestion" }) { c.congestion = try reader.oneOf(e, congestionNames) }
        if let e = main.entries.first(where: { $0.key == "log-level" }) { c.logLevel = try reader.oneOf(e, logLevels) }
        if let e = main.entries.first(where: { $0.key == "keepalive" }) { c.keepaliveSeconds = try reader.integer(e, in: 0...3600) }
        if let e = main.entries.first(where: { $0.key == "control-socket" }) {
            guard e.value.hasPrefix("/"), e.value.utf8.count < 108 else {
                throw ConfigError(file: file, line: e.line, "control-socket must be an absolute path shorter than 108 bytes")
            }
            c.controlSocket = e.value
        }

        if let e = main.entries.first(where: { $0.key == "metrics" }), !["off", "no", ""].contains(e.value.lowercased()) {
            guard let a = SocketAddress(e.value, defaultPort: 9270), a.port != 0 else {
                throw ConfigError(
                    file: file, line: e.line, "metrics must be IP:PORT (e.g. 127.0.0.1:9270), [IPv6]:PORT or `off`, got `\(e.value)`")
            }
            c.metricsAddress = a
        }
        if let e = main.entries.first(where: { $0.key == "netns" }) {
            let v = e.value
            guard !v.isEmpty, v.utf8.count <= 64, v != ".", v != "..",
                v.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) })
            else {
                throw ConfigError(
                    file: file, line: e.line,
                    "netns must be a network namespace's name (as `ip netns add` made it: letters, digits, `-`, `_`, `.`), got `\(v)`")
            }
            c.networkNamespace = v
        }
        if let e = main.entries.first(where: { $0.key == "qlog-dir" }) {
            guard e.value.hasPrefix("/") else { throw ConfigError(file: file, line: e.line, "qlog-dir must be an absolute path") }
            c.qlogDirectory = e.value
        }
        if let e = main.entries.first(where: { $0.key == "qlog-max-mb" }) { c.qlogMaxBytes = try reader.integer(e, in: 1...4096) << 20 }

        // [tunnel]
        guard let tunnel = single["tunnel"]?.first else {
            throw ConfigError(file: file, line: 0, "no [tunnel] section (it holds the tunnel's address)")
        }
        if let e = tunnel.entries.first(where: { $0.key == "name" }) { c.tunnel.name = try reader.interfaceName(e) }
        c.tunnel.addresses = try reader.prefixes(reader.required("address", in: tunnel))
        if let e = tunnel.entries.first(where: { $0.key == "mtu" }), e.value.lowercased() != "auto" {
            // RFC 8200 §5: IPv6 needs 1280; 9000 is the largest jumbo frame worth carrying.
            c.tunnel.mtu = try reader.integer(e, in: 1280...9000, note: " or `auto`")
        }
        if let e = tunnel.entries.first(where: { $0.key == "offload" }) { c.tunnel.offload = try reader.boolean(e) }
        if let e = tunnel.entries.first(where: { $0.key == "routes" }) {
            guard role == .router else {
                throw ConfigError(file: file, line: e.line, "routes is for the router (the VPS routes each tenant's allowed prefixes)")
            }
            c.tunnel.routes = try reader.prefixes(e)
        } else if role == .router {
            c.tunnel.routes = ["0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1"].map { IPPrefix($0)! }
        }

        switch role {
        case .router:
            for name in ["vps", "tenant"] {
                if let s = single[name]?.first { throw ConfigError(file: file, line: s.line, "[\(name)] is for role = vps") }
            }
            guard let server = single["server"]?.first else {
                throw ConfigError(file: file, line: 0, "role = router needs a [server] section")
            }
            let address = try reader.socketAddress(reader.required("address", in: server))
            let pub = try reader.key(reader.required("public-key", in: server), what: "public-key (the VPS's `tquicctl pubkey`)")
            guard let wanSections = single["wan"], !wanSections.isEmpty else {
                throw ConfigError(file: file, line: 0, "role = router needs at least one [wan] section")
            }
            var wans: [WANConfiguration] = []
            for s in wanSections {
                let ifEntry = try reader.required("interface", in: s)
                var w = WANConfiguration(interface: try reader.interfaceName(ifEntry), line: s.line)
                if let dup = wans.first(where: { $0.interface == w.interface }) {
                    throw ConfigError(file: file, line: ifEntry.line, "interface \(w.interface) already has a [wan] on line \(dup.line)")
                }
                if let e = s.entries.first(where: { $0.key == "weight" }) { w.weight = try reader.integer(e, in: 1...100) }
                if let e = s.entries.first(where: { $0.key == "backup" }) { w.isBackup = try reader.boolean(e) }
                if let e = s.entries.first(where: { $0.key == "source" }) {
                    guard let ip = SocketAddress.parseIP(e.value) else {
                        throw ConfigError(file: file, line: e.line, "source must be an IP address, got `\(e.value)`")
                    }
                    w.source = SocketAddress(ip: ip, port: 0)
                }
                wans.append(w)
            }
            if wans.allSatisfy(\.isBackup) {
                throw ConfigError(file: file, line: wans[0].line, "every [wan] is a backup: at least one must carry traffic")
            }
            c.router = RouterConfiguration(server: address, serverPublicKey: pub, wans: wans)
        case .vps:
            for name in ["server", "wan"] {
                if let s = single[name]?.first { throw ConfigError(file: file, line: s.line, "[\(name)] is for role = router") }
            }
            guard let vps = single["vps"]?.first else { throw ConfigError(file: file, line: 0, "role = vps needs a [vps] section") }
            let listen = try reader.socketAddress(reader.required("listen", in: vps))
            let egress = try reader.interfaceName(reader.required("egress", in: vps))
            var v = VPSConfiguration(listen: listen, egress: egress, tenants: [])
            if let e = vps.entries.first(where: { $0.key == "tenant-dir" }) {
                guard e.value.hasPrefix("/") else { throw ConfigError(file: file, line: e.line, "tenant-dir must be an absolute path") }
                v.tenantDirectory = e.value
            }
            c.vps = v
            try c.addTenants(from: single["tenant"] ?? [], file: file)
        }
        return c
    }

    /// Adds the [tenant] sections of a tenant file (tenant-dir) and checks them against the
    /// tenants already known.
    public mutating func addingTenants(fromText text: String, file: String) throws {
        let sections = try ConfigFile.parse(text, file: file)
        for s in sections {
            guard s.name == "tenant" else {
                throw ConfigError(file: file, line: s.line, "a tenant file holds only [tenant] sections, got [\(s.name)]")
            }
            for e in s.entries where !DaemonConfiguration.knownKeys["tenant"]!.contains(e.key) {
                throw ConfigError(
                    file: file, line: e.line,
                    "unknown key `\(e.key)` in [tenant] (known: \(DaemonConfiguration.knownKeys["tenant"]!.joined(separator: ", ")))")
            }
        }
        try addTenants(from: sections, file: file)
    }

    private mutating func addTenants(from sections: [ConfigSection], file: String) throws {
        guard vps != nil else { return }
        let reader = SectionReader(file: file)
        for s in sections {
            let nameEntry = try reader.required("name", in: s)
            let name = nameEntry.value
            guard !name.isEmpty, name.count <= 64, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) })
            else {
                throw ConfigError(file: file, line: nameEntry.line, "a tenant name is 1–64 letters, digits, `-`, `_` or `.`, got `\(name)`")
            }
            let keyEntry = try reader.required("public-key", in: s)
            let pub = try reader.key(keyEntry, what: "public-key (the router's `tquicctl pubkey`)")
            let allowedEntry = try reader.required("allowed", in: s)
            let allowed = try reader.prefixes(allowedEntry)
            for t in vps!.tenants {
                if t.name == name {
                    throw ConfigError(file: file, line: nameEntry.line, "tenant \(name) is already defined at \(t.file):\(t.line)")
                }
                if t.publicKey == pub {
                    throw ConfigError(
                        file: file, line: keyEntry.line, "this public key is already tenant \(t.name)'s (\(t.file):\(t.line))")
                }
                for a in allowed {
                    if let b = t.allowed.first(where: { $0.overlaps(a) }) {
                        throw ConfigError(
                            file: file, line: allowedEntry.line,
                            "\(a) overlaps \(b) of tenant \(t.name) (\(t.file):\(t.line)): each inner address belongs to one tenant")
                    }
                }
            }
            vps!.tenants.append(TenantConfiguration(name: name, publicKey: pub, allowed: allowed, file: file, line: s.line))
        }
    }
}

/// Reads typed values out of entries, each failure a ConfigError on the entry's line.
struct SectionReader {
    let file: String

    func required(_ key: String, in s: ConfigSection) throws -> ConfigEntry {
        guard let e = s.entries.first(where: { $0.key == key }) else {
            throw ConfigError(file: file, line: s.line, "[\(s.name)] needs `\(key) = ...`")
        }
        guard !e.value.isEmpty else { throw ConfigError(file: file, line: e.line, "`\(key)` is empty") }
        return e
    }

    func oneOf(_ e: ConfigEntry, _ names: [String]) throws -> String {
        let v = e.value.lowercased()
        guard names.contains(v) else {
            throw ConfigError(file: file, line: e.line, "\(e.key) must be one of \(names.joined(separator: ", ")), got `\(e.value)`")
        }
        return v
    }

    func integer(_ e: ConfigEntry, in range: ClosedRange<Int>, note: String = "") throws -> Int {
        guard e.value.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(e.value), range.contains(n) else {
            throw ConfigError(
                file: file, line: e.line,
                "\(e.key) must be a whole number from \(range.lowerBound) to \(range.upperBound)\(note), got `\(e.value)`")
        }
        return n
    }

    func boolean(_ e: ConfigEntry) throws -> Bool {
        switch e.value.lowercased() {
        case "yes", "true", "on", "1": return true
        case "no", "false", "off", "0": return false
        default: throw ConfigError(file: file, line: e.line, "\(e.key) must be yes or no, got `\(e.value)`")
        }
    }

    /// A Linux interface name (IFNAMSIZ: at most 15 bytes; no `/`, spaces or `:`): it goes into
    /// ioctls, netlink and nftables rules.
    func interfaceName(_ e: ConfigEntry) throws -> String {
        let v = e.value
        guard !v.isEmpty, v.utf8.count <= 15, v != ".", v != "..",
            v.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) })
        else {
            throw ConfigError(
                file: file, line: e.line, "\(e.key) must be an interface name (1–15 letters, digits, `-`, `_`, `.`), got `\(v)`")
        }
        return v
    }

    func socketAddress(_ e: ConfigEntry) throws -> SocketAddress {
        let v = e.value
        if let a = SocketAddress(v, defaultPort: DaemonConfiguration.defaultPort), a.port != 0 { return a }
        throw ConfigError(
            file: file, line: e.line,
            "\(e.key) must be IP:PORT, [IPv6]:PORT or an IP (port \(DaemonConfiguration.defaultPort)), got `\(v)` (host names are not resolved: give the address)"
        )
    }

    func prefixes(_ e: ConfigEntry) throws -> [IPPrefix] {
        var out: [IPPrefix] = []
        for part in e.value.split(separator: ",") {
            let t = part.trimmingSpaces()
            guard let p = IPPrefix(t) else {
                throw ConfigError(file: file, line: e.line, "`\(t)` is not an address or prefix (like 10.8.0.2/24 or fd00:8::2/64)")
            }
            out.append(p)
        }
        guard !out.isEmpty else { throw ConfigError(file: file, line: e.line, "\(e.key) lists no prefix") }
        return out
    }

    /// A 32-byte key in base64 (44 characters), as `tquicctl genkey` / `pubkey` print it.
    func key(_ e: ConfigEntry, what: String) throws -> [UInt8] {
        if e.value.hasPrefix("REPLACE_WITH") {
            // The shipped example's placeholder: say what to do, not what is wrong.
            throw ConfigError(
                file: file, line: e.line,
                "\(what) is not set yet: replace \(e.value) with the key (`tquicctl genkey` makes a private key, `tquicctl pubkey` prints its public half)"
            )
        }
        guard let bytes = ConfigBase64.decode(e.value), bytes.count == 32 else {
            throw ConfigError(file: file, line: e.line, "\(what) must be 44 characters of base64 (32 bytes)")
        }
        return bytes
    }
}

/// Base64 (RFC 4648 §4, padded) for keys in the config; the parser stays free of BoringSSL so
/// it can be fuzzed on its own.
enum ConfigBase64 {
    static func decode(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard !chars.isEmpty, chars.count % 4 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 4 * 3)
        var i = 0
        while i < chars.count {
            var quad: [Int] = []
            var padding = 0
            for k in 0..<4 {
                let c = chars[i + k]
                if c == UInt8(ascii: "=") {
                    // Padding only at the end, in the last two places.
                    guard i + 4 == chars.count, k >= 2 else { return nil }
                    padding += 1
                    quad.append(0)
                    continue
                }
                guard padding == 0, let v = value(c) else { return nil }
                quad.append(v)
            }
            let n = quad[0] << 18 | quad[1] << 12 | quad[2] << 6 | quad[3]
            out.append(UInt8(n >> 16 & 0xff))
            if padding < 2 { out.append(UInt8(n >> 8 & 0xff)) }
            if padding < 1 { out.append(UInt8(n & 0xff)) }
            i += 4
        }
        return out
    }

    private static func value(_ c: UInt8) -> Int? {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return Int(c - UInt8(ascii: "A"))
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return Int(c - UInt8(ascii: "a")) + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return Int(c - UInt8(ascii: "0")) + 52
        case UInt8(ascii: "+"): return 62
        case UInt8(ascii: "/"): return 63
        default: return nil
        }
    }
}
