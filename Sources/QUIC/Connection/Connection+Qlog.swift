// qlog events of the connection (draft-ietf-quic-qlog-quic-events): packets sent, received and
// lost, RTT/cwnd metrics and state changes. Nothing is formatted when no sink is set.
import Congestion

extension Connection {
    func qlogPacketType(_ space: PacketNumberSpaceID) -> String {
        switch space {
        case .initial: return "initial"
        case .handshake: return "handshake"
        case .applicationData: return "1RTT"
        }
    }

    func qlogConnectionState(_ s: String, now: Timestamp) {
        qlog?.record(time: now, name: "quic:connection_state_updated", data: "{\"new\":\"\(s)\"}")
    }

    func qlogMetrics(path: Path, now: Timestamp) {
        guard let qlog else { return }
        let r = path.rtt
        qlog.record(
            time: now, name: "recovery:metrics_updated",
            data: "{\"smoothed_rtt\":\(r.smoothed.milliseconds),\"min_rtt\":\(r.minimum.milliseconds),"
                + "\"latest_rtt\":\(r.latest.milliseconds),\"rtt_variance\":\(r.variation.milliseconds),"
                + "\"congestion_window\":\(path.congestion.congestionWindow),\"bytes_in_flight\":\(path.bytesInFlight),\"path_id\":\(path.id)}"
        )
    }

    func qlogPacket(_ name: String, type: String, pn: UInt64, size: Int, frames: Int, now: Timestamp) {
        qlog?.record(
            time: now, name: name,
            data:
                "{\"header\":{\"packet_type\":\"\(type)\",\"packet_number\":\(pn)},\"raw\":{\"length\":\(size)},\"frames_count\":\(frames)}"
        )
    }
}
