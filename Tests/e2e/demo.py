"""The appliance demo and lab (scripts/demo-appliance.sh, `make demo`): router, WANs and VPS in
network namespaces (lab.py), each WAN through its own tquic-netem, tquicd as router and VPS, and
the measurements of profile_run.py: ping idle and loaded, a bulk TCP transfer with a VoIP-like
flow beside it, an inner QUIC download, wan1 cut mid-transfer, and kernel MPTCP on the same links.
Per profile it prints a human summary, then

    FLOWS voip_owd_p50_ms=.. voip_owd_p99_ms=.. voip_jitter_ms=.. voip_loss=.. quic_mbps=.. profile=P
    MPTCP aggregate_mbps=X ratio=Z profile=P
    RESULT aggregate_mbps=X sum_link_mbps=Y ratio=Z failover_gap_ms=G tcp_survived=yes|no ping_idle_ms=A ping_loaded_ms=B metrics_paths=N dashboard=ok|fail profile=P

the RESULT line last. `--profile all` runs every profile and ends with a Markdown table (and
`--docs FILE` writes it between FILE's `<!-- lab-profiles:begin -->` and `:end -->` markers).
Exit status 0 only if every step worked and the issue's targets held (profile_run.Figures.check_targets).

usage: demo.py [--profile NAME|all] [--link SPEC ... [--link-back SPEC ...]] [--seconds S] [--no-mptcp]
               [--prefix P] [--dir D] [--docs FILE]          (root; lab.bin_dir() binaries)
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lab as L  # noqa: E402
import profile_run as R  # noqa: E402


def say(text: str) -> None:
    print(text, flush=True)


def custom_profile(links: list[str], back: list[str]) -> R.Profile:
    """`--link NAME=SPEC` (and `--link-back` of the same NAME) as a profile; one WAN per link."""
    def name(spec: str) -> str:
        head = spec.split(",", 1)[0]
        return head.split("=", 1)[0] if "=" in head else ""
    downs = {name(b): b for b in back}
    out = []
    for i, spec in enumerate(links, start=1):
        n = name(spec) or f"wan{i}"
        out.append(L.EmulatedLink(n, spec, downs.get(n, spec)))
    unknown = set(downs) - {l.name for l in out}
    if unknown:
        raise SystemExit(f"--link-back {sorted(unknown)}: no --link of that name")
    return R.Profile("custom", out)


def write_docs(path: Path, text: str) -> None:
    doc = path.read_text()
    begin, end = "<!-- lab-profiles:begin -->", "<!-- lab-profiles:end -->"
    if begin not in doc or end not in doc:
        raise SystemExit(f"{path}: no {begin} ... {end} markers")
    path.write_text(re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: f"{begin}\n{text}\n{end}", doc, flags=re.S))


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description="The TQUIC appliance lab in network namespaces (root).")
    ap.add_argument("--profile", default="equal", help=f"{', '.join(R.PROFILES)} or all (default equal)")
    ap.add_argument("--link", action="append", default=[], metavar="SPEC",
                    help="a WAN of your own, repeatable, instead of --profile: NAME=RATE,DELAY[,OPTION...] (docs/link-syntax.md)")
    ap.add_argument("--link-back", action="append", default=[], metavar="SPEC", help="the downlink of the --link of the same NAME")
    ap.add_argument("--seconds", type=float, default=None, help="the bulk transfer's length (default: the profile's)")
    ap.add_argument("--no-mptcp", action="store_true", help="skip the kernel MPTCP comparison")
    ap.add_argument("--tcp-buffers", type=int, default=0, metavar="MB",
                    help="the lab hosts' largest TCP send/receive buffer (tcp_wmem/tcp_rmem max; default: the kernel's)")
    ap.add_argument("--tcp-cc", default="", metavar="NAME", help="the transfers' TCP congestion control (iperf3 -C; default: the host's)")
    ap.add_argument("--streams", type=int, default=1, metavar="N", help="parallel TCP streams in each transfer (iperf3 -P; default 1)")
    ap.add_argument("--scheduler", default="", metavar="NAME",
                    help="the router's path scheduler ([tquic] scheduler: aggregate, weighted, ...; default tquicd's, aggregate)")
    ap.add_argument("--weights", default="", metavar="W1,W2,...", help="the router's [wan] weight of wan1, wan2, ... (for weighted)")
    ap.add_argument("--prefix", default=L.new_prefix("d"))
    ap.add_argument("--dir", type=Path, default=None, help="logs and configurations (default: a new /tmp directory)")
    ap.add_argument("--docs", type=Path, default=None, help="with --profile all: write the table into this Markdown file")
    args = ap.parse_args(argv)
    try:
        weights = [int(w) for w in args.weights.split(",")] if args.weights else []
    except ValueError:
        ap.error(f"--weights {args.weights}: whole numbers separated by commas, e.g. 2,1")
    tuning = L.RouterTuning(scheduler=args.scheduler, weights=weights)
    if args.link:
        profiles = [custom_profile(args.link, args.link_back)]
        if args.seconds:
            profiles[0].seconds = args.seconds
    else:
        names = R.PROFILES if args.profile == "all" else [args.profile]
        if any(n not in R.PROFILES for n in names):
            ap.error(f"--profile {args.profile}: one of {', '.join(R.PROFILES)} or all")
        profiles = [R.Profile.named(n, args.seconds) for n in names]
    directory = args.dir or Path(tempfile.mkdtemp(prefix="tquic-demo-"))
    # SIGTERM/SIGHUP as Ctrl-C: run_profile's finally cleans up.
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.default_int_handler)
    figures: list[R.Figures] = []
    interrupted = False
    for p in profiles:
        try:
            # One after the other, each cleaned up before the next: one prefix for all.
            f = R.run_profile(p, args.prefix, directory / p.name, say, with_mptcp=not args.no_mptcp,
                              tcp=L.HostTCP(buffer_mb=args.tcp_buffers, cc=args.tcp_cc, streams=args.streams), tuning=tuning)
        except KeyboardInterrupt:
            interrupted = True
            f = R.Figures(profile=p.name, sum_link_mbps=0, failures=["interrupted"])
        figures.append(f)
        for x in f.failures:
            say(f"FAIL ({f.profile}): {x}")
        say(f.flows_line())
        say(f.mptcp_line())
        say(f.result_line())
        if interrupted:
            break
    if len(figures) > 1:
        text = R.table(figures)
        say(text)
        if args.docs:
            write_docs(args.docs, text)
    failed = any(f.failures for f in figures)
    if failed:
        say(f"logs: {directory}")
    (directory / "RESULT").write_text(figures[-1].result_line() + "\n")
    return 1 if failed or interrupted else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
