#!/usr/bin/env bash
# Section 5 of scripts/bench.sh: a real-socket loopback download. `tquic-peer server` (ALPN
# hq-interop) serves one file and `tquic-peer client --get ... --downloads DIR` fetches it over
# 127.0.0.1; the same download runs with a baseline build of an older commit (default: 07f8b23,
# the code before batched and GSO/GRO sockets), so the ratio is measured in the same run.
#
# usage: scripts/bench-download.sh [--quick] [--bytes N] [--runs N]
#   --bytes N    file size in bytes (default 300000000; --quick: 50000000)
#   --runs N     downloads per variant, interleaved, the best is reported (default 3; --quick: 1)
# environment:
#   TQUIC_BENCH_SCRATCH      release build of this tree (default .build-release)
#   TQUIC_BASELINE_COMMIT    the baseline commit (default 07f8b23); "none" skips the baseline
#   TQUIC_BASELINE_DIR       its worktree, build and binary (default .build-baseline: src/, build/,
#                            tquic-peer-COMMIT)
#
# Figures, per variant (baseline; this tree with GSO; this tree with --no-gso):
#   Mbit/s        file bits / the client's wall time (process start to exit, handshake included)
#   CPU s         user + system time of BOTH processes: the client's from its rusage, the
#                 server's as the change of utime + stime in /proc/PID/stat over the download
#   Mbit/CPU-s    file bits / CPU s: the cost per bit, which a busy machine hurts less than Mbit/s
#   x baseline    Mbit/CPU-s over the baseline's
# Both processes share the machine's cores with whatever else runs; the load average is printed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BYTES=300000000
RUNS=3
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) BYTES=50000000; RUNS=1 ;;
        --bytes) BYTES=$2; shift ;;
        --runs) RUNS=$2; shift ;;
        *) echo "bench-download.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
SCRATCH=${TQUIC_BENCH_SCRATCH:-.build-release}
BASELINE=${TQUIC_BASELINE_COMMIT:-07f8b23}
BASEDIR=$(realpath -m "${TQUIC_BASELINE_DIR:-.build-baseline}")

swift build -c release --product tquic-peer --scratch-path "$SCRATCH" >&2
NEW="$SCRATCH/release/tquic-peer"
VARIANTS=("new (GSO)|$NEW|" "new (no GSO)|$NEW|--no-gso")
if [ "$BASELINE" != none ]; then
    # The baseline's own worktree (detached, outside the branch) and scratch path; its binary is
    # kept as $BASEDIR/tquic-peer-COMMIT, so only the first run builds it.
    COMMIT=$(git rev-parse "$BASELINE^{commit}")
    BASEBIN="$BASEDIR/tquic-peer-$COMMIT"
    if [ ! -x "$BASEBIN" ]; then
        if [ ! -e "$BASEDIR/src/Package.swift" ]; then
            mkdir -p "$BASEDIR"
            git worktree add --detach "$BASEDIR/src" "$COMMIT" >&2
        elif [ "$(git -C "$BASEDIR/src" rev-parse HEAD)" != "$COMMIT" ]; then
            git -C "$BASEDIR/src" checkout --detach -q "$COMMIT"
        fi
        (cd "$BASEDIR/src" && swift build -c release --product tquic-peer --scratch-path "$BASEDIR/build" >&2)
        cp "$BASEDIR/build/release/tquic-peer" "$BASEBIN"
    fi
    VARIANTS=("baseline $BASELINE|$BASEBIN|" "${VARIANTS[@]}")
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tquic-download.XXXXXX")
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/www"
head -c "$BYTES" /dev/urandom > "$WORK/www/file"
FIXTURES="$ROOT/Tests/QUICTests/Fixtures"
TICK=$(getconf CLK_TCK)

# utime + stime of a process in seconds (/proc/PID/stat fields 14 and 15, after the comm field).
cpu_seconds() {
    local stat rest
    stat=$(cat "/proc/$1/stat")
    rest=${stat##*) }
    awk -v t="$TICK" '{ printf "%.3f", ($12 + $13) / t }' <<<"$rest"
}

# One download; sets WALL and CPU (seconds).
download() {
    local binary=$1 flags=$2 port=$((20000 + RANDOM % 20000))
    rm -rf "$WORK/dl"
    # shellcheck disable=SC2086
    "$binary" server --listen "127.0.0.1:$port" --cert "$FIXTURES/server.pem" --key "$FIXTURES/server.key" \
        --alpn hq-interop --www "$WORK/www" $flags >"$WORK/server.out" 2>"$WORK/server.err" &
    SERVER_PID=$!
    for _ in $(seq 100); do grep -q "listening on" "$WORK/server.out" 2>/dev/null && break; sleep 0.05; done
    local before after times
    before=$(cpu_seconds "$SERVER_PID")
    # bash's time reports the child's rusage: user and system seconds, and the wall time.
    times=$( { TIMEFORMAT='%R %U %S'; time "$binary" client --connect "127.0.0.1:$port" --insecure \
        --get "https://127.0.0.1:$port/file" --downloads "$WORK/dl" --timeout 300 $flags \
        >"$WORK/client.out" 2>"$WORK/client.err"; } 2>&1 ) || { echo "download failed:" >&2; cat "$WORK/client.err" >&2; exit 1; }
    after=$(cpu_seconds "$SERVER_PID")
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
    [ "$(stat -c %s "$WORK/dl/file")" = "$BYTES" ] || { echo "download is $(stat -c %s "$WORK/dl/file") bytes, expected $BYTES" >&2; exit 1; }
    read -r WALL CPU < <(awk -v t="$times" -v b="$before" -v a="$after" 'BEGIN { split(t, x, " "); printf "%.3f %.3f\n", x[1], x[2] + x[3] + a - b }')
}

declare -A BEST_WALL BEST_CPU
for _ in $(seq "$RUNS"); do
    for v in "${VARIANTS[@]}"; do
        IFS='|' read -r name binary flags <<<"$v"
        download "$binary" "$flags"
        wall=$WALL cpu=$CPU
        printf "   %-20s %8.3f s wall %8.3f CPU s\n" "$name" "$wall" "$cpu" >&2
        # The best run is the one with the most Mbit per CPU second.
        if [ -z "${BEST_CPU[$name]:-}" ] || awk -v c="$cpu" -v b="${BEST_CPU[$name]}" 'BEGIN { exit !(c < b) }'; then
            BEST_CPU[$name]=$cpu; BEST_WALL[$name]=$wall
        fi
    done
done

echo
echo "5. Loopback download: hq-interop, $BYTES bytes over 127.0.0.1, tquic-peer client and server (best of $RUNS; load $(cut -d' ' -f1 /proc/loadavg))"
printf "   %-20s %10s %10s %12s %11s\n" variant "Mbit/s" "CPU s" "Mbit/CPU-s" "x baseline"
BASE_EFFICIENCY=
for v in "${VARIANTS[@]}"; do
    IFS='|' read -r name _ _ <<<"$v"
    read -r rate efficiency < <(awk -v b="$BYTES" -v w="${BEST_WALL[$name]}" -v c="${BEST_CPU[$name]}" \
        'BEGIN { printf "%.0f %.0f\n", b * 8 / 1e6 / w, b * 8 / 1e6 / c }')
    [ -z "$BASE_EFFICIENCY" ] && [[ $name == baseline* ]] && BASE_EFFICIENCY=$efficiency
    ratio=$( [ -n "$BASE_EFFICIENCY" ] && awk -v e="$efficiency" -v b="$BASE_EFFICIENCY" 'BEGIN { printf "%.2f", e / b }' || echo "-")
    printf "   %-20s %10s %10s %12s %11s\n" "$name" "$rate" "${BEST_CPU[$name]}" "$efficiency" "$ratio"
done
