#!/usr/bin/env bash
# How fast tquic-netem forwards (root): iperf3 TCP for SECONDS between two namespaces bridged by a
# release tquic-netem with an unshaped link (unlimited rate; one-way delay 0, then 10 ms), against
# a baseline measured in the same run: the kernel's own bridge between the same veths. Prints per
# run the goodput, tquic-netem's CPU time as a share of one core, and its final statistics (drops
# by cause, release lateness). The topology is scripts/netem-net.sh's (MTU-sized frames: GSO, TSO,
# GRO and checksum offload off on the veths).
#
# usage: scripts/netem-bench.sh [SECONDS] [MTU]      (default 5 s, 1500)
#        TQUIC_NETEM=path/to/tquic-netem to skip the release build
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECONDS_RUN=${1:-5}; MTU=${2:-1500}
[ "$(id -u)" = 0 ] || { echo "netem-bench.sh: needs root (network namespaces)" >&2; exit 1; }
if [ -z "${TQUIC_NETEM:-}" ]; then
    swift build -c release --product tquic-netem --scratch-path "$ROOT/.build-release" >&2
    TQUIC_NETEM="$(swift build -c release --scratch-path "$ROOT/.build-release" --show-bin-path)/tquic-netem"
fi
P="tqnb-$$"
NET="$ROOT/scripts/netem-net.sh"
LOG=$(mktemp -d)
NETEM_PID=""
cleanup() {
    [ -n "$NETEM_PID" ] && kill "$NETEM_PID" 2>/dev/null || true
    "$NET" down "$P"
    rm -rf "$LOG"
}
trap cleanup EXIT
"$NET" up "$P" "$MTU"
x() { ip netns exec "$P-$1" "${@:2}"; }

# CPU seconds (user + system) of a process so far.
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"; }

# iperf3 TCP a → b; prints the receiver's Mbit/s.
iperf() {
    ip netns exec "$P-b" iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
    local server=$!
    sleep 0.3
    timeout $((SECONDS_RUN + 20)) ip netns exec "$P-a" iperf3 -c 10.77.0.2 -p 5201 -t "$SECONDS_RUN" -J >"$LOG/iperf.json"
    wait "$server" || true
    python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"] / 1e6))' "$LOG/iperf.json"
}

echo "tquic-netem bench: iperf3 TCP ${SECONDS_RUN} s, MTU $MTU, $(nproc) cores"

# Baseline: the kernel bridges the same two veths.
x m ip link add br0 type bridge
x m ip link set dev a master br0; x m ip link set dev b master br0; x m ip link set dev br0 up
sleep 0.5
baseline=$(iperf)
echo "kernel bridge (baseline): $baseline Mbit/s"
x m ip link del br0

# Unshaped with delay 0 and 10 ms, then shaped at 500 Mbit/s and 1 Gbit/s (serialisation and the default queue
# of one 20 ms BDP in the way): the emulator must carry 500 Mbit/s with room to spare. Each once
# under the normal scheduler and once with --realtime (SCHED_FIFO), which keeps the release times
# when iperf3 and the kernel's TCP work keep both cores busy.
for link in unlimited,0 unlimited,10ms 500mbit,10ms 1gbit,10ms; do
    for realtime in 0 10; do
        # Not through x(): `ip netns exec` execs tquic-netem, so $! is its pid.
        ip netns exec "$P-m" "$TQUIC_NETEM" --a a --b b --link "bench=$link" --realtime "$realtime" 2>"$LOG/netem.err" &
        NETEM_PID=$!
        for _ in $(seq 100); do grep -q "ready:" "$LOG/netem.err" && break; sleep 0.05; done
        before=$(cpu_seconds "$NETEM_PID"); t0=$(date +%s.%N)
        mbps=$(iperf)
        after=$(cpu_seconds "$NETEM_PID"); t1=$(date +%s.%N)
        kill -TERM "$NETEM_PID"; wait "$NETEM_PID" || true; NETEM_PID=""
        cpu=$(python3 -c "print(round(100 * ($after - $before) / ($t1 - $t0)))")
        ratio=$(python3 -c "print(round(100 * $mbps / $baseline))")
        echo "tquic-netem --link bench=$link --realtime $realtime: $mbps Mbit/s ($ratio % of the kernel bridge), tquic-netem CPU $cpu % of one core"
        sed -n 's/^tquic-netem: final: /  final: /p' "$LOG/netem.err"
    done
done
