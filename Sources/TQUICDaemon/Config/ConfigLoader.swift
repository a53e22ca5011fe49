// Reading /etc/tquic.conf and the tenant directory from disk (the parsing is pure, in
// DaemonConfiguration.swift). Errors still name the file: a missing or unreadable file is a
// ConfigError with line 0.
import Glibc

public enum ConfigLoader {
    public static let defaultPath = "/etc/tquic.conf"
    /// Larger than any real configuration; a bigger file is a mistake (a log, a binary).
    static let maxFileBytes = 4 << 20

    /// The configuration in `path`, with the tenants of its tenant-dir (files ending in `.conf`,
    /// in name order so errors are repeatable).
    public static func load(_ path: String) throws -> DaemonConfiguration {
        var c = try DaemonConfiguration.parse(readText(path), file: path)
        if let dir = c.vps?.tenantDirectory {
            for name in try directoryEntries(dir) where name.hasSuffix(".conf") && !name.hasPrefix(".") {
                let file = dir.hasSuffix("/") ? dir + name : dir + "/" + name
                try c.addingTenants(fromText: readText(file), file: file)
            }
        }
        return c
    }

    static func readText(_ path: String) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ConfigError(file: path, line: 0, "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &chunk, chunk.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw ConfigError(file: path, line: 0, "cannot read: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            bytes += chunk[0..<n]
            guard bytes.count <= maxFileBytes else {
                throw ConfigError(file: path, line: 0, "larger than \(maxFileBytes >> 20) MiB: not a configuration file")
            }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            // Name the line holding the first invalid byte.
            var line = 1
            for l in bytes.split(separator: 10, omittingEmptySubsequences: false) {
                if String(validating: l, as: UTF8.self) == nil { break }
                line += 1
            }
            throw ConfigError(file: path, line: line, "not UTF-8 text")
        }
        return text
    }

    static func directoryEntries(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else {
            throw ConfigError(file: path, line: 0, "cannot read tenant-dir: \(String(cString: strerror(errno)))")
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let e = readdir(dir) {
            let name = withUnsafePointer(to: e.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }
}
