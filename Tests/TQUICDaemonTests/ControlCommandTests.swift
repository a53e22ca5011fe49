// The control socket's request lines: each command tquicctl sends parses to what it says, and a
// malformed one gets an error line naming what is wrong.
import XCTest

@testable import TQUICDaemon

final class ControlCommandTests: XCTestCase {
    func parse(_ s: String) -> ControlCommand? { try? ControlCommand.parse(s).get() }
    func error(_ s: String) -> String? {
        if case .failure(let e) = ControlCommand.parse(s) { return e.message }
        return nil
    }

    func testCommands() {
        XCTAssertEqual(parse("status"), .status(json: false))
        XCTAssertEqual(parse("status --json"), .status(json: true))
        XCTAssertEqual(parse("paths"), .paths(json: false))
        XCTAssertEqual(parse("paths --json"), .paths(json: true))
        XCTAssertEqual(parse("tenants json"), .tenants(json: true))
        XCTAssertEqual(parse("paths add wwan0"), .pathAdd(interface: "wwan0", backup: false, weight: 1))
        XCTAssertEqual(parse("paths add sat0 backup weight 3"), .pathAdd(interface: "sat0", backup: true, weight: 3))
        XCTAssertEqual(parse("paths del eth1"), .pathDelete(interface: "eth1"))
        XCTAssertEqual(parse("paths set eth1 backup"), .pathSet(interface: "eth1", backup: true))
        XCTAssertEqual(parse("paths set eth1 available"), .pathSet(interface: "eth1", backup: false))
        XCTAssertEqual(parse("scheduler set MinRTT"), .schedulerSet("minrtt"))
        XCTAssertEqual(parse("congestion set cubic"), .congestionSet("cubic"))
        XCTAssertEqual(parse("ping"), .ping)
        XCTAssertTrue(parse("scheduler set redundant")!.changesState)
        XCTAssertFalse(parse("paths")!.changesState)
    }

    func testErrors() {
        XCTAssertEqual(
            error("scheduler set fastest"),
            "unknown scheduler `fastest` (known: aggregate, minrtt, roundrobin, weighted, blest, ecf, redundant)")
        XCTAssertEqual(error("congestion set vegas"), "unknown congestion controller `vegas` (known: newreno, cubic, bbr, copa, westwood)")
        XCTAssertEqual(error("paths add eth0 weight 0"), "paths add: unexpected `weight` (backup, weight 1-100)")
        XCTAssertEqual(error("paths add ../etc"), "`../etc` is not an interface name")
        XCTAssertEqual(
            error("paths set eth0 maybe"), "usage: paths [add IFACE [backup] [weight N] | del IFACE | set IFACE backup|available]")
        XCTAssertNotNil(error("reboot"))
        XCTAssertNotNil(error(""))
        XCTAssertNotNil(error("status now"))
    }
}
