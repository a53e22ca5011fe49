import Glibc
import QUIC
// tquicd's table installed through libnftables in a network namespace of the test's own: created
// with its chains and rules, replaced rather than duplicated, removed, with another table in the
// namespace left as it was and nothing changed when a transaction fails.
import XCTest

@testable import LinuxNet

final class NFTablesTableTests: XCTestCase {
    private var namespace: FirewallTestNamespace!
    /// Unique per test process, so that a listing on the host proves the host has no such table.
    private let tableName = "tquic_t\(getpid())"

    override func setUpWithError() throws {
        namespace = try FirewallTestNamespace()
    }

    override func tearDown() {
        namespace?.remove()
        namespace = nil
    }

    private func vpsRuleset(_ prefixes: [String] = ["10.8.0.0/24", "fd00:8::/64"]) throws -> NFTablesRuleset {
        try NFTablesRuleset.vps(tunnelInterface: "tquic0", egressInterface: "eth0", innerPrefixes: prefixes.map { IPPrefix($0)! })
    }

    func testInstallCreatesTheTableWithItsChainsAndRulesInTheNamespaceOnly() throws {
        let table = try NFTablesTable(name: tableName)
        let ruleset = try vpsRuleset()
        try namespace.run { try table.install(ruleset) }

        let listing = try XCTUnwrap(try namespace.listTable(tableName), "no table \(tableName) after install")
        XCTAssertEqual(listing.tables, [tableName])
        XCTAssertEqual(
            listing.chains,
            [
                .init(name: "tunnel_forward", type: "filter", hook: "forward", policy: "accept"),
                .init(name: "tunnel_masquerade", type: "nat", hook: "postrouting", policy: "accept"),
            ])
        XCTAssertEqual(listing.rules(in: "tunnel_forward").count, 5, "2 MSS clamps, the tenant-to-tenant drop, 2 accepts")
        XCTAssertEqual(listing.rules(in: "tunnel_masquerade").count, 2, "IPv4 and IPv6 masquerade")
        XCTAssertTrue(listing.rules(in: "tunnel_forward")[0].contains("maxseg"), listing.rules(in: "tunnel_forward")[0])
        XCTAssertTrue(listing.rules(in: "tunnel_masquerade").allSatisfy { $0.contains("masquerade") })

        let host = try FirewallTestNamespace.command(["nft", "list", "table", "inet", tableName])
        XCTAssertNotEqual(host.status, 0, "the host's ruleset has the test's table: \(host.output)")
    }

    func testASecondInstallReplacesTheTableInsteadOfAddingToIt() throws {
        let table = try NFTablesTable(name: tableName)
        let first = try vpsRuleset()
        let second = try vpsRuleset(["10.9.0.0/16"])
        try namespace.run {
            try table.install(first)
            try table.install(first)
        }
        var listing = try XCTUnwrap(try namespace.listTable(tableName))
        XCTAssertEqual(listing.chains.count, 2)
        XCTAssertEqual(listing.rules.count, 7, "installing the same ruleset twice duplicated rules")

        try namespace.run { try table.install(second) }
        listing = try XCTUnwrap(try namespace.listTable(tableName))
        XCTAssertEqual(listing.rules(in: "tunnel_masquerade").count, 1)
        XCTAssertTrue(listing.rules(in: "tunnel_masquerade")[0].contains("10.9.0.0"), listing.rules(in: "tunnel_masquerade")[0])

        let router = try NFTablesRuleset.router(tunnelInterface: "tquic0")
        try namespace.run { try table.install(router) }
        listing = try XCTUnwrap(try namespace.listTable(tableName))
        XCTAssertEqual(listing.chains.map(\.name), ["tunnel_forward"])
        XCTAssertEqual(listing.rules.count, 2, "the router table has the two MSS clamps only")
    }

    func testRemoveDeletesOurTableAndLeavesAForeignTableUntouched() throws {
        for command in [
            ["add", "table", "inet", "foreign"],
            ["add", "chain", "inet", "foreign", "keep", "{ type filter hook forward priority 0; policy drop; }"],
            ["add", "rule", "inet", "foreign", "keep", "iifname", "lo", "counter", "accept"],
        ] {
            let result = try namespace.exec(["nft"] + command)
            XCTAssertEqual(result.status, 0, "nft \(command.joined(separator: " ")): \(result.output)")
        }
        let before = try namespace.exec(["nft", "-j", "list", "table", "inet", "foreign"]).output

        let table = try NFTablesTable(name: tableName)
        let ruleset = try vpsRuleset()
        try namespace.run {
            try table.install(ruleset)
            try table.install(ruleset)
            try table.remove()
            try table.remove()  // nothing left: still no error
        }
        XCTAssertNil(try namespace.listTable(tableName), "table \(tableName) still there after remove")
        XCTAssertEqual(
            try namespace.exec(["nft", "-j", "list", "table", "inet", "foreign"]).output, before,
            "the foreign table changed")
    }

    func testAFailingInstallReportsNftsErrorAndLeavesTheOldTable() throws {
        let table = try NFTablesTable(name: tableName)
        let good = try vpsRuleset()
        // Not reachable through vps()/router(): a rule libnftables rejects.
        var bad = good
        bad.chains[0].rules.append("this is not nft")
        let error: Error? = try namespace.run {
            try table.install(good)
            do {
                try table.install(bad)
                return nil
            } catch { return error }
        }
        let nftError = try XCTUnwrap(error as? NFTablesError, "a bad ruleset installed without error")
        XCTAssertTrue(nftError.message.contains("syntax error"), nftError.description)
        XCTAssertEqual(
            try XCTUnwrap(try namespace.listTable(tableName)).rules.count, 7,
            "the failed transaction changed the installed table")
    }
}
