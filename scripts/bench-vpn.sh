#!/usr/bin/env bash
# The data-plane benchmark of issue 13 (root): one iperf3 TCP stream for SECONDS through tquic
# (one path), OpenVPN 2.6 (UDP, AES-128-GCM, userspace) and wireguard-go, each set up in turn
# between the same two network namespaces on one unshaped veth pair, plus the bare veth; for each
# the Mbit/s and the Mbit per busy CPU-second of the whole machine (/proc/stat), tquic's ratios to
# OpenVPN (target 4) and wireguard-go (target 3), and tquicd's heap allocations per forwarded
# packet (bpftrace uprobes on libc's allocator, target 0). Ends with one line a script can read:
#   BENCH tquic_mbps=… tquic_mbit_per_cpu_s=… openvpn_mbps=… … ratio_openvpn=… ratio_wggo=… allocs_per_packet=…
# Tests/bench/vpn_bench.py does the work (its header says how); docs/vpn-benchmark.md has figures.
#
# usage: scripts/bench-vpn.sh [SECONDS] [--profile] [--only veth,tquic,openvpn,wggo] [--no-allocs] [--keep DIR]
#        (default 10 s; `scripts/bench-vpn.sh 2` is the quick run, about 20 s once the packages are there)
#        TQUIC_BIN_DIR=DIR takes tquicd and tquicctl from DIR (no build); otherwise they are built
#        (release, .build-release, incremental) as scripts/e2e.sh does.
# Installs what it lacks with apt-get: openvpn, wireguard-go, wireguard-tools, iperf3, bpftrace,
# openssl (and linux-perf with --profile). Exit status: 0 when every setup and transfer worked,
# whether or not the targets were met; 1 when something failed; 2 for bad arguments or no root.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
[ "$(id -u)" = 0 ] || { echo "bench-vpn.sh: needs root (network namespaces, TUN, uprobes)" >&2; exit 2; }
RUN_SECONDS=10
if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+([.][0-9]+)?$ ]]; then RUN_SECONDS=$1; shift; fi

# command:package pairs; perf only when profiling.
wanted=(openvpn:openvpn wireguard-go:wireguard-go wg:wireguard-tools iperf3:iperf3 bpftrace:bpftrace
        openssl:openssl ip:iproute2 ss:iproute2 ping:iputils-ping python3:python3)
for a in "$@"; do [ "$a" = --profile ] && wanted+=(perf:linux-perf); done
missing=()
for pair in "${wanted[@]}"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    echo "bench-vpn.sh: installing ${missing[*]}" >&2
    apt_install() {
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            -o DPkg::Lock::Timeout=120 "$@" >/dev/null
    }
    if ! apt_install "${missing[@]}"; then
        apt-get update -qq -o DPkg::Lock::Timeout=120 >/dev/null
        apt_install "${missing[@]}"
    fi
fi

if [ -z "${TQUIC_BIN_DIR:-}" ]; then
    for product in tquicd tquicctl; do
        swift build -c release --product "$product" --scratch-path .build-release >&2
    done
    TQUIC_BIN_DIR="$ROOT/.build-release/release"
fi

PY=python3
[ -x "$ROOT/.venv/bin/python" ] && PY="$ROOT/.venv/bin/python"
exec "$PY" "$ROOT/Tests/bench/vpn_bench.py" --seconds "$RUN_SECONDS" --bin-dir "$TQUIC_BIN_DIR" "$@"
