// /metrics: the running tunnel's figures in the Prometheus text format (swift-prometheus's
// registry writes it). Once a second the daemon's loop hands over the figures of its status
// (TunnelMetrics.samples: the engine's and the connection's own statistics, read, never counted
// a second time); the HTTP thread only renders the registry. Counters follow the engine's
// totals by their increase; a total that went down (a new connection) restarts the counter,
// which Prometheus's rate() reads as a reset. Series of paths or tenants that went away are
// removed.
import Prometheus
import Synchronization

/// One figure of the running tunnel.
struct MetricSample: Equatable, Sendable {
    enum Kind: Sendable { case gauge, counter }
    var name: String
    var labels: [Label]
    var kind: Kind
    var value: Double

    struct Label: Equatable, Sendable {
        var name: String
        var value: String
    }

    init(_ name: String, _ kind: Kind, _ value: Double, _ labels: [(String, String)] = []) {
        self.name = name
        self.kind = kind
        self.value = value
        self.labels = labels.map { Label(name: $0.0, value: $0.1) }
    }

    /// The series' identity: its name and labels.
    var key: String { name + "{" + labels.map { "\($0.name)=\($0.value)" }.joined(separator: ",") + "}" }
}

/// A histogram as the engine keeps it (cumulative counts at fixed bounds), for Prometheus's
/// histogram type: the registry's own histograms only record values one by one, so these few
/// lines are rendered here, in the same exposition.
struct HistogramSample: Sendable {
    var name: String
    var labels: [(String, String)]
    var boundsSeconds: [Double]
    var cumulative: [UInt64]
    var count: UInt64
    var sum: Double

    /// The family's `_bucket`, `_sum` and `_count` lines (no HELP/TYPE).
    var lines: String {
        func labelText(_ extra: (String, String)?) -> String {
            let all = labels + (extra.map { [$0] } ?? [])
            return all.isEmpty ? "" : "{" + all.map { "\($0.0)=\"\($0.1)\"" }.joined(separator: ",") + "}"
        }
        var out = ""
        for (b, c) in zip(boundsSeconds, cumulative) { out += "\(name)_bucket\(labelText(("le", "\(b)"))) \(c)\n" }
        out += "\(name)_bucket\(labelText(("le", "+Inf"))) \(count)\n"
        out += "\(name)_sum\(labelText(nil)) \(sum)\n"
        out += "\(name)_count\(labelText(nil)) \(count)\n"
        return out
    }
}

final class MetricsExporter: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let series = Mutex<[String: Series]>([:])
    private let histograms = Mutex<[UInt8]>([])

    private enum Series {
        case gauge(Gauge)
        case counter(Counter, total: Double)
    }

    /// The latest figures; series absent from `samples` are removed.
    func update(_ samples: [MetricSample]) {
        series.withLock { series in
            var seen = Set<String>()
            for s in samples {
                let key = s.key
                seen.insert(key)
                let labels = s.labels.map { ($0.name, $0.value) }
                // Units are in our names already (TunnelMetrics): no unit suffix added.
                let descriptor = MetricNameDescriptor(metricName: s.name, unitName: "", helpText: TunnelMetrics.help[s.name] ?? "")
                switch (s.kind, series[key]) {
                case (.gauge, .gauge(let g)?):
                    g.set(s.value)
                case (.gauge, _):
                    let g = registry.makeGauge(descriptor: descriptor, labels: labels)
                    g.set(s.value)
                    series[key] = .gauge(g)
                case (.counter, .counter(let c, let total)?):
                    if s.value >= total {
                        if s.value > total { c.increment(by: Int64(s.value - total)) }
                    } else {
                        c.reset()
                        c.increment(by: Int64(s.value))
                    }
                    series[key] = .counter(c, total: s.value)
                case (.counter, _):
                    let c = registry.makeCounter(descriptor: descriptor, labels: labels)
                    c.reset()
                    c.increment(by: Int64(s.value))
                    series[key] = .counter(c, total: s.value)
                }
            }
            for (key, s) in series where !seen.contains(key) {
                switch s {
                case .gauge(let g): registry.unregisterGauge(g)
                case .counter(let c, _): registry.unregisterCounter(c)
                }
                series[key] = nil
            }
        }
    }

    /// The histograms' latest state (replacing the one before).
    func update(histograms samples: [HistogramSample]) {
        var text = ""
        var named = Set<String>()
        for h in samples {
            if named.insert(h.name).inserted {
                text += "# HELP \(h.name) \(TunnelMetrics.help[h.name] ?? "")\n# TYPE \(h.name) histogram\n"
            }
            text += h.lines
        }
        histograms.withLock { $0 = Array(text.utf8) }
    }

    /// The Prometheus text exposition (version 0.0.4).
    func text() -> [UInt8] {
        registry.emitToBuffer() + histograms.withLock { $0 }
    }
}
