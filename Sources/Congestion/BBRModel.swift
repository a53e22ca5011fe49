// Building blocks of BBR's path model (draft-ietf-ccwg-bbr-03 §5.5): the windowed max filter that
// holds BBR.max_bw and BBR.extra_acked, and the per-ACK signals ("RS") the model is updated from.
// BBR.swift runs the state machine on top of these.

/// A running maximum over a sliding window of virtual time (ProbeBW cycles for max_bw, round trips
/// for extra_acked), in O(1) space: it keeps the best sample and the best of the two later
/// sub-windows, so that when the best ages out its successor is already known (the windowed
/// min/max filter of Kathleen Nichols that BBR has always used).
public struct BBRWindowedMaxFilter: Sendable {
    private struct Sample: Sendable {
        var value: Double
        var time: UInt64
    }
    // best.value >= second.value >= third.value, best.time <= second.time <= third.time.
    private var best = Sample(value: 0, time: 0)
    private var second = Sample(value: 0, time: 0)
    private var third = Sample(value: 0, time: 0)
    private var isEmpty = true

    public init() {}

    /// The maximum of the samples still inside the window as of the last update.
    public var value: Double { isEmpty ? 0 : best.value }

    /// Forgets everything and starts over from one sample.
    public mutating func reset(value: Double, time: UInt64) {
        let s = Sample(value: value, time: time)
        best = s
        second = s
        third = s
        isEmpty = false
    }

    /// Adds a sample taken at `time`; a sample stays in the window while `time - sample.time < window`.
    /// - Returns: the windowed maximum.
    @discardableResult
    public mutating func update(value: Double, time: UInt64, window: UInt64) -> Double {
        let window = max(window, 1)
        func age(_ s: Sample) -> UInt64 { time > s.time ? time - s.time : 0 }
        // A new overall maximum, or every stored sample has aged out: start over.
        if isEmpty || value >= best.value || age(third) >= window {
            reset(value: value, time: time)
            return value
        }
        let s = Sample(value: value, time: time)
        if value >= second.value {
            second = s
            third = s
        } else if value >= third.value {
            third = s
        }
        if age(best) >= window {
            // The best aged out: promote the later sub-windows' maxima.
            best = second
            second = third
            third = s
            if age(best) >= window {
                best = second
                second = third
            }
        } else if second.time == best.time && Double(age(best)) * 4 > Double(window) {
            // A quarter of the window passed without a second-best: take the newest sample.
            second = s
            third = s
        } else if third.time == second.time && Double(age(best)) * 2 > Double(window) {
            // Half the window passed without a third-best.
            third = s
        }
        return best.value
    }
}

/// What one ACK tells BBR (the draft's "RS" rate sample plus the transport's C.inflight), taken from
/// `AckSummary.rateSample` when the estimator produced one and from the newest acknowledged packet's
/// delivery snapshot otherwise, so that rounds, loss rates and min_rtt advance on every ACK.
struct BBRAckSignals {
    var now = Timestamp.zero
    /// RS.delivery_rate in bytes/s; meaningful only when `hasRate`.
    var deliveryRate = 0.0
    var hasRate = false
    /// RS.delivered: bytes delivered while the newest acknowledged packet was in flight.
    var delivered = 0
    /// RS.prior_delivered: C.delivered when that packet was sent.
    var priorDelivered = 0
    var isAppLimited = false
    /// RS.lost: bytes declared lost while that packet was in flight.
    var lost = 0
    /// RS.tx_in_flight: C.inflight just after that packet was sent.
    var txInFlight = 0
    /// RS.rtt: that packet's round-trip time.
    var rtt = Duration.zero
    /// RS.newly_acked.
    var newlyAcked = 0
    /// C.inflight after the ACK.
    var inflight = 0
}
