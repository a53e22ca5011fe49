// libFuzzer harness for the /etc/tquic.conf parser (TQUICDaemon/Config): any bytes as a file's
// text, as a mistaken edit or a wrong file given to --config could make them. Built by
// scripts/fuzz.sh with the pure config sources and SocketAddress/IPPrefix (one module).
//
// Checks: never traps (ASan, Swift's checks); every rejection is a ConfigError whose line lies in
// the file (0 = the file as a whole); an accepted configuration is consistent with what parsing
// promises (a router has WANs and no tenants, tenant prefixes do not overlap).

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false).count
    do {
        let c = try DaemonConfiguration.parse(text, file: "fuzz.conf")
        switch c.role {
        case .router:
            guard let r = c.router, !r.wans.isEmpty, c.vps == nil, r.wans.contains(where: { !$0.isBackup }) else {
                fatalError("router without WANs")
            }
        case .vps:
            guard let v = c.vps, c.router == nil else { fatalError("vps without [vps]") }
            for (i, a) in v.tenants.enumerated() {
                for b in v.tenants[(i + 1)...] where a.allowed.contains(where: { p in b.allowed.contains { $0.overlaps(p) } }) {
                    fatalError("tenants \(a.name) and \(b.name) overlap")
                }
            }
        }
        guard c.privateKey.count == 32, !c.tunnel.addresses.isEmpty else { fatalError("missing key or address") }
        // Tenant files go through the same checks.
        var copy = c
        do { try copy.addingTenants(fromText: text, file: "tenant.conf") } catch let e as ConfigError {
            guard e.line >= 0, e.line <= lines, e.file == "tenant.conf" else { fatalError("bad error \(e)") }
        }
    } catch let e as ConfigError {
        guard e.line >= 0, e.line <= lines, e.file == "fuzz.conf", !e.message.isEmpty else { fatalError("bad error \(e)") }
    } catch {
        fatalError("not a ConfigError: \(error)")
    }
    return 0
}
