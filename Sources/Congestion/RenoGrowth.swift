// The window growth the loss-based controllers share (RFC 9002 §7.3): collecting one ACK frame's
// packets, judging whether the sender was application-limited (§7.8), and — for the Reno-style
// controllers (NewReno, Westwood+) — slow start with HyStart++ (RFC 9406) and the congestion-
// avoidance increase, plain or coupled (RFC 6356 and successors). CUBIC has its own curve.

/// One ACK frame's newly acknowledged packets, collected in `onPacketAcked` and taken in
/// `onAckProcessed`.
struct AckedBytesCollector {
    /// Bytes sent after the recovery start: the ones that may grow the window (§7.3.2).
    private var growthBytes = 0
    /// Send time of the newest packet acknowledged (HyStart++'s round marker).
    private var newestSent: Timestamp?

    mutating func add(_ packet: AckedPacketInfo, recoveryStart: Timestamp?) {
        if newestSent.map({ packet.timeSent > $0 }) ?? true { newestSent = packet.timeSent }
        // RFC 9002 §7.3.2: no increase for packets sent during recovery.
        if let start = recoveryStart, packet.timeSent <= start { return }
        growthBytes += packet.sentBytes
    }

    mutating func take() -> (growthBytes: Int, newestSent: Timestamp?) {
        defer {
            growthBytes = 0
            newestSent = nil
        }
        return (growthBytes, newestSent)
    }
}

/// RFC 9002 §7.8: the window must not grow while the sender does not use it. Judged once per
/// ACK from the bytes in flight when it arrived (in flight after the ACK plus what it
/// acknowledged, so the later packets of a multi-packet ACK are not mistaken for idleness):
/// - congestion avoidance: app-limited when in flight + 3 MSS < cwnd (3 MSS of slack for
///   datagram rounding and pacing);
/// - slow start: when in flight < cwnd / 2, because a paced sender trails a window that
///   doubles each round (§7.8: pacing delay alone is not app-limitation).
func isApplicationLimited(priorBytesInFlight: Int, congestionWindow: Double, maxDatagramSize: Int, inSlowStart: Bool) -> Bool {
    let inFlight = Double(priorBytesInFlight)
    return inSlowStart ? 2 * inFlight < congestionWindow : inFlight + 3 * Double(maxDatagramSize) < congestionWindow
}

/// Reno's growth of an integer window: slow start (a quarter of it in HyStart++'s CSS), then one
/// datagram per window of acknowledged bytes, or the coupled increase when the path is coupled.
struct RenoWindowGrowth {
    var hystart = HyStart()
    /// Slow-start bytes not yet added while CSS divides growth (whole bytes only are added).
    private var slowStartRemainder = 0
    /// Bytes acknowledged in congestion avoidance since the window last grew.
    private var bytesAckedInCA = 0
    private var coupledRemainder = 0.0

    /// Grows `window` for `acked` bytes of one ACK frame (none when application-limited).
    mutating func grow(
        _ window: inout Int, inSlowStart: Bool, acked: Int, appLimited: Bool, maxDatagramSize: Int,
        smoothedRTT: Duration, coupling: CouplingMember?
    ) {
        guard acked > 0 && !appLimited else { return }
        if inSlowStart {
            // RFC 9406 §4.2: CSS grows by a quarter of slow start.
            slowStartRemainder += acked
            window += slowStartRemainder / hystart.growthDivisor
            slowStartRemainder %= hystart.growthDivisor
        } else if let coupling {
            // Coupled increase (RFC 6356 §3 and its successors), accumulated to whole bytes.
            coupling.update(congestionWindow: window, smoothedRTT: smoothedRTT)
            coupledRemainder += coupling.congestionAvoidanceIncrease(ackedBytes: acked, maxDatagramSize: maxDatagramSize)
            let whole = Int(coupledRemainder)
            window += whole
            coupledRemainder -= Double(whole)
        } else {
            // RFC 9002 §7.3.3: one maximum datagram per window of acknowledged bytes.
            bytesAckedInCA += acked
            while bytesAckedInCA >= window {
                bytesAckedInCA -= window
                window += maxDatagramSize
            }
        }
    }

    /// A reduction: the avoidance count starts over, and HyStart++ is over for good.
    mutating func onReduction() {
        bytesAckedInCA = 0
        hystart.finish()
    }
}
