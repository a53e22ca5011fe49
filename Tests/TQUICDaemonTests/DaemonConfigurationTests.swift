import Bonding
import Congestion
import QUIC
// /etc/tquic.conf: both roles' files parse into what they say; every mistake is an error that
// names the file, the line and the problem; the names it accepts are the engine's own.
import XCTest

@testable import TQUICDaemon

final class DaemonConfigurationTests: XCTestCase {
    let key = TunnelKey(seed: [UInt8](repeating: 7, count: 32))!
    let peer = TunnelKey(seed: [UInt8](repeating: 8, count: 32))!

    var routerText: String {
        """
        # router
        [tquic]
        role = router
        private-key = \(key.base64)
        scheduler = minrtt   ; comment after a value
        keepalive = 15

        [tunnel]
        name = tq0
        address = 10.8.0.2/24, fd00:8::2/64
        mtu = 1400

        [server]
        address = 192.0.2.1:4433
        public-key = \(peer.publicKeyBase64)

        [wan]
        interface = eth1
        weight = 3

        [wan]
        interface = wwan0
        backup = yes
        source = 100.64.0.2
        """
    }

    var vpsText: String {
        """
        [tquic]
        role = vps
        private-key = \(key.base64)
        [tunnel]
        address = 10.8.0.1/24
        [vps]
        listen = [::]:4433
        egress = eth0
        [tenant]
        name = home
        public-key = \(peer.publicKeyBase64)
        allowed = 10.8.0.2/32, 192.168.1.0/24
        """
    }

    func testRouterFile() throws {
        let c = try DaemonConfiguration.parse(routerText, file: "r.conf")
        XCTAssertEqual(c.role, .router)
        XCTAssertEqual(c.privateKey, key.seed)
        XCTAssertEqual(c.scheduler, "minrtt")
        XCTAssertEqual(c.congestion, "bbr")
        XCTAssertEqual(c.keepaliveSeconds, 15)
        XCTAssertEqual(c.tunnel.name, "tq0")
        XCTAssertEqual(c.tunnel.addresses.map(\.description), ["10.8.0.2/24", "fd00:8::2/64"])
        XCTAssertEqual(c.tunnel.mtu, 1400)
        XCTAssertTrue(c.tunnel.offload, "TUN offloads are on unless switched off")
        XCTAssertNil(c.metricsAddress, "no /metrics unless asked for")
        let observed = try DaemonConfiguration.parse(
            routerText.replacingOccurrences(of: "keepalive = 15", with: "keepalive = 15\nmetrics = 127.0.0.1:9270\nnetns = blue"),
            file: "r.conf")
        XCTAssertEqual(observed.metricsAddress, SocketAddress("127.0.0.1:9270"))
        XCTAssertEqual(observed.networkNamespace, "blue")
        let plain = try DaemonConfiguration.parse(
            routerText.replacingOccurrences(of: "mtu = 1400", with: "mtu = 1400\noffload = no"), file: "r.conf")
        XCTAssertFalse(plain.tunnel.offload)
        XCTAssertEqual(c.tunnel.routes.map(\.description), ["0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1"])
        let r = try XCTUnwrap(c.router)
        XCTAssertEqual(r.server, SocketAddress("192.0.2.1:4433"))
        XCTAssertEqual(r.serverPublicKey, peer.publicKey)
        XCTAssertEqual(r.wans.map(\.interface), ["eth1", "wwan0"])
        XCTAssertEqual(r.wans.map(\.weight), [3, 1])
        XCTAssertEqual(r.wans.map(\.isBackup), [false, true])
        XCTAssertEqual(r.wans[1].source?.ipString, "100.64.0.2")
        XCTAssertEqual(r.wans.map(\.line), [17, 21])
        XCTAssertNil(c.vps)
    }

    func testVPSFileAndTenantFiles() throws {
        var c = try DaemonConfiguration.parse(vpsText, file: "v.conf")
        let v = try XCTUnwrap(c.vps)
        XCTAssertEqual(v.listen, SocketAddress("[::]:4433"))
        XCTAssertEqual(v.egress, "eth0")
        XCTAssertEqual(v.tenants.map(\.name), ["home"])
        XCTAssertEqual(v.tenants[0].allowed.map(\.description), ["10.8.0.2/32", "192.168.1.0/24"])
        XCTAssertEqual(c.tunnel.mtu, nil)
        XCTAssertEqual(c.tunnel.routes, [])
        let other = TunnelKey(seed: [UInt8](repeating: 9, count: 32))!
        try c.addingTenants(
            fromText: "[tenant]\nname = office\npublic-key = \(other.publicKeyBase64)\nallowed = 10.8.0.3/32\n", file: "office.conf")
        XCTAssertEqual(c.vps?.tenants.map(\.name), ["home", "office"])
        XCTAssertEqual(c.vps?.tenants[1].file, "office.conf")
        // The same key twice, an overlapping prefix, a name twice: each names both places.
        XCTAssertThrowsError(
            try c.addingTenants(
                fromText: "[tenant]\nname = x\npublic-key = \(peer.publicKeyBase64)\nallowed = 10.9.0.0/24\n", file: "x.conf")
        ) {
            XCTAssertEqual("\($0)", "x.conf:3: this public key is already tenant home's (v.conf:9)")
        }
        let third = TunnelKey(seed: [UInt8](repeating: 10, count: 32))!
        XCTAssertThrowsError(
            try c.addingTenants(
                fromText: "[tenant]\nname = y\npublic-key = \(third.publicKeyBase64)\nallowed = 192.168.0.0/16\n", file: "y.conf")
        ) {
            XCTAssertEqual(
                "\($0)",
                "y.conf:4: 192.168.0.0/16 overlaps 192.168.1.0/24 of tenant home (v.conf:9): each inner address belongs to one tenant")
        }
        XCTAssertThrowsError(
            try c.addingTenants(
                fromText: "[tenant]\nname = office\npublic-key = \(third.publicKeyBase64)\nallowed = 10.10.0.0/24\n", file: "z.conf")
        ) {
            XCTAssertEqual("\($0)", "z.conf:2: tenant office is already defined at office.conf:1")
        }
        XCTAssertThrowsError(try c.addingTenants(fromText: "[wan]\ninterface = eth0\n", file: "w.conf")) {
            XCTAssertEqual("\($0)", "w.conf:1: a tenant file holds only [tenant] sections, got [wan]")
        }
    }

    /// Each broken line gives exactly this message: the file, the line, what is wrong.
    func testErrorsNameFileLineAndProblem() {
        func error(_ text: String) -> String {
            do {
                _ = try DaemonConfiguration.parse(text, file: "/etc/tquic.conf")
                return "no error"
            } catch { return "\(error)" }
        }
        let r = routerText
        func replacing(_ old: String, _ new: String) -> String {
            XCTAssertTrue(r.contains(old), old)
            return r.replacingOccurrences(of: old, with: new)
        }
        XCTAssertEqual(
            error(replacing("weight = 3", "wieght = 3")),
            "/etc/tquic.conf:19: unknown key `wieght` in [wan] (known: interface, weight, backup, source)")
        XCTAssertEqual(error(replacing("keepalive = 15", "qlog-dir = var/log")), "/etc/tquic.conf:6: qlog-dir must be an absolute path")
        XCTAssertEqual(
            error(replacing("keepalive = 15", "qlog-max-mb = 0")),
            "/etc/tquic.conf:6: qlog-max-mb must be a whole number from 1 to 4096, got `0`")
        XCTAssertEqual(
            error(replacing("weight = 3", "weight = 0")),
            "/etc/tquic.conf:19: weight must be a whole number from 1 to 100, got `0`")
        XCTAssertEqual(
            error(replacing("scheduler = minrtt", "scheduler = fastest")),
            "/etc/tquic.conf:5: scheduler must be one of aggregate, minrtt, roundrobin, weighted, blest, ecf, redundant, got `fastest`")
        XCTAssertEqual(
            error(replacing("mtu = 1400", "mtu = 576")),
            "/etc/tquic.conf:11: mtu must be a whole number from 1280 to 9000 or `auto`, got `576`")
        XCTAssertEqual(
            error(replacing("keepalive = 15", "netns = ../x")),
            "/etc/tquic.conf:6: netns must be a network namespace's name (as `ip netns add` made it: letters, digits, `-`, `_`, `.`), got `../x`"
        )
        XCTAssertEqual(
            error(replacing("keepalive = 15", "metrics = grafana.example:9270")),
            "/etc/tquic.conf:6: metrics must be IP:PORT (e.g. 127.0.0.1:9270), [IPv6]:PORT or `off`, got `grafana.example:9270`")
        XCTAssertEqual(
            error(replacing("mtu = 1400", "offload = maybe")),
            "/etc/tquic.conf:11: offload must be yes or no, got `maybe`")
        XCTAssertEqual(
            error(replacing("address = 10.8.0.2/24", "address = 10.8.0.2/33")),
            "/etc/tquic.conf:10: `10.8.0.2/33` is not an address or prefix (like 10.8.0.2/24 or fd00:8::2/64)")
        XCTAssertEqual(
            error(replacing("address = 192.0.2.1:4433", "address = vps.example.com:4433")),
            "/etc/tquic.conf:14: address must be IP:PORT, [IPv6]:PORT or an IP (port 4433), got `vps.example.com:4433` (host names are not resolved: give the address)"
        )
        XCTAssertEqual(
            error(replacing("public-key = \(peer.publicKeyBase64)", "public-key = abc")),
            "/etc/tquic.conf:15: public-key (the VPS's `tquicctl pubkey`) must be 44 characters of base64 (32 bytes)")
        XCTAssertEqual(
            error(replacing("interface = wwan0", "interface = eth1")),
            "/etc/tquic.conf:22: interface eth1 already has a [wan] on line 17")
        XCTAssertEqual(
            error(replacing("interface = wwan0", "interface = a/very/long/name")),
            "/etc/tquic.conf:22: interface must be an interface name (1–15 letters, digits, `-`, `_`, `.`), got `a/very/long/name`")
        XCTAssertEqual(
            error(replacing("backup = yes", "backup = maybe")),
            "/etc/tquic.conf:23: backup must be yes or no, got `maybe`")
        XCTAssertEqual(
            error(replacing("role = router", "role = client")),
            "/etc/tquic.conf:3: role must be `router` or `vps`, got `client`")
        XCTAssertEqual(
            error(replacing("[server]", "[servers]")),
            "/etc/tquic.conf:13: unknown section [servers] (known: [server], [tenant], [tquic], [tunnel], [vps], [wan])")
        XCTAssertEqual(
            error(replacing("keepalive = 15", "keepalive = 15\nkeepalive = 20")),
            "/etc/tquic.conf:7: `keepalive` already set on line 6 in this [tquic]")
        XCTAssertEqual(
            error(replacing("name = tq0", "name tq0")),
            "/etc/tquic.conf:9: expected `key = value` or `[section]`, got `name tq0`")
        XCTAssertEqual(error("role = router\n"), "/etc/tquic.conf:1: `role` comes before any [section]")
        XCTAssertEqual(error(""), "/etc/tquic.conf: no [tquic] section (it holds role and private-key)")
        XCTAssertEqual(
            error(replacing("[wan]\ninterface = eth1\nweight = 3\n\n", "")),
            "/etc/tquic.conf:17: every [wan] is a backup: at least one must carry traffic")
        XCTAssertEqual(error(r + "\n[vps]\nlisten = 1.2.3.4"), "/etc/tquic.conf:25: [vps] is for role = vps")
        XCTAssertEqual(
            error(vpsText.replacingOccurrences(of: "egress = eth0\n", with: "")), "/etc/tquic.conf:6: [vps] needs `egress = ...`")
        XCTAssertEqual(
            error(vpsText.replacingOccurrences(of: "[tunnel]", with: "[tunnel]\nroutes = 0.0.0.0/0")),
            "/etc/tquic.conf:5: routes is for the router (the VPS routes each tenant's allowed prefixes)")
    }

    func testNamesAreTheEnginesOwn() {
        XCTAssertEqual(DaemonConfiguration.schedulerNames, SchedulerKind.allCases.map(\.rawValue))
        XCTAssertEqual(DaemonConfiguration.congestionNames, CongestionAlgorithm.allCases.map(\.rawValue))
    }

    func testBase64MatchesBoringSSL() {
        for _ in 0..<50 {
            let k = TunnelKey.generate()
            XCTAssertEqual(ConfigBase64.decode(k.base64), k.seed)
        }
        XCTAssertEqual(ConfigBase64.decode("TWE="), Array("Ma".utf8))
        XCTAssertEqual(ConfigBase64.decode("TQ=="), Array("M".utf8))
        for bad in ["T===", "TW=E", "TWE", "TWE*", "=TWE"] { XCTAssertNil(ConfigBase64.decode(bad), bad) }
    }

    func testLoaderNamesMissingFileAndNonUTF8Line() throws {
        XCTAssertThrowsError(try ConfigLoader.load("/nonexistent/tquic.conf")) {
            XCTAssertEqual("\($0)", "/nonexistent/tquic.conf: cannot open: No such file or directory")
        }
        let path = NSTemporaryDirectory() + "tquic-config-\(getpid()).conf"
        defer { unlink(path) }
        _ = FileManager.default.createFile(atPath: path, contents: Data("[tquic]\nrole = vps\nname = \u{e9}\n".utf8) + Data([0xff, 0x0a]))
        XCTAssertThrowsError(try ConfigLoader.load(path)) { XCTAssertEqual("\($0)", "\(path):4: not UTF-8 text") }
    }
}

/// The commented examples under etc/ stay valid: with real keys in place of the placeholders
/// they parse, and with the placeholders they fail on the placeholder's line.
final class ExampleConfigurationTests: XCTestCase {
    func example(_ name: String) throws -> (path: String, text: String) {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let path = root.appendingPathComponent("etc/\(name)").path
        return (path, try String(contentsOfFile: path, encoding: .utf8))
    }

    func withKeys(_ text: String) -> String {
        var t = text
        var n: UInt8 = 1
        while let r = t.range(of: #"REPLACE_WITH_[A-Za-z_]+"#, options: .regularExpression) {
            t.replaceSubrange(r, with: TunnelKey(seed: [UInt8](repeating: n, count: 32))!.publicKeyBase64)
            n += 1
        }
        return t
    }

    func testRouterExample() throws {
        let (path, text) = try example("tquic-router.conf")
        XCTAssertThrowsError(try DaemonConfiguration.parse(text, file: path)) {
            XCTAssertEqual(
                "\($0)",
                "\(path):8: private-key (the output of `tquicctl genkey`) is not set yet: replace REPLACE_WITH_OUTPUT_OF_tquicctl_genkey with the key (`tquicctl genkey` makes a private key, `tquicctl pubkey` prints its public half)"
            )
        }
        let c = try DaemonConfiguration.parse(withKeys(text), file: path)
        XCTAssertEqual(c.router?.wans.map(\.interface), ["eth1", "wwan0", "sat0"])
        XCTAssertEqual(c.router?.wans.map(\.isBackup), [false, false, true])
    }

    func testVPSExample() throws {
        let (path, text) = try example("tquic-vps.conf")
        let c = try DaemonConfiguration.parse(withKeys(text), file: path)
        XCTAssertEqual(c.vps?.tenants.map(\.name), ["home", "office"])
        XCTAssertEqual(c.vps?.egress, "eth0")
    }
}
