import Congestion
import QUIC
// qlog-dir: files are rotated at their size bound, each part starting with the qlog header, and
// the directory keeps a bounded number of files.
import XCTest

@testable import TQUICDaemon

final class QlogFilesTests: XCTestCase {
    var dir = ""
    override func setUp() {
        dir = NSTemporaryDirectory() + "tquic-qlog-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func testRotationKeepsTheHeaderAndTheBound() throws {
        let files = try QlogFiles(directory: dir, maxBytes: 4096, log: Log(level: .critical))
        do {
            // The sink goes with its connection, and closes (flushes) its file then.
            let sink = try XCTUnwrap(files.makeSink(role: "router", connectionID: "c1", now: Timestamp(nanoseconds: 0)))
            for i in 0..<200 { sink.record(time: Timestamp(nanoseconds: UInt64(i) * 1000), name: "quic:packet_sent", data: "{\"n\":\(i)}") }
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        XCTAssertEqual(names.count, 2, "\(names)")
        XCTAssertTrue(names.contains { $0.hasSuffix(".sqlog") } && names.contains { $0.hasSuffix(".sqlog.1") })
        for n in names {
            let text = try String(contentsOfFile: dir + "/" + n, encoding: .utf8)
            XCTAssertLessThanOrEqual(text.utf8.count, 4096)
            XCTAssertTrue(text.hasPrefix("\u{1e}{\"qlog_version\""), "\(n) starts with the header")
            // Every record is one JSON text (RFC 7464: RS, JSON, LF).
            for record in text.split(separator: "\u{1e}") {
                XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(record.utf8)), String(record))
            }
        }
    }

    func testTheDirectoryKeepsTheNewestFiles() throws {
        let files = try QlogFiles(directory: dir, maxBytes: 1 << 20, log: Log(level: .critical))
        var sinks: [QlogSink] = []
        for i in 0..<(DaemonConfiguration.qlogFilesKept + 5) {
            sinks.append(try XCTUnwrap(files.makeSink(role: "vps", connectionID: "c\(i)", now: Timestamp(nanoseconds: 0))))
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).count, DaemonConfiguration.qlogFilesKept)
    }
}
