import QUIC
// The nftables text tquicd installs, checked as text (the renderer is pure): the VPS forwards and
// masquerades, both sides clamp the MSS, and no config string reaches the text unvalidated.
import XCTest

@testable import LinuxNet

final class NFTablesRulesetTests: XCTestCase {
    func testTheVPSRulesetForwardsMasqueradesAndClampsInOneTransaction() throws {
        let ruleset = try NFTablesRuleset.vps(
            tunnelInterface: "tquic0", egressInterface: "eth0",
            innerPrefixes: [IPPrefix("10.8.0.0/24")!, IPPrefix("fd00:8::/64")!, IPPrefix("10.9.0.0/16")!])
        XCTAssertEqual(
            ruleset.script(table: "tquic"),
            """
            add table inet tquic
            delete table inet tquic
            table inet tquic {
            \tchain tunnel_forward {
            \t\ttype filter hook forward priority filter; policy accept;
            \t\tiifname "tquic0" tcp flags syn tcp option maxseg size set rt mtu
            \t\toifname "tquic0" tcp flags syn tcp option maxseg size set rt mtu
            \t\tiifname "tquic0" oifname "tquic0" counter drop
            \t\tiifname "tquic0" oifname "eth0" counter accept
            \t\tiifname "eth0" oifname "tquic0" ct state established,related counter accept
            \t}
            \tchain tunnel_masquerade {
            \t\ttype nat hook postrouting priority srcnat; policy accept;
            \t\toifname "eth0" ip saddr { 10.8.0.0/24, 10.9.0.0/16 } counter masquerade
            \t\toifname "eth0" ip6 saddr { fd00:8::/64 } counter masquerade
            \t}
            }

            """)
    }

    func testPrefixesAreRenderedAsNetworksOnceEach() throws {
        let ruleset = try NFTablesRuleset.vps(
            tunnelInterface: "tq0", egressInterface: "ens3",
            innerPrefixes: [IPPrefix("10.8.0.1/24")!, IPPrefix("10.8.0.7/24")!])
        let text = ruleset.script(table: "tquic")
        XCTAssertTrue(text.contains("ip saddr { 10.8.0.0/24 } counter masquerade"), text)
        XCTAssertFalse(text.contains("ip6 saddr"), "no IPv6 prefix, no IPv6 masquerade rule:\n\(text)")
    }

    func testTheRouterRulesetOnlyClampsTheMSSOnTheTunnelBothWays() throws {
        XCTAssertEqual(
            try NFTablesRuleset.router(tunnelInterface: "tquic0").script(table: "tquic_lab"),
            """
            add table inet tquic_lab
            delete table inet tquic_lab
            table inet tquic_lab {
            \tchain tunnel_forward {
            \t\ttype filter hook forward priority mangle; policy accept;
            \t\tiifname "tquic0" tcp flags syn tcp option maxseg size set rt mtu
            \t\toifname "tquic0" tcp flags syn tcp option maxseg size set rt mtu
            \t}
            }

            """)
    }

    func testRemovalDeletesOnlyTheNamedTableAndSucceedsWhenItIsAbsent() {
        XCTAssertEqual(NFTablesRuleset.removalScript(table: "tquic"), "add table inet tquic\ndelete table inet tquic\n")
    }

    func testInterfaceNamesThatCouldInjectNftSyntaxAreRejected() {
        for bad in [
            "", "eth0\" accept", "eth0 ; flush ruleset", "a{b}", "eth*", "sixteen_chars_xx", ".", "..",
            "eth0\n", "wlan\u{0}", "ëth0", "eth/0",
        ] {
            XCTAssertThrowsError(try NFTablesRuleset.router(tunnelInterface: bad), "accepted interface name \(bad.debugDescription)")
            XCTAssertThrowsError(
                try NFTablesRuleset.vps(tunnelInterface: "tquic0", egressInterface: bad, innerPrefixes: []),
                "accepted egress name \(bad.debugDescription)")
        }
        for good in ["eth0", "wwan0", "enp0s31f6", "eth0.100", "br-lan", "tquic_1", "fifteen_chars_x"] {
            XCTAssertNoThrow(try NFTablesRuleset.router(tunnelInterface: good), "refused interface name \(good)")
        }
    }

    func testTheTunnelCannotAlsoBeTheEgress() {
        XCTAssertThrowsError(try NFTablesRuleset.vps(tunnelInterface: "eth0", egressInterface: "eth0", innerPrefixes: []))
    }

    func testTableNamesAreIdentifiers() {
        for bad in ["", "1tquic", "tquic-lab", "tquic lab", "tquic;", String(repeating: "t", count: 65)] {
            XCTAssertThrowsError(try NFTablesTable(name: bad), "accepted table name \(bad.debugDescription)")
        }
        XCTAssertEqual(try NFTablesTable(name: "tquic_lab1").name, "tquic_lab1")
    }

    func testAnErrorSaysWhatFailedAndWhy() {
        XCTAssertEqual(
            NFTablesError("install table inet tquic", "Error: syntax error").description,
            "nftables install table inet tquic: Error: syntax error")
    }
}
