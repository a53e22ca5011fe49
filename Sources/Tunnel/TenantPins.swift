// The set of tenant key pins the VPS's TLS layer accepts, shared between the handshake callback
// (inside BoringSSL, on the data-plane thread) and a reload (which replaces the set): a lock
// rather than a copy in each TLS context, so a reload applies to the next handshake.
import Synchronization

public final class TenantPins: Sendable {
    private let pins: Mutex<Set<[UInt8]>>

    public init(_ table: TenantTable) { pins = Mutex(Set(table.tenants.map(\.pin))) }

    public func replace(with table: TenantTable) {
        let new = Set(table.tenants.map(\.pin))
        pins.withLock { $0 = new }
    }

    public func contains(_ pin: [UInt8]) -> Bool { pins.withLock { $0.contains(pin) } }
}
