// What /metrics shows, built from the role's status figures (StatusJSON.swift: the engine's and
// the connection's own statistics). Names follow Prometheus's conventions: a `tquic_` prefix,
// base units in the name (seconds, bytes), counters ending in `_total`; a path is labelled by
// its WAN interface on the router and by tenant and path ID on the VPS.

enum TunnelMetrics {
    /// Every metric name with its help text (also the list the Grafana dashboard is checked against).
    static let help: [String: String] = [
        "tquic_info": "The daemon: role, scheduler and congestion controller as labels (value 1).",
        "tquic_connected": "1 while the tunnel connection (router) or the tenant's connection (VPS) is up.",
        "tquic_connections_opened_total": "Tunnel connections opened (handshakes done).",
        "tquic_connections_lost_total": "Tunnel connections that ended other than by a local stop.",
        "tquic_key_updates_total": "Key updates (RFC 9001 §6) on the current connection.",
        "tquic_path_up": "1 while the path can carry packets (its WAN up and the path active).",
        "tquic_path_backup": "1 for a backup path (used only when no other path is usable).",
        "tquic_path_rtt_seconds": "Smoothed round-trip time of the path (RFC 9002 §5.3).",
        "tquic_path_min_rtt_seconds": "Minimum round-trip time seen on the path.",
        "tquic_path_rtt_variance_seconds": "Round-trip time variation of the path (rttvar, RFC 9002 §5.3).",
        "tquic_path_cwnd_bytes": "Congestion window of the path.",
        "tquic_path_bytes_in_flight": "Bytes sent on the path and not yet acknowledged or lost.",
        "tquic_path_pacing_rate_bytes_per_second": "Rate the path's pacer lets packets out at.",
        "tquic_path_delivery_rate_bytes_per_second": "Delivery rate the path's acknowledgements measure.",
        "tquic_path_loss_ratio": "Recent share of the path's packets declared lost.",
        "tquic_path_mtu_bytes": "Largest UDP payload the path carries now (RFC 8899 search).",
        "tquic_path_sent_bytes_total": "Bytes sent on the path (QUIC packets).",
        "tquic_path_sent_packets_total": "QUIC packets sent on the path.",
        "tquic_path_received_packets_total": "QUIC packets received on the path.",
        "tquic_path_lost_packets_total": "QUIC packets on the path declared lost (RFC 9002 §6).",
        "tquic_path_ecn_ce_total": "ECN Congestion Experienced marks the peer reported for the path.",
        "tquic_tunnel_sent_packets_total": "Inner IP packets sent into the tunnel.",
        "tquic_tunnel_sent_bytes_total": "Bytes of inner IP packets sent into the tunnel.",
        "tquic_tunnel_delivered_packets_total": "Inner IP packets taken out of the tunnel and delivered.",
        "tquic_tunnel_delivered_bytes_total": "Bytes of inner IP packets taken out of the tunnel and delivered.",
        "tquic_tunnel_reinjected_packets_total": "Inner packets sent again on another path after a loss.",
        "tquic_tunnel_dropped_packets_total": "Inner packets dropped, by reason.",
        "tquic_reorder_held_packets": "Packets the reorder buffer holds now, waiting for a gap.",
        "tquic_reorder_duplicates_dropped_total": "Duplicate copies the reorder buffer dropped.",
        "tquic_reorder_gaps_skipped_total": "Missing packets the reorder buffer gave up on.",
        "tquic_queue_guard_holds_total": "Times the sender held a path to its measured rate to drain a queue its controller missed.",
        "tquic_reorder_hold_seconds": "How long the reorder buffer held the packets it released in order (bucket bounds within 12.5 %).",
        "tquic_tenants": "Tenants configured on the VPS.",
        "tquic_dropped_no_tenant_packets_total": "Packets from the internet for an address of no tenant (VPS).",
        "tquic_endpoint_dropped_datagrams_total": "UDP datagrams the VPS's endpoint dropped (malformed or for no connection).",
        "tquic_tenant_connections_accepted_total": "Connections the tenant's key opened.",
    ]

    static func samples(_ observation: Observation) -> [MetricSample] {
        switch observation {
        case .router(let r): return samples(router: r)
        case .vps(let v): return samples(vps: v)
        }
    }

    /// The reorder buffers' hold times (the router's; each connected tenant's on the VPS).
    static func histograms(_ observation: Observation) -> [HistogramSample] {
        func hold(_ h: HoldTimesJSON?, _ labels: [(String, String)]) -> [HistogramSample] {
            guard let h else { return [] }
            return [
                HistogramSample(
                    name: "tquic_reorder_hold_seconds", labels: labels, boundsSeconds: h.boundsSeconds,
                    cumulative: h.cumulative, count: h.count, sum: h.sumSeconds)
            ]
        }
        switch observation {
        case .router(let r): return hold(r.tunnel?.reorderHold, [])
        case .vps(let v): return v.tenants.flatMap { hold($0.reorderHold, [("tenant", $0.name)]) }
        }
    }

    static func samples(router r: RouterStatusJSON) -> [MetricSample] {
        var out = [
            MetricSample("tquic_info", .gauge, 1, [("role", "router"), ("scheduler", r.scheduler), ("congestion", r.congestion)]),
            MetricSample("tquic_connected", .gauge, r.connected ? 1 : 0),
            MetricSample("tquic_connections_opened_total", .counter, Double(r.connectionsOpened)),
            MetricSample("tquic_connections_lost_total", .counter, Double(r.connectionsLost)),
        ]
        if let k = r.keyUpdates { out.append(MetricSample("tquic_key_updates_total", .counter, Double(k))) }
        for p in r.paths {
            out += path(p, labels: [("path", p.interface ?? p.pathID.map { "\($0)" } ?? "?")])
        }
        if let t = r.tunnel { out += tunnel(t, labels: []) }
        return out
    }

    static func samples(vps v: VPSStatusJSON) -> [MetricSample] {
        var out = [
            MetricSample("tquic_info", .gauge, 1, [("role", "vps"), ("scheduler", v.scheduler), ("congestion", v.congestion)]),
            MetricSample("tquic_tenants", .gauge, Double(v.tenants.count)),
            MetricSample("tquic_endpoint_dropped_datagrams_total", .counter, Double(v.droppedDatagrams)),
            MetricSample("tquic_dropped_no_tenant_packets_total", .counter, Double(v.droppedNoTenant)),
        ]
        for t in v.tenants {
            let tenant = [("tenant", t.name)]
            out.append(MetricSample("tquic_connected", .gauge, t.connected ? 1 : 0, tenant))
            out.append(MetricSample("tquic_tenant_connections_accepted_total", .counter, Double(t.connectionsAccepted), tenant))
            if let k = t.keyUpdates { out.append(MetricSample("tquic_key_updates_total", .counter, Double(k), tenant)) }
            if let q = t.queueGuardHolds { out.append(MetricSample("tquic_queue_guard_holds_total", .counter, Double(q), tenant)) }
            for p in t.paths {
                out += path(p, labels: tenant + [("path", p.pathID.map { "\($0)" } ?? "?")])
            }
            out += [
                MetricSample("tquic_tunnel_sent_packets_total", .counter, Double(t.packetsSent), tenant),
                MetricSample("tquic_tunnel_sent_bytes_total", .counter, Double(t.bytesSent), tenant),
                MetricSample("tquic_tunnel_delivered_packets_total", .counter, Double(t.packetsDelivered), tenant),
                MetricSample("tquic_tunnel_delivered_bytes_total", .counter, Double(t.bytesDelivered), tenant),
            ]
            for (reason, n) in [
                ("spoofed_source", t.droppedSourceNotAllowed), ("not_connected", t.droppedNotConnected),
                ("queue_full", t.droppedQueueFull), ("codel", t.droppedCoDel), ("too_big", t.droppedTooBig),
            ] {
                out.append(MetricSample("tquic_tunnel_dropped_packets_total", .counter, Double(n), tenant + [("reason", reason)]))
            }
        }
        return out
    }

    static func path(_ p: PathJSON, labels: [(String, String)]) -> [MetricSample] {
        var out = [
            MetricSample("tquic_path_up", .gauge, (p.up ?? true) && p.state == "active" && p.dead != true ? 1 : 0, labels),
            MetricSample("tquic_path_backup", .gauge, p.backup ? 1 : 0, labels),
        ]
        func add(_ name: String, _ kind: MetricSample.Kind, _ v: Double?) {
            if let v { out.append(MetricSample(name, kind, v, labels)) }
        }
        add("tquic_path_rtt_seconds", .gauge, p.rttMs.map { $0 / 1000 })
        add("tquic_path_min_rtt_seconds", .gauge, p.minRttMs.map { $0 / 1000 })
        add("tquic_path_rtt_variance_seconds", .gauge, p.rttVarianceMs.map { $0 / 1000 })
        add("tquic_path_cwnd_bytes", .gauge, p.congestionWindow.map { Double($0) })
        add("tquic_path_bytes_in_flight", .gauge, p.bytesInFlight.map { Double($0) })
        add("tquic_path_pacing_rate_bytes_per_second", .gauge, p.pacingRateBitsPerSecond.map { $0 / 8 })
        add("tquic_path_delivery_rate_bytes_per_second", .gauge, p.deliveryRateBitsPerSecond.map { $0 / 8 })
        add("tquic_path_loss_ratio", .gauge, p.lossRate)
        add("tquic_path_mtu_bytes", .gauge, p.mtu.map { Double($0) })
        add("tquic_path_sent_bytes_total", .counter, p.bytesSent.map { Double($0) })
        add("tquic_path_sent_packets_total", .counter, p.packetsSent.map { Double($0) })
        add("tquic_path_received_packets_total", .counter, p.packetsReceived.map { Double($0) })
        add("tquic_path_lost_packets_total", .counter, p.packetsLost.map { Double($0) })
        add("tquic_path_ecn_ce_total", .counter, p.ecnCongestionExperienced.map { Double($0) })
        return out
    }

    static func tunnel(_ t: TunnelCountersJSON, labels: [(String, String)]) -> [MetricSample] {
        var out = [
            MetricSample("tquic_tunnel_sent_packets_total", .counter, Double(t.innerPacketsSent), labels),
            MetricSample("tquic_tunnel_sent_bytes_total", .counter, Double(t.innerBytesSent), labels),
            MetricSample("tquic_tunnel_delivered_packets_total", .counter, Double(t.delivered), labels),
            MetricSample("tquic_tunnel_delivered_bytes_total", .counter, Double(t.deliveredBytes), labels),
            MetricSample("tquic_tunnel_reinjected_packets_total", .counter, Double(t.reinjected), labels),
        ]
        for (reason, n) in [
            ("queue_full", t.droppedQueueFull), ("codel", t.droppedCoDel), ("too_large", t.droppedTooLarge),
            ("malformed", t.receivedMalformed),
        ] {
            out.append(MetricSample("tquic_tunnel_dropped_packets_total", .counter, Double(n), labels + [("reason", reason)]))
        }
        if let h = t.reorderHeld { out.append(MetricSample("tquic_reorder_held_packets", .gauge, Double(h), labels)) }
        if let d = t.duplicatesDropped { out.append(MetricSample("tquic_reorder_duplicates_dropped_total", .counter, Double(d), labels)) }
        if let g = t.gapsSkipped { out.append(MetricSample("tquic_reorder_gaps_skipped_total", .counter, Double(g), labels)) }
        if let q = t.queueGuardHolds { out.append(MetricSample("tquic_queue_guard_holds_total", .counter, Double(q), labels)) }
        return out
    }
}
