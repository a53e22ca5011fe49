// `tquic-sim --trace`: what each of a router's paths looked like at regular instants (window,
// RTTs, delivery rate, losses), so a figure in a table can be explained without a debugger.
import Congestion
import QUIC

/// Writes one line per path of `router` every `interval`, from `start` to `end`, to `write`.
func schedulePathTrace(
    on sim: Simulator, router: SimulatedRouter, label: String, names: [String],
    interval: Duration, until end: Timestamp, write: @escaping (String) -> Void
) {
    schedulePathTrace(
        on: sim, connection: router.connection, pathID: { router.pathIDForIndex[$0] }, label: label, names: names,
        interval: interval, until: end, write: write)
}

/// The same for a connection whose path of topology index i is `pathID(i)` (the tunnel engine's links).
func schedulePathTrace(
    on sim: Simulator, connection: Connection, pathID: @escaping (Int) -> UInt32?, label: String, names: [String],
    interval: Duration, until end: Timestamp, write: @escaping (String) -> Void
) {
    _ = sim.every(interval, from: .zero + interval, until: end) { s in
        for i in names.indices {
            guard let id = pathID(i), let st = connection.pathStatistics(id) else {
                write("\(traceTime(s.now)) \(label) \(names[i]): closed")
                continue
            }
            write(
                "\(traceTime(s.now)) \(label) \(names[i]): \(st.congestionControl) cwnd \(st.congestionWindow / 1000) kB"
                    + " inflight \(st.bytesInFlight / 1000) kB srtt \(Int(st.smoothedRTT.milliseconds)) ms"
                    + " min \(Int(st.minRTT.milliseconds)) ms rate \(Int(st.deliveryRate * 8 / 1e6)) Mbit/s"
                    + " pacing \(Int(st.pacingRate * 8 / 1e6)) Mbit/s sent \(st.packetsSent) lost \(st.packetsLost)"
                    + " state \(st.state)")
        }
    }
}

private func traceTime(_ t: Timestamp) -> String {
    let ms = Int((t - .zero).milliseconds)
    return "t=\(ms / 1000).\(ms % 1000 / 100)s"
}
