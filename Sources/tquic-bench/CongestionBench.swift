// Per-call cost of each congestion controller (issue 5): what the connection pays on every send
// and on every acknowledgement. A steady flow is replayed: each round sends a window's packets,
// then acknowledges them one ACK frame per two packets (onPacketAcked per packet, then
// onAckProcessed with a delivery-rate sample), with a loss every 200 packets so the loss-driven
// code runs too. Each window's sends and its ACKs are timed as blocks; the same loop around a
// controller that does nothing is the baseline, subtracted in the printed "controller ns".
import CAllocationCounter
import Congestion

/// A controller that does nothing: the loop's own cost.
final class NullController: CongestionController {
    var congestionWindow: Int { 1 << 30 }
    var pacingRate: Double? { nil }
    let name = "none"
    func onPacketSent(bytes: Int, bytesInFlight: Int, now: Timestamp) {}
    func onPacketAcked(_ packet: AckedPacketInfo, rtt: RTTSample, bytesInFlight: Int, now: Timestamp) {}
    func onCongestionEvent(lostPacketSentTime: Timestamp, now: Timestamp) {}
    func onPersistentCongestion(now: Timestamp) {}
    func onMaxDatagramSizeChanged(_ size: Int) {}
}

struct CongestionBenchResult {
    var name: String
    var sendNs: Double
    var ackNs: Double
    var sendAllocs: Double
    var ackAllocs: Double
}

enum CongestionBench {
    static let packetSize = 1200
    static let window = 64

    /// Replays `packets` packets through `controller`; returns (send ns, ack ns, send allocs, ack allocs) per call.
    static func replay(_ controller: CongestionController, packets: Int) -> (Double, Double, Double, Double) {
        var estimator = DeliveryRateEstimator()
        var now = Timestamp(nanoseconds: 1_000_000_000)
        var sendNs: UInt64 = 0
        var ackNs: UInt64 = 0
        var sendAllocs: UInt64 = 0
        var ackAllocs: UInt64 = 0
        var sends = 0
        var acks = 0
        var inFlight = 0
        var snapshots = [DeliverySnapshot](repeating: DeliverySnapshot(), count: window)
        var sentAt = [Timestamp](repeating: .zero, count: window)
        var pn = 0
        let rttBase = Duration.milliseconds(40)
        while pn < packets {
            // Send a window (timed as a block: a clock read per call would cost more than most
            // controllers do).
            var a0 = tquic_allocation_count()
            var t0 = threadCPUNanoseconds()
            for i in 0..<window {
                now = now + .microseconds(20)
                snapshots[i] = estimator.onPacketSent(bytes: packetSize, bytesInFlight: inFlight, now: now)
                sentAt[i] = now
                inFlight += packetSize
                controller.onPacketSent(bytes: packetSize, bytesInFlight: inFlight, now: now)
                sends += 1
            }
            sendNs &+= threadCPUNanoseconds() &- t0
            sendAllocs &+= tquic_allocation_count() &- a0
            // Acknowledge it, two packets per ACK frame; every 200th packet is lost instead.
            var i = 0
            a0 = tquic_allocation_count()
            t0 = threadCPUNanoseconds()
            while i < window {
                now = sentAt[i] + rttBase
                let rtt = RTTSample(latest: rttBase, smoothed: rttBase, minimum: rttBase, variation: .milliseconds(2))
                let prior = inFlight
                var acked = 0
                for j in i..<min(i + 2, window) {
                    inFlight -= packetSize
                    if (pn + j) % 200 == 199 {
                        estimator.onPacketLost(bytes: packetSize)
                        controller.onPacketLost(
                            LostPacketInfo(sentBytes: packetSize, timeSent: sentAt[j], delivery: snapshots[j]),
                            bytesInFlight: inFlight, now: now)
                        controller.onCongestionEvent(lostPacketSentTime: sentAt[j], now: now)
                        continue
                    }
                    estimator.onPacketAcked(snapshots[j], bytes: packetSize, timeSent: sentAt[j], now: now)
                    controller.onPacketAcked(
                        AckedPacketInfo(sentBytes: packetSize, timeSent: sentAt[j], delivery: snapshots[j]),
                        rtt: rtt, bytesInFlight: inFlight, now: now)
                    acked += packetSize
                }
                let sample = estimator.generateSample(minRTT: rttBase)
                controller.onAckProcessed(
                    AckSummary(
                        now: now, ackedBytes: acked, priorBytesInFlight: prior, bytesInFlight: inFlight,
                        rtt: rtt, hasNewRTTSample: true, rateSample: sample))
                acks += 1
                i += 2
            }
            ackNs &+= threadCPUNanoseconds() &- t0
            ackAllocs &+= tquic_allocation_count() &- a0
            pn += window
        }
        return (
            Double(sendNs) / Double(sends), Double(ackNs) / Double(acks),
            Double(sendAllocs) / Double(sends), Double(ackAllocs) / Double(acks)
        )
    }

    static func run(packets: Int, runs: Int) -> [CongestionBenchResult] {
        var results: [CongestionBenchResult] = []
        let cases: [(String, () -> CongestionController)] =
            [("baseline (no-op)", { NullController() })]
            + CongestionAlgorithm.allCases.map { a in (a.rawValue, { a.makeController(maxDatagramSize: packetSize) }) }
            + [
                (
                    "newreno+lia",
                    {
                        let group = CongestionCoupling(algorithm: .lia)
                        let other = NewReno(maxDatagramSize: packetSize, coupling: group.join())
                        other.onPacketSent(bytes: packetSize, bytesInFlight: packetSize, now: .zero)
                        return NewReno(maxDatagramSize: packetSize, coupling: group.join())
                    }
                )
            ]
        for (name, make) in cases {
            var best: (Double, Double, Double, Double)?
            for _ in 0..<runs {
                let r = replay(make(), packets: packets)
                if best == nil || r.0 + r.1 < best!.0 + best!.1 { best = r }
            }
            let b = best!
            results.append(CongestionBenchResult(name: name, sendNs: b.0, ackNs: b.1, sendAllocs: b.2, ackAllocs: b.3))
        }
        return results
    }
}
