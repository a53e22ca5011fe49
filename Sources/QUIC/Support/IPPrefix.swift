// An IP prefix ("10.8.0.0/24", "fd00:8::/64") as plain data, beside SocketAddress: the tenant
// table (whose inner sources a tenant may use), the config file (tunnel addresses, allowed
// prefixes) and rtnetlink (addresses and routes) all name prefixes this way. Like SocketAddress
// it holds the bytes inline, so matching an inner packet's address allocates nothing.

public struct IPPrefix: Hashable, Sendable, CustomStringConvertible {
    /// The address with its host bits kept as given (an interface address "10.8.0.1/24" keeps
    /// .1; `network` clears them). Port 0.
    public let address: SocketAddress
    public let length: Int

    public var isIPv6: Bool { address.isIPv6 }
    public var maxLength: Int { isIPv6 ? 128 : 32 }

    public init?(address: SocketAddress, length: Int) {
        guard length >= 0, length <= (address.isIPv6 ? 128 : 32) else { return nil }
        self.address = SocketAddress(ip: address.ip, port: 0)
        self.length = length
    }

    /// Parses "A/N", or a bare address as a host prefix (/32, /128).
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2, let ip = SocketAddress.parseIP(String(parts[0])) else { return nil }
        let max = ip.count == 16 ? 128 : 32
        var length = max
        if parts.count == 2 {
            // Digits only: "+24" or " 24" are typos, not prefixes.
            guard !parts[1].isEmpty, parts[1].allSatisfy(\.isASCII), parts[1].allSatisfy(\.isNumber),
                let n = Int(parts[1]), n <= max
            else { return nil }
            length = n
        }
        self.init(address: SocketAddress(ip: ip, port: 0), length: length)
    }

    /// The prefix with its host bits cleared.
    public var network: IPPrefix {
        var bytes = address.ip
        for i in bytes.indices {
            let bitsBefore = i * 8
            if bitsBefore >= length {
                bytes[i] = 0
            } else if bitsBefore + 8 > length {
                bytes[i] &= UInt8(0xff) << UInt8(8 - (length - bitsBefore))
            }
        }
        return IPPrefix(address: SocketAddress(ip: bytes, port: 0), length: length)!
    }

    /// Whether `ip` (4 or 16 bytes, network order) lies in the prefix; false across families.
    public func contains(ipBytes ip: UnsafeRawBufferPointer) -> Bool {
        guard ip.count == (isIPv6 ? 16 : 4) else { return false }
        var remaining = length
        var i = 0
        while remaining >= 8 {
            if ip[i] != address.ipByte(i) { return false }
            remaining -= 8
            i += 1
        }
        if remaining > 0 {
            let mask = UInt8(0xff) << UInt8(8 - remaining)
            if ip[i] & mask != address.ipByte(i) & mask { return false }
        }
        return true
    }

    public func contains(_ a: SocketAddress) -> Bool {
        a.ip.withUnsafeBytes { contains(ipBytes: $0) }
    }

    /// Whether the two prefixes share any address (one contains the other's network).
    public func overlaps(_ other: IPPrefix) -> Bool {
        guard isIPv6 == other.isIPv6 else { return false }
        return length <= other.length ? contains(other.address) : other.contains(address)
    }

    public var description: String { "\(address.ipString)/\(length)" }
}
