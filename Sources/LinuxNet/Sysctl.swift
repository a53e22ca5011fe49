// Kernel parameters under /proc/sys: the VPS turns on forwarding (net/ipv4/ip_forward,
// net/ipv6/conf/all/forwarding) before it masquerades tenants' traffic. Keys under net/ belong to
// the network namespace of the calling thread.
import Glibc

public enum Sysctl {
    /// Writes `value` to /proc/sys/`key` ("net/ipv4/ip_forward", "1").
    /// - Throws: `SystemError` (EACCES without root, ENOENT for an unknown key, EINVAL for a value
    ///   the kernel refuses).
    public static func set(_ key: String, _ value: String) throws {
        let path = try self.path(key)
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open \(path)") }
        defer { close(fd) }
        let text = Array((value + "\n").utf8)
        // A /proc/sys file takes the value in one write.
        let n = text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard n == text.count else { throw SystemError("write \(path) = \(value)", errno: n < 0 ? errno : EIO) }
    }

    /// Reads /proc/sys/`key`, without the trailing newline.
    /// - Throws: `SystemError` (ENOENT for an unknown key).
    public static func get(_ key: String) throws -> String {
        let path = try self.path(key)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open \(path)") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError("read \(path)")
            }
            if n == 0 { break }
            bytes += chunk[0..<n]
        }
        while bytes.last == UInt8(ascii: "\n") { bytes.removeLast() }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// "net/ipv4/ip_forward" or "net.ipv4.ip_forward" → "/proc/sys/net/ipv4/ip_forward". The
    /// dotted form only when the key has no "/", since interface names may hold dots
    /// ("net/ipv6/conf/eth0.100/forwarding").
    static func path(_ key: String) throws -> String {
        let slashed = key.contains("/") ? key : key.replacingDots()
        let components = slashed.split(separator: "/", omittingEmptySubsequences: false)
        guard !components.isEmpty, components.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else {
            throw SystemError("sysctl key \"\(key)\"", errno: EINVAL)
        }
        return "/proc/sys/" + slashed
    }
}

extension String {
    fileprivate func replacingDots() -> String { String(map { $0 == "." ? "/" : $0 }) }
}
