import Bonding
import Congestion
import Foundation
import Glibc
// /metrics and the dashboard's listener: the status figures become Prometheus series with the
// documented names, counters follow the engine's totals (and restart when a total goes down),
// series of vanished paths go away, and the HTTP server answers the three documents and nothing
// else, over a real loopback socket.
import XCTest

@testable import TQUICDaemon

final class MetricsTests: XCTestCase {
    func router(bytesSent: UInt64, paths: [String] = ["wan1", "wan2"]) -> RouterStatusJSON {
        RouterStatusJSON(
            server: "192.0.2.1:4433", connected: true, scheduler: "aggregate", congestion: "bbr",
            tunnelInterface: "tquic0", tunnelMTU: 1400, connectionsOpened: 1, connectionsLost: 0, lastCloseReason: nil,
            paths: paths.enumerated().map { i, name in
                PathJSON(
                    interface: name, pathID: UInt32(i), state: "active", up: true, backup: i == 1, dead: false,
                    remote: "192.0.2.1:4433", rttMs: 12.5, minRttMs: 10, rttVarianceMs: 1.5, congestionWindow: 64_000,
                    bytesInFlight: 3000, deliveryRateBitsPerSecond: 8e6, lossRate: 0.01, mtu: 1452, packetsSent: 100,
                    packetsLost: 1, bytesSent: bytesSent, packetsReceived: 90, pacingRateBitsPerSecond: 16e6,
                    ecnCongestionExperienced: 0, congestionControl: "bbr")
            },
            tunnel: TunnelCountersJSON(
                innerPacketsSent: 10, innerBytesSent: 1000, reinjected: 0, droppedQueueFull: 0,
                droppedCoDel: 2, droppedTooLarge: 0, queueGuardHolds: 4, delivered: 9, deliveredBytes: 900, receivedMalformed: 0,
                reorderHeld: 3, duplicatesDropped: 1, lateDropped: 0, gapsSkipped: 0))
    }

    func text(_ e: MetricsExporter) -> String { String(decoding: e.text(), as: UTF8.self) }

    /// The value of the series `name{labels}` in the exposition text, if present.
    func value(_ text: String, _ series: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))
        }
        return nil
    }

    func testTheStatusBecomesDocumentedSeriesInPrometheusUnits() {
        let samples = TunnelMetrics.samples(router: router(bytesSent: 5000))
        for s in samples {
            XCTAssertNotNil(TunnelMetrics.help[s.name], "\(s.name) has a help text")
            XCTAssertTrue(s.name.hasPrefix("tquic_"))
            if s.kind == .counter { XCTAssertTrue(s.name.hasSuffix("_total"), "\(s.name): a counter ends in _total") }
        }
        let e = MetricsExporter()
        e.update(samples)
        let t = text(e)
        XCTAssertTrue(t.contains("# TYPE tquic_path_rtt_seconds gauge"), t)
        XCTAssertTrue(t.contains("# TYPE tquic_path_sent_bytes_total counter"), t)
        XCTAssertTrue(t.contains("# HELP tquic_path_rtt_seconds Smoothed round-trip time"), t)
        XCTAssertEqual(value(t, #"tquic_path_rtt_seconds{path="wan1"}"#), 0.0125, "milliseconds become seconds")
        XCTAssertEqual(value(t, #"tquic_path_pacing_rate_bytes_per_second{path="wan2"}"#), 2e6, "bits become bytes")
        XCTAssertEqual(value(t, #"tquic_path_backup{path="wan2"}"#), 1)
        XCTAssertEqual(value(t, #"tquic_path_sent_bytes_total{path="wan1"}"#), 5000)
        XCTAssertEqual(value(t, #"tquic_tunnel_dropped_packets_total{reason="codel"}"#), 2)
        XCTAssertEqual(value(t, #"tquic_reorder_held_packets"#), 3)
        XCTAssertEqual(value(t, "tquic_queue_guard_holds_total"), 4)
    }

    func testCountersFollowTheTotals_RestartWhenATotalFalls_AndVanishedPathsGoAway() {
        let e = MetricsExporter()
        e.update(TunnelMetrics.samples(router: router(bytesSent: 5000)))
        e.update(TunnelMetrics.samples(router: router(bytesSent: 7500)))
        XCTAssertEqual(value(text(e), #"tquic_path_sent_bytes_total{path="wan1"}"#), 7500, "the counter follows the total")
        e.update(TunnelMetrics.samples(router: router(bytesSent: 200)))
        XCTAssertEqual(value(text(e), #"tquic_path_sent_bytes_total{path="wan1"}"#), 200, "a new connection: the counter restarts")
        e.update(TunnelMetrics.samples(router: router(bytesSent: 300, paths: ["wan1"])))
        let t = text(e)
        XCTAssertNotNil(value(t, #"tquic_path_rtt_seconds{path="wan1"}"#))
        XCTAssertNil(value(t, #"tquic_path_rtt_seconds{path="wan2"}"#), "wan2's series left with wan2")
        XCTAssertFalse(t.contains(#"path="wan2""#), t)
    }

    func testTheListenerServesMetricsTheDashboardAndStatus_AndNothingElse() throws {
        let exporter = MetricsExporter()
        let board = ObservationBoard()
        exporter.update(TunnelMetrics.samples(router: router(bytesSent: 42)))
        board.publish(Observation.router(router(bytesSent: 21)).json(sampledAt: 1))
        board.publish(Observation.router(router(bytesSent: 42)).json(sampledAt: 2))
        let server = try ObservationServer(host: "127.0.0.1", port: 0, exporter: exporter, board: board)
        defer { server.close() }
        XCTAssertGreaterThan(server.localPort, 0)

        let metrics = try get("/metrics", port: server.localPort)
        XCTAssertTrue(metrics.hasPrefix("HTTP/1.1 200 OK"), metrics)
        XCTAssertTrue(metrics.contains("Content-Type: text/plain; version=0.0.4"), metrics)
        XCTAssertTrue(metrics.contains(#"tquic_path_sent_bytes_total{path="wan1"} 42"#), metrics)
        let page = try get("/", port: server.localPort)
        XCTAssertTrue(page.contains("<title>TQUIC dashboard</title>"), page)
        XCTAssertFalse(page.contains("http://") || page.contains("https://"), "the page loads nothing from elsewhere")
        let status = try get("/status.json", port: server.localPort)
        XCTAssertTrue(status.contains(#""interface" : "wan1""#), status)
        XCTAssertTrue(status.contains(#""sampledAtSeconds" : 2"#), "the latest sample: \(status)")
        let history = try get("/history.json", port: server.localPort)
        let body = try XCTUnwrap(history.components(separatedBy: "\r\n\r\n").last)
        let samples = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [[String: Any]], history)
        XCTAssertEqual(samples.map { $0["sampledAtSeconds"] as? Double }, [1, 2], "the kept samples, oldest first")
        XCTAssertTrue(try get("/etc/passwd", port: server.localPort).hasPrefix("HTTP/1.1 404"))
        XCTAssertTrue(try get("/metrics", port: server.localPort, method: "POST").hasPrefix("HTTP/1.1 405"))
    }

    func testTheReorderHoldTimesBecomeACumulativePrometheusHistogram() {
        var h = LatencyHistogram()
        for us in [100, 100, 100, 3_000, 3_000, 40_000] as [UInt64] { h.record(Duration(nanoseconds: us * 1000)) }
        var r = router(bytesSent: 1)
        r.tunnel?.reorderHold = HoldTimesJSON(h)
        let e = MetricsExporter()
        e.update(TunnelMetrics.samples(router: r))
        e.update(histograms: TunnelMetrics.histograms(.router(r)))
        let t = text(e)
        XCTAssertTrue(t.contains("# TYPE tquic_reorder_hold_seconds histogram"), t)
        XCTAssertEqual(value(t, #"tquic_reorder_hold_seconds_bucket{le="0.0005"}"#), 3)
        XCTAssertEqual(value(t, #"tquic_reorder_hold_seconds_bucket{le="0.001"}"#), 3)
        XCTAssertEqual(value(t, #"tquic_reorder_hold_seconds_bucket{le="0.005"}"#), 5)
        XCTAssertEqual(value(t, #"tquic_reorder_hold_seconds_bucket{le="0.05"}"#), 6)
        XCTAssertEqual(value(t, #"tquic_reorder_hold_seconds_bucket{le="+Inf"}"#), 6)
        XCTAssertEqual(value(t, "tquic_reorder_hold_seconds_count"), 6)
        XCTAssertEqual(value(t, "tquic_reorder_hold_seconds_sum") ?? 0, 0.0463, accuracy: 1e-9)
    }

    func testTheHistoryKeepsTheLastFiveMinutesOldestFirst() throws {
        let board = ObservationBoard()
        for i in 0..<(ObservationBoard.historyLength + 7) { board.publish("\(i)") }
        let list = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(board.history)) as? [Int])
        XCTAssertEqual(list.count, ObservationBoard.historyLength)
        XCTAssertEqual(list.first, 7)
        XCTAssertEqual(list.last, ObservationBoard.historyLength + 6)
        XCTAssertEqual(String(decoding: board.current, as: UTF8.self), "\(ObservationBoard.historyLength + 6)")
    }

    /// One request over a fresh loopback TCP connection; the whole reply.
    func get(_ path: String, port: Int, method: String = "GET") throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = UInt16(port).bigEndian
        a.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let ok = withUnsafePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard ok == 0 else { throw POSIXError(.ECONNREFUSED) }
        let request = Array("\(method) \(path) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            reply += buffer[0..<n]
        }
        return String(decoding: reply, as: UTF8.self)
    }
}
