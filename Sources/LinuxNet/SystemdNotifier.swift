import CSystemd
// tquicd's side of systemd's readiness protocol (sd_notify(3), Type=notify and notify-reload
// units): ready once the tunnel is up, status lines for `systemctl status`, watchdog keep-alives,
// stopping and reloading. Every call is a no-op when NOTIFY_SOCKET is unset (not under systemd,
// or a unit without notify access), so the daemon calls them unconditionally.
import Glibc

public struct SystemdNotifier: Sendable {
    public init() {}

    /// Whether systemd listens (NOTIFY_SOCKET is set).
    public var isEnabled: Bool { getenv("NOTIFY_SOCKET") != nil }

    /// READY=1: start-up (or a reload) is complete.
    public func ready() throws { try send("READY=1") }

    /// STATUS=…: one line shown by `systemctl status` (newlines become spaces, so a status
    /// cannot add assignments of its own).
    public func status(_ text: String) throws {
        try send("STATUS=" + String(text.map { $0.isNewline ? " " : $0 }))
    }

    /// WATCHDOG=1: the keep-alive a unit with WatchdogSec= must send within `watchdogInterval`
    /// (sd_watchdog_enabled(3) advises every half of it).
    public func watchdog() throws { try send("WATCHDOG=1") }

    /// STOPPING=1: shutdown has begun.
    public func stopping() throws { try send("STOPPING=1") }

    /// RELOADING=1 with MONOTONIC_USEC (CLOCK_MONOTONIC in µs), which Type=notify-reload units
    /// require from systemd 253 on; older systemd (Debian 12 has 252, without notify-reload)
    /// ignores the extra field for Type=notify. Send `ready()` when the reload is done.
    public func reloading() throws {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let microseconds = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
        try send("RELOADING=1\nMONOTONIC_USEC=\(microseconds)")
    }

    /// The unit's watchdog timeout (WATCHDOG_USEC, when WATCHDOG_PID is this process), or nil
    /// when no watchdog is asked for.
    public var watchdogInterval: Duration? {
        var microseconds: UInt64 = 0
        guard sd_watchdog_enabled(0, &microseconds) > 0, microseconds > 0 else { return nil }
        return .microseconds(Int64(clamping: microseconds))
    }

    /// sd_notify(3) with a string built here (its variadic sd_notifyf does not import into Swift).
    /// - Throws: `SystemError` when NOTIFY_SOCKET is set but the message cannot be sent.
    func send(_ state: String) throws {
        guard isEnabled else { return }
        let rc = sd_notify(0, state)
        if rc < 0 { throw SystemError("sd_notify \(state.prefix { $0 != "=" })", errno: -rc) }
    }
}
