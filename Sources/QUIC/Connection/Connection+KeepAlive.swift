// Keep-alives (RFC 9000 §10.1.2), per path: a path on which nothing ack-eliciting left for
// `keepAliveInterval` sends a PING, so the NAT binding of each WAN link stays open (traffic on
// one path keeps no other path's binding alive) and the peer's answers keep the idle timeout
// from expiring while the peer lives. `poll` adds the PING; `nextTimeout` wakes the owner for it.
import Congestion

extension Connection {
    /// The interval in use: the configured one, at most half the negotiated idle timeout, so
    /// that one lost PING does not let the connection time out.
    var keepAliveInterval: Duration? {
        guard let interval = config.keepAliveInterval, interval.nanoseconds > 0 else { return nil }
        guard let idle = negotiatedIdleTimeout else { return interval }
        return min(interval, idle / 2)
    }

    /// When `p` owes a keep-alive PING, or nil (keep-alives off, the path not active and
    /// validated, or the handshake not done: its own packets keep the path busy until then).
    /// `poll` can always send the PING once this is due, so the deadline never spins the owner.
    func keepAliveDeadline(_ p: Path) -> Timestamp? {
        guard let interval = keepAliveInterval, state == .established, handshakeComplete, p.state == .active,
            p.addressValidated, let last = p.lastAckElicitingSent
        else { return nil }
        return last + interval
    }

    func keepAliveDue(_ p: Path, now: Timestamp) -> Bool {
        guard let d = keepAliveDeadline(p) else { return false }
        return now >= d
    }
}
