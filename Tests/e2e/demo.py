"""The appliance demo (scripts/demo-appliance.sh, `make demo`), on the end-to-end tests' lab (lab.py):
2 WANs at 20 Mbit/s, tquicd as VPS and router, ping v4 and v6 through the tunnel, then a ~10 s
iperf3 TCP transfer from the LAN host to the internet host with the UDP probe running, wan1 cut
in the middle. Prints each path's share and the failover gap; cleans up; the last line is

    RESULT aggregate_mbps=X sum_link_mbps=Y ratio=Z failover_gap_ms=G tcp_survived=yes|no

aggregate_mbps: the TCP receiver's rate while both WANs were up (from 1 s, after slow start, to
the cut); failover_gap_ms: the longest time without a probe datagram arriving (one every 2 ms,
LAN host -> internet host) around the cut. Exit status 0 only if every step worked and the
issue's targets hold (ratio >= 0.85, gap < 300 ms, TCP survived).

usage: demo.py [--prefix P] [--dir D] [--seconds 10] [--rate 20]   (root; lab.bin_dir() binaries)
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lab as L  # noqa: E402


def say(text: str) -> None:
    print(text, flush=True)


def run(lab: L.Lab, seconds: float, failures: list[str], result: dict) -> None:
    say(f"== lab: {lab.prefix}-{{lan,rtr,isp,vps,inet}}, {lab.wans} WANs at {lab.rate} Mbit/s (tbf both ways)")
    lab.up()
    lab.start(L.tenant_a())
    a = lab.router()
    for line in lab.router_status(a).text.splitlines():
        if line.startswith(("server:", "  wan")):
            say(f"   {line.strip()}")

    say("== ping through the tunnel (LAN host -> internet host)")
    for address in (L.INET4, L.INET6):
        r = lab.ping("lan", address, count=3)
        summary = next((x for x in r.stdout.splitlines() if "packets transmitted" in x), r.stderr.strip())
        rtt = next((x.split("=")[1].split("/")[1] for x in r.stdout.splitlines() if x.startswith("rtt")), "?")
        say(f"   {address:<11} {summary}; rtt avg {rtt} ms")
        if r.returncode != 0 or " 0% packet loss" not in r.stdout:
            failures.append(f"ping {address}: {summary}")
            for x in r.stdout.splitlines():
                if x.startswith("From "):  # an ICMP error instead of an answer
                    say(f"   {x}")

    cut_after = seconds / 2
    say(f"== iperf3 TCP {seconds:g} s LAN host -> internet host, UDP probe every 2 ms; wan1 cut at {cut_after:g} s")
    run = lab.transfer_with_cut(seconds, cut_after)
    r, p = run.iperf, run.probe
    if r.error:
        failures.append(f"iperf3: {r.error}")
        return
    for second in range(int(seconds)):
        mark = "   <- wan1 cut" if second <= run.cut_at < second + 1 else ""
        say(f"   {second:2d}-{second + 1:2d} s  {r.mbps_between(second, second + 1):5.1f} Mbit/s{mark}")
    say(f"   path shares, both WANs up: {L.shares(run.before, run.at_cut)}")
    say(f"   path shares, after the cut: {L.shares(run.at_cut, run.after)}")
    aggregate, after = run.mbps_both(), run.mbps_after()
    say(f"   TCP: {aggregate:.1f} Mbit/s on 2 WANs ({100 * aggregate / (2 * lab.rate):.0f} % of {2 * lab.rate}), "
        f"{after:.1f} Mbit/s on wan2 alone ({100 * after / lab.rate:.0f} % of {lab.rate}); "
        f"retransmits {r.data['end']['sum_sent'].get('retransmits')}")
    pmtu = lab.pmtu("lan", L.INET4)
    say(f"   inner packets {L.inner_packet_size(run.before, run.at_cut):.0f} bytes on average"
        + (f"; the LAN host caches a path MTU of {pmtu} to {L.INET4} (from an ICMP too-big)" if pmtu else ""))
    connections = next(x for x in run.after.status.text.splitlines() if x.startswith("connections:"))
    say(f"   failover: longest gap {run.gap_ms:.1f} ms LAN -> internet, {run.round_trip_gap_ms:.1f} ms round trip; "
        f"probe loss {100 * p.loss:.2f} %; QUIC {connections}")
    result.update(aggregate=aggregate, gap=run.gap_ms, tcp_survived=run.survived and run.after.status.connected)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description="The TQUIC appliance demo in network namespaces (root).")
    ap.add_argument("--prefix", default=L.new_prefix("d"))
    ap.add_argument("--dir", type=Path, default=None, help="logs and configurations (default: a new /tmp directory)")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--rate", type=int, default=L.RATE_MBIT, help="Mbit/s per WAN")
    args = ap.parse_args(argv)
    directory = args.dir or Path(tempfile.mkdtemp(prefix="tquic-demo-"))
    # SIGTERM/SIGHUP as Ctrl-C: the finally below cleans up.
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.default_int_handler)
    result = {"aggregate": 0.0, "gap": 0.0, "tcp_survived": False}
    failures: list[str] = []
    lab = None
    try:
        lab = L.Lab(args.prefix, directory, wans=2, rate_mbit=args.rate, log=lambda line: say(f"   {line}"))
        run(lab, args.seconds, failures, result)
        completed = True
    except KeyboardInterrupt:
        failures.append("interrupted")
        completed = False
    except Exception as e:
        text = str(e)
        failures.append(f"{type(e).__name__}: {text.splitlines()[0] if text else ''}")
        completed = False
        say(text)
        if lab is not None and "--- tquicctl status" not in text:
            say(lab.diagnostics())
    finally:
        if lab is not None:
            problems = lab.close()
            failures += [f"cleanup: {x}" for x in problems]
            say(f"== cleaned up: daemons stopped (TUN and nftables tables gone), namespaces {args.prefix}-* deleted"
                if not problems else "== cleanup problems: " + "; ".join(problems))
    total = 2 * args.rate
    ratio = result["aggregate"] / total
    if completed and ratio < 0.85:
        failures.append(f"aggregate {result['aggregate']:.1f} Mbit/s is below 85 % of {total}")
    if completed and result["gap"] >= 300:
        failures.append(f"failover gap {result['gap']:.0f} ms (target < 300 ms)")
    if completed and not result["tcp_survived"]:
        failures.append("the TCP transfer did not survive the cut")
    for f in failures:
        say(f"FAIL: {f}")
    if failures:
        say(f"logs: {directory}")
    line = (f"RESULT aggregate_mbps={result['aggregate']:.1f} sum_link_mbps={total} ratio={ratio:.3f} "
        f"failover_gap_ms={result['gap']:.1f} tcp_survived={'yes' if result['tcp_survived'] else 'no'}")
    (directory / "RESULT").write_text(line + "\n")
    say(line)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
