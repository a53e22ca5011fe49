"""Bonding targets asserted on the deterministic simulator (`tquic-sim --json`, release build).

Each test runs the real router and VPS code (multipath QUIC + tunnel framing + scheduler +
reorder buffer) over NetSim links and checks a figure from the issue. Results are exact and
repeatable for a seed, so a threshold here is a regression test, not a flaky timing check.
Targets the implementation does not reach yet are listed in README.md and the issue note, not here.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("TQUIC_SIM", ROOT / ".build-release/release/tquic-sim"))


def sim(scenario: str, scheduler: str = "aggregate", seed: int = 1, source: str = "saturating") -> dict:
    if not BIN.exists():
        pytest.fail(f"tquic-sim not built at {BIN}: swift build -c release --product tquic-sim --scratch-path .build-release")
    out = subprocess.run([str(BIN), "--scenario", scenario, "--scheduler", scheduler, "--seed", str(seed),
                          "--source", source, "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


REQUIRED_KEYS = {"goodput_mbps", "sum_link_mbps", "goodput_fraction", "reorder_hold_p50_ms", "reorder_hold_p99_ms",
                 "reinjected", "duplicates_dropped", "lost_after_handoff", "max_delivery_gap_ms", "paths",
                 "queue_delay_p99_ms", "flow_delay_p99_ms", "queue_guard_holds"}


def test_json_has_every_promised_key():
    r = sim("equal")
    assert REQUIRED_KEYS <= set(r), f"missing {REQUIRED_KEYS - set(r)}"
    for p in r["paths"]:
        assert {"name", "goodput_mbps", "share", "rtt_ms"} <= set(p)


def test_same_seed_gives_identical_results():
    assert sim("mptcp-10-10", seed=7) == sim("mptcp-10-10", seed=7)


@pytest.mark.parametrize("scenario", ["equal", "mptcp-10-10", "mptcp-10-10-1-25", "mptcp-15-5", "mptcp-15-5-1-25"])
def test_aggregate_reaches_90_percent_of_summed_rates(scenario):
    r = sim(scenario)
    assert r["goodput_fraction"] >= 0.90, f"{scenario}: {r['goodput_fraction']:.3f} of {r['sum_link_mbps']} Mbit/s"


def test_fibre_satellite_reaches_85_percent():
    r = sim("fibre-satellite")
    assert r["goodput_fraction"] >= 0.85, f"{r['goodput_fraction']:.3f}"
    shares = {p["name"]: p["share"] for p in r["paths"]}
    assert shares["satellite"] > 0.2, f"the 600 ms path must carry its part: {shares}"


def test_equal_paths_share_evenly():
    r = sim("equal")
    shares = [p["share"] for p in r["paths"]]
    assert all(abs(s - 0.5) < 0.05 for s in shares), shares


def test_failover_reinjects_and_keeps_delivering():
    r = sim("failover")
    assert r["reinjected"] > 0, "packets in flight on the cut path must be re-sent on the other"
    assert r["max_delivery_gap_ms"] <= 1000, f"delivery gap {r['max_delivery_gap_ms']} ms"
    # The cut path comes back (re-validated under a new path ID) and is used again.
    assert r["goodput_fraction"] >= 0.85, f"{r['goodput_fraction']:.3f} of the available rate"
    shares = {p["name"]: p["share"] for p in r["paths"]}
    assert shares["wan0"] > 0.3, f"the revived path must carry traffic again: {shares}"


def test_backup_path_idle_while_a_main_path_is_up():
    r = sim("backup")
    # Bytes created while a main path was up that still went over the backup (reinjected after
    # the mains died) are the only exception; they must stay marginal.
    assert r["backup_share_while_main_up"] < 0.01, r["backup_share_while_main_up"]
    shares = {p["name"]: p["share"] for p in r["paths"]}
    assert shares["backup"] > 0.1, f"after both mains die the backup carries the traffic: {shares}"


def test_voip_is_not_held_behind_the_bulk_download():
    # mixed-flows: fibre 100 Mbit/s 10 ms RTT (5 ms one way) + satellite 50 Mbit/s 600 ms, a bulk
    # download and a 50 packet/s VoIP-like flow. Issue 4: the VoIP p99 one-way delay stays within
    # 20 ms of the fibre path's delay.
    r = sim("mixed-flows")
    fibre_one_way_ms = 5.0
    assert r["flow_delay_p99_ms"]["voip"] <= fibre_one_way_ms + 20, r["flow_delay_p99_ms"]
    assert r["goodput_fraction"] >= 0.85, f"{r['goodput_fraction']:.3f}"


def test_lte_jitter_keeps_85_percent_and_a_short_queue():
    # 50 Mbit/s 20 ms + 30 Mbit/s 40 ms ± 15 ms jitter with 1 % loss (the default controller, BBR).
    r = sim("lte-jitter")
    assert r["goodput_fraction"] >= 0.85, f"{r['goodput_fraction']:.3f}"
    slowest_rtt_ms = 40  # the jittery path's base RTT
    assert r["queue_delay_p99_ms"] < slowest_rtt_ms, r["queue_delay_p99_ms"]


def test_mptcp_15_5_25_1_reaches_90_percent():
    r = sim("mptcp-15-5-25-1")
    assert r["goodput_fraction"] >= 0.90, f"{r['goodput_fraction']:.3f}"


def test_failover_loses_nothing_handed_before_the_cut():
    r = sim("failover")
    assert r["lost_handed_before_outage"] == 0, r["lost_handed_before_outage"]


def test_rate_change_keeps_85_percent_and_no_standing_queue():
    # The LTE path falls from 50 to 5 Mbit/s at 5 s behind a queue sized for 50 (400 ms at 5).
    # Issue 4: >= 85 % of the current rates, added queueing delay p99 below the slowest RTT (40 ms).
    r = sim("rate-change")
    assert r["goodput_fraction"] >= 0.85, f"{r['goodput_fraction']:.3f}"
    assert r["queue_delay_p99_ms"] < 40, r["queue_delay_p99_ms"]
    # It is the queue guard that holds the LTE path back once its rate falls.
    assert r["queue_guard_holds"] >= 1, r["queue_guard_holds"]


def test_queue_guard_leaves_equal_paths_alone():
    # Two steady 50 Mbit/s paths build no queue of their own: the guard must never hold one.
    assert sim("equal")["queue_guard_holds"] == 0
    assert sim("fibre-satellite")["queue_guard_holds"] == 0


def test_rate_limited_source_is_carried_in_full():
    # 50 Mbit/s offered over 2 x 50 Mbit/s: all of it arrives, without a standing queue.
    r = sim("equal", source="rate:50")
    assert r["source"] == "rate:50.0"
    assert abs(r["offered_mbps"] - 50) < 1, r["offered_mbps"]
    assert abs(r["goodput_mbps"] - r["offered_mbps"]) < 0.5, (r["goodput_mbps"], r["offered_mbps"])
    assert r["lost_after_handoff"] == 0
    assert r["queue_delay_p99_ms"] < 5, r["queue_delay_p99_ms"]


def test_inner_tcp_like_source_is_clocked_by_its_acknowledgements():
    # One inner Reno-like flow: it fills a good part of the bond, and the same seed repeats.
    r = sim("equal", source="tcp")
    assert r["source"] == "tcp"
    assert 30 < r["goodput_mbps"] <= 100, r["goodput_mbps"]
    assert sim("equal", source="tcp") == r


def test_light_download_stays_off_the_satellite():
    # 50 Mbit/s offered to fibre (100 Mbit/s, 10 ms) + satellite (600 ms): the fibre alone carries
    # it, so the scheduler keeps the small backlog there instead of overflowing onto the satellite
    # whenever the fibre's window is full for a moment (bulk p99 was 432 ms).
    r = sim("fibre-satellite", source="rate:50")
    assert r["goodput_mbps"] >= 0.97 * r["offered_mbps"], r
    assert r["flow_delay_p99_ms"]["bulk"] < 50, r


def test_inner_tcp_over_fibre_and_satellite_is_not_dragged_to_the_satellites_pace():
    # One inner TCP-like flow: its backlog is its window beyond what is in flight, small unless
    # the fibre is saturated, so it rides the fibre (8 Mbit/s when it was spread over both).
    r = sim("fibre-satellite", source="tcp")
    assert r["goodput_mbps"] >= 50, r


def sim_links(*args: str) -> dict:
    """tquic-sim over links of the link syntax (docs/link-syntax.md) instead of a scenario."""
    if not BIN.exists():
        pytest.fail(f"tquic-sim not built at {BIN}: swift build -c release --product tquic-sim --scratch-path .build-release")
    out = subprocess.run([str(BIN), *args, "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_a_ping_gets_through_a_fibre_cut_onto_a_cold_satellite():
    # The lab's fibre-satellite cut: the fibre gone for good at 5 s, a 40 Mbit/s download the
    # fibre carries alone (so the satellite's window is cold) and the lab's UDP probe, 64 bytes
    # every 2 ms. Here the cut is found from timeouts (the lab's daemon hears it from netlink).
    # The probe's longest gap stays within the lab's allowance: 300 ms plus the 295 ms by which
    # the satellite is slower (TunnelFailoverTests has the before and after: 911 -> 418 ms).
    r = sim_links("--link", "fibre=100mbit,5ms,outage=5s-", "--link", "satellite=50mbit,300ms",
                  "--source", "rate:40", "--probe", "2", "--duration", "8")
    probe = next(f for f in r["flows"] if f["name"] == "probe")
    assert probe["max_gap_ms"] < 300 + 295, probe
    assert probe["delivered"] > 2500, probe
    assert r["reinjected"] > 0, r


def test_unknown_source_is_refused():
    out = subprocess.run([str(BIN), "--scenario", "equal", "--source", "bursty"], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "bursty" in out.stderr


@pytest.mark.parametrize("scenario,target", [("lte-jitter", 0.80), ("equal", 0.88), ("fibre-satellite", 0.80)])
def test_an_inner_tcp_flow_does_not_see_the_wans_losses(scenario, target):
    """Lost tunnel packets are sent again (TunnelConfiguration.reinjectsLosses): a TCP-like inner
    flow over lte-jitter's 1 % loss kept 33 % of the summed rates when those losses reached it,
    and equal's 61 %, fibre-satellite's 59 %."""
    r = sim(scenario, source="tcp")
    assert r["goodput_fraction"] >= target, f"{scenario} with a TCP-like flow: {r['goodput_fraction']:.3f} (target {target})"
    assert r["reinjected"] > 0
