// `qlog-dir =`: one qlog file per connection (JSON-SEQ, draft-ietf-quic-qlog main schema with the
// multipath path_id fields the core writes), loadable by qvis. Bounded: a file that reaches
// `qlog-max-mb` is rotated (renamed NAME.1, replacing an older NAME.1; the new file starts with
// the qlog header again so each stays loadable), and the directory keeps the newest
// `DaemonConfiguration.qlogFilesKept` files. Writes are buffered by stdio: qlog is for debugging,
// and costs a formatted line per packet.
import Congestion
import Glibc
import QUIC

final class QlogFiles {
    let directory: String
    let maxBytes: Int
    let log: Log

    init(directory: String, maxBytes: Int, log: Log) throws {
        self.directory = directory
        self.maxBytes = maxBytes
        self.log = log
        if mkdir(directory, 0o750) != 0 && errno != EEXIST {
            throw SystemErrorText("mkdir \(directory): \(String(cString: strerror(errno)))")
        }
    }

    /// A sink for a new connection, its file named after the role, time and connection ID.
    func makeSink(role: String, connectionID: String, now: Timestamp) -> QlogSink? {
        pruneOldFiles()
        var t = time(nil)
        var tm = tm()
        gmtime_r(&t, &tm)
        let stamp =
            String(Int(tm.tm_year) + 1900) + two(Int(tm.tm_mon) + 1) + two(Int(tm.tm_mday)) + "T" + two(Int(tm.tm_hour))
            + two(Int(tm.tm_min)) + two(Int(tm.tm_sec))
        let path = "\(directory)/\(role)-\(stamp)-\(connectionID).sqlog"
        guard let file = RotatingFile(path: path, maxBytes: maxBytes) else {
            log.warning("qlog: cannot write \(path): \(String(cString: strerror(errno)))")
            return nil
        }
        return QlogWriter(
            title: "tquicd \(role)", vantagePoint: role == "router" ? "client" : "server",
            originalDestinationConnectionID: connectionID, start: now
        ) { file.write($0) }
    }

    private func pruneOldFiles() {
        guard let dir = opendir(directory) else { return }
        var files: [(name: String, mtime: Int)] = []
        while let e = readdir(dir) {
            let name = withUnsafePointer(to: e.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            guard name.hasSuffix(".sqlog") || name.hasSuffix(".sqlog.1") else { continue }
            var st = stat()
            if stat("\(directory)/\(name)", &st) == 0 { files.append((name, Int(st.st_mtim.tv_sec))) }
        }
        closedir(dir)
        let keep = DaemonConfiguration.qlogFilesKept - 1  // room for the new one
        guard files.count > keep else { return }
        for f in files.sorted(by: { $0.mtime < $1.mtime }).prefix(files.count - keep) { unlink("\(directory)/\(f.name)") }
    }

    private func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
}

/// A file that is renamed to PATH.1 and started again (with its first line, the qlog header) once
/// it holds `maxBytes`.
final class RotatingFile {
    let path: String
    let maxBytes: Int
    private var file: UnsafeMutablePointer<FILE>
    private var written = 0
    private var header: String?

    init?(path: String, maxBytes: Int) {
        guard let f = fopen(path, "w") else { return nil }
        self.path = path
        self.maxBytes = maxBytes
        file = f
    }

    deinit { fclose(file) }

    func write(_ line: String) {
        if header == nil { header = line }
        if written + line.utf8.count > maxBytes, let header {
            fclose(file)
            rename(path, path + ".1")
            guard let f = fopen(path, "w") else {
                file = fopen("/dev/null", "w")!
                return
            }
            file = f
            written = 0
            fputs(header, file)
            written += header.utf8.count
        }
        fputs(line, file)
        written += line.utf8.count
    }
}

struct SystemErrorText: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
