// The one nftables table tquicd owns (family inet, "tquic" or "tquic_<instance>"), installed and
// removed through libnftables (never by running `nft`). Each call is one nft transaction that
// touches this table only; NFTablesRuleset.swift renders what goes in it.
import CNftables

public final class NFTablesTable: Sendable {
    public let name: String

    /// - Throws: `NFTablesError` when `name` is not a valid table name (NFTablesRuleset).
    public init(name: String) throws {
        try NFTablesRuleset.validateTableName(name)
        self.name = name
    }

    /// Replaces the table atomically: a stale table of this name (left by a crash or an earlier
    /// run) is deleted and the new one created in the same transaction, so there is no moment
    /// without the rules, and a failure leaves the old table as it was.
    /// - Throws: `NFTablesError` with libnftables' error text.
    public func install(_ ruleset: NFTablesRuleset) throws {
        try NFTablesTable.run(ruleset.script(table: name), operation: "install table inet \(name)")
    }

    /// Deletes the table if it exists (no error when it does not); no other table is touched.
    /// - Throws: `NFTablesError` with libnftables' error text.
    public func remove() throws {
        try NFTablesTable.run(NFTablesRuleset.removalScript(table: name), operation: "remove table inet \(name)")
    }

    /// Runs `script` in a fresh libnftables context. The context's netlink socket opens in the
    /// calling thread's network namespace (setns(2) is per thread), so tests run this on a
    /// thread that entered their namespace.
    static func run(_ script: String, operation: String) throws {
        guard let context = nft_ctx_new(UInt32(NFT_CTX_DEFAULT)) else {
            throw NFTablesError(operation, "nft_ctx_new failed")
        }
        defer { nft_ctx_free(context) }
        // Into buffers rather than tquicd's stdout/stderr: the error text goes into the error.
        _ = nft_ctx_buffer_output(context)
        _ = nft_ctx_buffer_error(context)
        guard nft_run_cmd_from_buffer(context, script) != 0 else { return }
        var message = nft_ctx_get_error_buffer(context).map { String(cString: $0) } ?? ""
        while message.last?.isWhitespace == true { message.removeLast() }
        throw NFTablesError(operation, message.isEmpty ? "failed (no error text)" : message)
    }
}
