// `tquicctl monitor`'s source: the numbered event log (what `events after N` answers, what was
// lost from it) and the events two status observations differ by.
import XCTest

@testable import TQUICDaemon

final class EventLogTests: XCTestCase {
    func testTheAnswerGivesTheNextNumberTheNewEventsAndWhatWasLost() {
        var log = EventLog(capacity: 3)
        XCTAssertEqual(log.answer(after: 0), "next 0\n")
        for i in 1...5 { log.append("e\(i)", time: "12:00:0\(i).000") }
        XCTAssertEqual(log.answer(after: 4), "next 5\n5 12:00:05.000 e5\n")
        XCTAssertEqual(log.answer(after: 5), "next 5\n", "nothing new")
        XCTAssertEqual(
            log.answer(after: 1), "next 5\nlost 1\n3 12:00:03.000 e3\n4 12:00:04.000 e4\n5 12:00:05.000 e5\n",
            "e2 fell out of the log before the client asked")
        XCTAssertEqual(ControlCommand.parse("events after 7"), .success(.events(after: 7)))
        XCTAssertEqual(ControlCommand.parse("events"), .success(.events(after: 0)))
        if case .success = ControlCommand.parse("events after x") { XCTFail("`events after x` is no request") }
    }

    func path(_ name: String, state: String = "active", backup: Bool = false, up: Bool = true) -> PathJSON {
        PathJSON(interface: name, pathID: 0, state: state, up: up, backup: backup, dead: false)
    }

    func router(_ paths: [PathJSON], connected: Bool = true, scheduler: String = "aggregate") -> Observation {
        .router(
            RouterStatusJSON(
                server: "192.0.2.1:4433", connected: connected, scheduler: scheduler, congestion: "bbr",
                tunnelInterface: "tquic0", tunnelMTU: 1400, connectionsOpened: 1, connectionsLost: 0,
                lastCloseReason: nil, paths: paths, tunnel: nil))
    }

    func testPathsComingGoingChangingStateAndRoleAreEvents() {
        let start = router([path("wan1"), path("wan2")])
        XCTAssertEqual(
            EventDetector.events(from: nil, to: start),
            [
                "started: router, scheduler aggregate, congestion bbr", "connected to 192.0.2.1:4433",
                "wan1 added: active", "wan2 added: active",
            ])
        XCTAssertEqual(EventDetector.events(from: start, to: start), [], "no change, no event")
        XCTAssertEqual(EventDetector.events(from: start, to: router([path("wan1"), path("wan2", backup: true)])), ["wan2: backup"])
        XCTAssertEqual(
            EventDetector.events(from: start, to: router([path("wan1"), path("wan2", state: "down", up: false)])),
            ["wan2: active -> down"])
        XCTAssertEqual(
            EventDetector.events(from: start, to: router([path("wan1")], scheduler: "minrtt")),
            ["scheduler aggregate -> minrtt", "wan2 removed"])
        XCTAssertEqual(
            EventDetector.events(from: start, to: router([path("wan1"), path("wan2")], connected: false)),
            ["disconnected from 192.0.2.1:4433"])
    }

    func testTenantsConnectingAndLeavingAreEvents() {
        func vps(_ connected: Bool) -> Observation {
            .vps(
                VPSStatusJSON(
                    listen: ["[::]:4433"], scheduler: "aggregate", congestion: "bbr", droppedNoTenant: 0, connectionsRefused: 0,
                    droppedDatagrams: 0,
                    tenants: [
                        TenantJSON(
                            name: "home", connected: connected, remote: connected ? "198.51.100.7:40000" : nil,
                            paths: connected
                                ? [
                                    PathJSON(
                                        interface: nil, pathID: 0, state: "active", up: nil, backup: false,
                                        dead: nil, remote: "198.51.100.7:40000")
                                ] : [],
                            packetsDelivered: 0, bytesDelivered: 0, packetsSent: 0, bytesSent: 0,
                            droppedSourceNotAllowed: 0, droppedNotConnected: 0, droppedQueueFull: 0, droppedCoDel: 0,
                            droppedTooBig: 0, connectionsAccepted: 1, connectionsReplaced: 0)
                    ]))
        }
        XCTAssertEqual(
            EventDetector.events(from: vps(false), to: vps(true)),
            ["tenant home connected from 198.51.100.7:40000", "tenant home path 0 added: active from 198.51.100.7:40000"])
        XCTAssertEqual(EventDetector.events(from: vps(true), to: vps(false)), ["tenant home disconnected", "tenant home path 0 removed"])
    }
}
