// What a role (router or VPS) gives the daemon's loop (Daemon.swift): its descriptors in the
// epoll set, what to do when one is readable, one round of work after the input and at its
// timers, its status text, a reload and a shutdown. The loop itself, signals, the control socket
// and systemd notification are the same for both roles.
import Congestion
import LinuxNet

protocol DataPlane: AnyObject {
    /// Adds the role's descriptors to `loop`, with tokens at or above `DaemonToken.firstRole`.
    func register(in loop: EpollLoop) throws
    /// Descriptor `token` is readable (or hung up).
    func readable(token: Int, now: Timestamp)
    /// After every wake-up: timers, engines, sending, re-arming the TUN's interest.
    func run(now: Timestamp)
    /// When `run` must come again without input.
    var nextTimeout: Timestamp? { get }
    /// `tquicctl status`.
    func status(now: Timestamp) -> String
    /// SIGHUP with a configuration that passed the checks: apply what may change live.
    func reload(_ configuration: DaemonConfiguration, now: Timestamp) throws
    /// SIGTERM: CONNECTION_CLOSE to the peer(s); `run` then sends it.
    func shutdown(now: Timestamp)
    /// One line for systemd's STATUS= (`systemctl status`).
    func summary(now: Timestamp) -> String
    /// A control request other than `status` and `ping` (ControlCommand.swift): the answer text.
    func control(_ command: ControlCommand, now: Timestamp) -> String
    /// The figures of `tquicctl status --json`, for /metrics and the dashboard (Observe/).
    var observation: Observation { get }
}

/// A role's status figures, as the status JSON holds them.
enum Observation: Sendable {
    case router(RouterStatusJSON)
    case vps(VPSStatusJSON)

    /// The status JSON, stamped with the seconds since the daemon started.
    func json(sampledAt seconds: Double) -> String {
        switch self {
        case .router(var r):
            r.sampledAtSeconds = seconds
            return JSONText.encode(r)
        case .vps(var v):
            v.sampledAtSeconds = seconds
            return JSONText.encode(v)
        }
    }
}

/// Tokens of the loop's descriptors.
enum DaemonToken {
    static let signals = 1
    static let control = 2
    static let firstRole = 16
}

extension Congestion.Duration {
    /// From the standard library's Duration (what LinuxNet's systemd and socket APIs use).
    init(_ d: Swift.Duration) {
        let (s, a) = d.components
        self.init(nanoseconds: UInt64(max(0, s)) * 1_000_000_000 + UInt64(max(0, a) / 1_000_000_000))
    }
}

/// `x` with `digits` decimals, without Foundation's String(format:).
func fixed(_ x: Double, _ digits: Int) -> String {
    guard x.isFinite else { return "\(x)" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let r = (abs(x) * scale).rounded()
    let whole = Int(r / scale)
    let frac = Int(r.truncatingRemainder(dividingBy: scale))
    var f = String(frac)
    while f.count < digits { f = "0" + f }
    return (x < 0 && r != 0 ? "-" : "") + (digits > 0 ? "\(whole).\(f)" : "\(whole)")
}
