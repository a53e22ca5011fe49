// RFC 9002 §5: RTT estimation from ACK frames, per path.
import Congestion

public struct RTTEstimator: Sendable {
    /// RFC 9002 §6.2.2: kInitialRtt = 333 ms.
    public static let initialRTT = Duration.milliseconds(333)
    /// RFC 9002 §6.1.2: kGranularity = 1 ms.
    public static let granularity = Duration.milliseconds(1)

    public private(set) var latest = Duration.zero
    public private(set) var smoothed = RTTEstimator.initialRTT
    public private(set) var variation = RTTEstimator.initialRTT / 2
    public private(set) var minimum = Duration.zero
    public private(set) var hasSample = false

    public init() {}

    /// RFC 9002 §5.3. `ackDelay` is already limited to max_ack_delay once the handshake is confirmed.
    public mutating func update(latest sample: Duration, ackDelay: Duration, handshakeConfirmed: Bool) {
        latest = sample
        guard hasSample else {
            // RFC 9002 §5.2/§5.3: first sample.
            hasSample = true
            minimum = sample
            smoothed = sample
            variation = sample / 2
            return
        }
        minimum = min(minimum, sample)
        var adjusted = sample
        // RFC 9002 §5.3: subtract ack delay only if it leaves at least min_rtt.
        if sample >= minimum + ackDelay { adjusted = sample - ackDelay }
        _ = handshakeConfirmed
        let diff = smoothed > adjusted ? smoothed - adjusted : adjusted - smoothed
        variation = Duration(nanoseconds: (3 * variation.nanoseconds + diff.nanoseconds) / 4)
        smoothed = Duration(nanoseconds: (7 * smoothed.nanoseconds + adjusted.nanoseconds) / 8)
    }

    /// RFC 9002 §6.2.1: PTO = smoothed_rtt + max(4*rttvar, kGranularity) + max_ack_delay.
    public func probeTimeout(maxAckDelay: Duration) -> Duration {
        smoothed + max(variation * 4, RTTEstimator.granularity) + maxAckDelay
    }

    /// RFC 9002 §6.1.2: loss delay = 9/8 * max(smoothed_rtt, latest_rtt), at least kGranularity.
    public var lossDelay: Duration {
        max(Duration(nanoseconds: max(smoothed, latest).nanoseconds * 9 / 8), RTTEstimator.granularity)
    }

    public var sample: RTTSample {
        RTTSample(latest: latest, smoothed: smoothed, minimum: minimum, variation: variation)
    }
}
