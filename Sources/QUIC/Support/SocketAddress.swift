// An IP address and UDP port as plain data. The sans-I/O core compares and stores addresses
// (path validation, migration, tokens) but never opens a socket; the platform layer converts.
// The address bytes are held inline (two words), so making one for every received datagram and
// comparing it with a path's allocates nothing.

public struct SocketAddress: Hashable, Sendable, CustomStringConvertible {
    /// Address bytes 0–7 and 8–15 in network order, big-endian packed; an IPv4 address fills the
    /// top four bytes of `high` and leaves `low` zero.
    private var high: UInt64
    private var low: UInt64
    public let isIPv6: Bool
    public var port: UInt16

    public init(ip: [UInt8], port: UInt16) {
        precondition(ip.count == 4 || ip.count == 16, "IP address must be 4 or 16 bytes")
        self = ip.withUnsafeBytes { SocketAddress(ipBytes: $0, port: port) }
    }

    /// From 4 (IPv4) or 16 (IPv6) address bytes in network order, e.g. straight from a sockaddr.
    public init(ipBytes: UnsafeRawBufferPointer, port: UInt16) {
        precondition(ipBytes.count == 4 || ipBytes.count == 16, "IP address must be 4 or 16 bytes")
        var h: UInt64 = 0
        var l: UInt64 = 0
        for i in 0..<ipBytes.count {
            if i < 8 { h |= UInt64(ipBytes[i]) << UInt64(56 - 8 * i) } else { l |= UInt64(ipBytes[i]) << UInt64(56 - 8 * (i - 8)) }
        }
        high = h
        low = l
        isIPv6 = ipBytes.count == 16
        self.port = port
    }

    /// Byte `i` of the address (network order), i < 4 for IPv4 and < 16 for IPv6.
    public func ipByte(_ i: Int) -> UInt8 {
        precondition(i >= 0 && i < (isIPv6 ? 16 : 4), "address byte index out of range")
        return i < 8 ? UInt8(truncatingIfNeeded: high >> UInt64(56 - 8 * i)) : UInt8(truncatingIfNeeded: low >> UInt64(56 - 8 * (i - 8)))
    }

    /// 4 bytes (IPv4) or 16 bytes (IPv6), network order (a new array: not for per-packet use).
    public var ip: [UInt8] { (0..<(isIPv6 ? 16 : 4)).map(ipByte) }

    /// Parses "1.2.3.4:443", "[::1]:443" or "::1" style text (port required unless `defaultPort`).
    public init?(_ text: String, defaultPort: UInt16? = nil) {
        var host = Substring(text)
        var port = defaultPort
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            let rest = host[host.index(after: close)...]
            host = host[host.index(after: host.startIndex)..<close]
            if rest.hasPrefix(":") { port = UInt16(rest.dropFirst()) } else if !rest.isEmpty { return nil }
        } else if host.filter({ $0 == ":" }).count == 1, let colon = host.lastIndex(of: ":") {
            port = UInt16(host[host.index(after: colon)...])
            host = host[..<colon]
        }
        guard let p = port, let ip = SocketAddress.parseIP(String(host)) else { return nil }
        self.init(ip: ip, port: p)
    }

    public static func parseIP(_ s: String) -> [UInt8]? {
        if s == "localhost" { return [127, 0, 0, 1] }
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count == 4 {
            var out: [UInt8] = []
            for p in parts {
                guard let v = UInt8(p) else { return nil }
                out.append(v)
            }
            return out
        }
        // IPv6 with optional "::" compression (no embedded IPv4).
        guard s.contains(":") else { return nil }
        var halves: [String] = []
        let chars = Array(s)
        if let i = (0..<max(0, chars.count - 1)).first(where: { chars[$0] == ":" && chars[$0 + 1] == ":" }) {
            halves = [String(chars[..<i]), String(chars[(i + 2)...])]
            if halves[1].contains("::") { return nil }
        } else {
            halves = [s]
        }
        guard halves.count <= 2 else { return nil }
        func groups(_ t: String) -> [UInt16]? {
            if t.isEmpty { return [] }
            var g: [UInt16] = []
            for p in t.split(separator: ":", omittingEmptySubsequences: false) {
                guard let v = UInt16(p, radix: 16) else { return nil }
                g.append(v)
            }
            return g
        }
        guard let head = groups(halves[0]) else { return nil }
        var all = head
        if halves.count == 2 {
            guard let tail = groups(halves[1]), head.count + tail.count <= 7 else { return nil }
            all += [UInt16](repeating: 0, count: 8 - head.count - tail.count) + tail
        }
        guard all.count == 8 else { return nil }
        return all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] }
    }

    public var ipString: String {
        let ip = self.ip
        if ip.count == 4 { return ip.map(String.init).joined(separator: ".") }
        var groups: [String] = []
        for i in stride(from: 0, to: 16, by: 2) { groups.append(String(UInt16(ip[i]) << 8 | UInt16(ip[i + 1]), radix: 16)) }
        // Compress the longest run of zeros.
        var best = (start: -1, len: 0)
        var cur = (start: -1, len: 0)
        for (i, g) in groups.enumerated() {
            if g == "0" {
                cur = cur.start < 0 ? (i, 1) : (cur.start, cur.len + 1)
                if cur.len > best.len { best = cur }
            } else {
                cur = (-1, 0)
            }
        }
        if best.len >= 2 {
            let head = groups[0..<best.start].joined(separator: ":")
            let tail = groups[(best.start + best.len)...].joined(separator: ":")
            return head + "::" + tail
        }
        return groups.joined(separator: ":")
    }

    public var description: String { isIPv6 ? "[\(ipString)]:\(port)" : "\(ipString):\(port)" }
}
