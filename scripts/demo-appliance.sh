#!/usr/bin/env bash
# The appliance demo and lab (`make demo`), on a fresh Debian 12 machine as root: installs what is
# needed (scripts/setup.sh), builds release tquicd, tquicctl, tquic-netem and tquic-sim, then
# Tests/e2e/demo.py: router, WANs and VPS in network namespaces (scripts/lab-net.sh), each WAN
# through its own tquic-netem with the links of the simulator's scenario of the same name
# (default profile `equal`: 2 x 50 Mbit/s, 10 ms), tquicd as VPS and router; ping idle and loaded,
# an iperf3 TCP transfer with a VoIP-like flow beside it, an inner QUIC download, wan1 cut
# mid-transfer, and kernel MPTCP over the same links. About a minute per profile after the build.
# The last line:
#
#   RESULT aggregate_mbps=X sum_link_mbps=Y ratio=Z failover_gap_ms=G tcp_survived=yes|no ping_idle_ms=A ping_loaded_ms=B metrics_paths=N dashboard=ok|fail profile=P
#
# Arguments go to demo.py: --profile equal|mptcp-15-5|fibre-satellite|lte-jitter|gigabit|all,
# --link NAME=SPEC (your own links, docs/link-syntax.md), --seconds S, --no-mptcp, --docs FILE.
# Exit status 0 only if every step worked and the targets held. Everything is removed at exit,
# however it ends (demo.py's own cleanup, then the trap). DEMO_SKIP_SETUP=1 skips setup.sh;
# TQUIC_BIN_DIR=DIR uses binaries from DIR (no build).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
[ "$(id -u)" = 0 ] || { echo "demo: run as root (network namespaces, TUN, nftables)" >&2; exit 1; }
PREFIX=d$(($$ % 100000))
WORK=$(mktemp -d /tmp/tquic-demo.XXXXXX)

cleanup() {
    local rc=$?
    # What demo.py could not clean (it was killed): processes in our namespaces, the namespaces.
    local n
    for n in $(ip netns list 2>/dev/null | awk -v p="$PREFIX-" 'index($1, p) == 1 {print $1}'); do
        for pid in $(ip netns pids "$n" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
        ip netns del "$n" 2>/dev/null || true
    done
    if [ ! -e "$WORK/RESULT" ]; then  # demo.py did not get to its line (setup, build, killed)
        [ "$rc" = 0 ] && rc=1
        echo "FAIL: the demo did not complete; logs: $WORK"
        echo "RESULT aggregate_mbps=0.0 sum_link_mbps=0 ratio=0.000 failover_gap_ms=0.0 tcp_survived=no ping_idle_ms=0.0 ping_loaded_ms=0.0 metrics_paths=0 dashboard=fail"
    fi
    [ "$rc" = 0 ] && rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
child=
trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null; [ -n "$child" ] || exit 130' INT TERM HUP

if [ -z "${DEMO_SKIP_SETUP:-}" ]; then
    echo "== setup: Debian packages and the Python venv (scripts/setup.sh)"
    scripts/setup.sh
fi
if [ -z "${TQUIC_BIN_DIR:-}" ]; then
    echo "== build: release tquicd, tquicctl, tquic-netem and tquic-sim (.build-release)"
    for product in tquicd tquicctl tquic-netem tquic-sim; do
        if ! swift build -c release --product "$product" --scratch-path .build-release >"$WORK/build-$product.log" 2>&1; then
            tail -n 40 "$WORK/build-$product.log"; exit 1
        fi
        tail -n 1 "$WORK/build-$product.log"
    done
fi
PY=.venv/bin/python3
[ -x "$PY" ] || PY=python3
# In the background so a signal reaches the trap at once; demo.py takes SIGTERM as its cue to clean
# up and still print its RESULT line.
"$PY" Tests/e2e/demo.py --prefix "$PREFIX" --dir "$WORK" "$@" &
child=$!
while :; do
    rc=0; wait "$child" || rc=$?
    kill -0 "$child" 2>/dev/null || break  # wait was only interrupted by a signal
done
exit "$rc"
