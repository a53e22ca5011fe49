// Which routers (tenants) the VPS serves and which inner addresses belong to each, like
// WireGuard's allowed IPs: a tenant is known by the pin of its key (TunnelKey.swift); a packet it
// sends must come from one of its prefixes; a packet read from the VPS's TUN goes to the tenant
// whose prefix holds its destination (longest match), so no tenant receives another's traffic.
// The config layer has already refused overlapping prefixes across tenants.
import QUIC

public struct Tenant: Sendable, Equatable {
    public var name: String
    /// SHA-256 of the tenant key's SubjectPublicKeyInfo (`TunnelKey.pin(publicKey:)`).
    public var pin: [UInt8]
    public var allowed: [IPPrefix]

    public init(name: String, pin: [UInt8], allowed: [IPPrefix]) {
        self.name = name
        self.pin = pin
        self.allowed = allowed
    }
}

public struct TenantTable: Sendable, Equatable {
    public private(set) var tenants: [Tenant]

    public init(_ tenants: [Tenant]) { self.tenants = tenants }

    public func index(forPin pin: [UInt8]) -> Int? { tenants.firstIndex { $0.pin == pin } }

    /// The tenant whose prefix holds `address` (4 or 16 bytes), the longest prefix winning. A
    /// linear scan: a VPS serves tens to hundreds of tenants, each with a few prefixes.
    public func index(forDestination address: UnsafeRawBufferPointer) -> Int? {
        var best: Int?
        var bestLength = -1
        for (i, t) in tenants.enumerated() {
            for p in t.allowed where p.length > bestLength && p.contains(ipBytes: address) {
                best = i
                bestLength = p.length
            }
        }
        return best
    }

    /// Whether tenant `i` may use `address` as an inner source.
    public func allows(_ i: Int, source address: UnsafeRawBufferPointer) -> Bool {
        guard i < tenants.count else { return false }
        return tenants[i].allowed.contains { $0.contains(ipBytes: address) }
    }
}
