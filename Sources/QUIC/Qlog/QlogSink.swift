// qlog (draft-ietf-quic-qlog-main-schema, draft-ietf-quic-qlog-quic-events) as JSON Text
// Sequences (RFC 7464): one record per line, prefixed with the RS character. The connection
// emits events; where they go (a file, a test buffer) is the sink's business.
import Congestion

public protocol QlogSink: AnyObject {
    /// - Parameters:
    ///   - time: the event time.
    ///   - name: "quic:packet_sent" style event name.
    ///   - data: the event's `data` member, already JSON.
    func record(time: Timestamp, name: String, data: String)
}

/// Formats qlog JSON-SEQ records and hands each finished line (with RS prefix and newline) to `write`.
public final class QlogWriter: QlogSink {
    private let write: (String) -> Void
    private let origin: Timestamp

    /// Writes the qlog file header immediately.
    public init(
        title: String, vantagePoint: String, originalDestinationConnectionID: String, start: Timestamp,
        write: @escaping (String) -> Void
    ) {
        self.write = write
        self.origin = start
        let header =
            "{\"qlog_version\":\"0.4\",\"qlog_format\":\"JSON-SEQ\",\"title\":\(Self.quote(title)),"
            + "\"trace\":{\"vantage_point\":{\"type\":\(Self.quote(vantagePoint))},"
            + "\"common_fields\":{\"ODCID\":\(Self.quote(originalDestinationConnectionID)),\"time_format\":\"relative\",\"reference_time\":0},"
            + "\"event_schemas\":[\"urn:ietf:params:qlog:events:quic\"]}}"
        write("\u{1e}" + header + "\n")
    }

    public func record(time: Timestamp, name: String, data: String) {
        let ms = Double((time - origin).nanoseconds) / 1e6
        write("\u{1e}{\"time\":\(ms),\"name\":\(Self.quote(name)),\"data\":\(data)}\n")
    }

    public static func quote(_ s: String) -> String {
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default:
                if c.value < 0x20 {
                    out += "\\u00" + (c.value < 16 ? "0" : "") + String(c.value, radix: 16)
                } else {
                    out.unicodeScalars.append(c)
                }
            }
        }
        return out + "\""
    }
}
