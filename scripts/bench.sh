#!/usr/bin/env bash
# Builds tquic-bench in release mode and runs it (sections 1-4; all arguments go to tquic-bench),
# then the real-socket loopback download of section 5 (scripts/bench-download.sh).
#
# usage: scripts/bench.sh [--quick] [--json] [--bytes N] [--payload N] [--iterations N] [--runs N]
#                         [--suite S] [--transfer-suite S] [--trace-allocs N] [--skip-download] ...
#   scripts/bench.sh                 full run (~1 GiB transfer, 200k packets per protection figure,
#                                    a 300 MB download three times per variant)
#   scripts/bench.sh --quick         a few seconds plus a 50 MB download (what CI runs; the first
#                                    run also builds the download's baseline commit, minutes)
#   scripts/bench.sh --quick --json  one JSON object with the figures of sections 1-4
#   --skip-download                  sections 1-4 only
#
# Release build in .build-release (its own scratch path, so it never competes with a debug
# build in .build; TQUIC_BENCH_SCRATCH=DIR overrides it). Everything runs on one thread, times are that thread's CPU time, and the
# 1-minute load average is printed: on a busy machine the figures are noisier, not smaller.
#
# What the figures mean:
#
# 1. Packet protection (one 1350-byte 1-RTT packet, per cipher suite; best of --runs runs of
#    --iterations packets, runs of all variants interleaved):
#    seal ns/pkt, Gbit/s   PacketProtection.seal on a preallocated buffer: AEAD seal of the payload
#                          with the header as AAD, tag appended, then header protection. Gbit/s
#                          counts all 1350 bytes.
#    open ns/pkt, Gbit/s   restore the sealed packet (1350-byte copy, printed separately), then
#                          removeHeaderProtection + openPayload.
#    base                  the raw BoringSSL AEAD alone (PacketAEAD.seal / .open, no header
#                          protection); the open baseline includes the same restore copy.
#    x base                QUIC / baseline time: the cost of header protection and the Swift
#                          layer on top of the AEAD (1.00 = none).
#    allocs/pkt            heap allocations per packet (expected 0).
#
# 2. DATAGRAM transfer: one client Connection and one server Endpoint in the same process, no
#    sockets; each client datagram is handed straight to the server and the server's ACKs straight
#    back, on a fake clock that advances 1 us per datagram. Payload per datagram defaults to
#    client.maxDatagramPayloadSize (--payload overrides). The client application writes each payload
#    into a slot of the connection (the zero-copy send; --array-send queues arrays instead).
#    --qlog-digest adds a hash of both ends' qlog events after the handshake: two builds that
#    behave the same (same packets, sizes and times for the same seed) print the same digest.
#    payload throughput    application payload delivered per second of CPU time, in Gbit/s. One
#                          core runs both ends, so one end alone would sustain roughly twice this.
#                          (wall) is the same per wall-clock second; CPU share = CPU / wall time.
#    packets/s             UDP datagrams per CPU second, client->server and both directions.
#    ns per datagram       CPU time per delivered datagram: send, receive, ACKs, at both ends.
#    sent/delivered        datagrams the application queued / the server application received;
#                          the sender never overfills the send queue, so any difference is a drop
#                          inside QUIC (datagramsDropped) or a lost packet (packetsLost).
#
# 6. Tunnel engine (TunnelBench.swift): 1200-byte inner IPv4 packets through the router's
#    TunnelEngine, the client connection, the server endpoint and the VPS's TunnelEngine (uplink),
#    and back (downlink), in memory on the same fake clock; ns and heap allocations per forwarded
#    inner packet after a warm-up (expected 0 allocations). --skip-tunnel leaves it out.
#
# 3. Heap allocations per delivered datagram, in the measured section (after warm-up), split by
#    the call that made them (client poll = packet assembly and seal, server receive = routing,
#    open, frame decoding, ...). Counted by interposing malloc/calloc/realloc/free and the aligned
#    variants (Sources/CAllocationCounter, Linux/glibc only; elsewhere shown as n/a).
#    To see where they come from:
#      .build-release/release/tquic-bench --skip-crypto --quick --trace-allocs 30 2>trace.txt
#    and resolve the tquic-bench(+0x...) frames with
#      llvm-symbolizer --obj=.build-release/release/tquic-bench --relative-address 0x... | swift-demangle
#
# 5. Loopback download (scripts/bench-download.sh, which explains the figures): tquic-peer server
#    and client over 127.0.0.1, Mbit/s and Mbit per CPU second of both processes, for a baseline
#    build of commit 07f8b23 (before batched GSO/GRO sockets) and this tree with and without GSO.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SCRATCH=${TQUIC_BENCH_SCRATCH:-.build-release}
BENCH_ARGS=()
DOWNLOAD_ARGS=()
DOWNLOAD=yes
for a in "$@"; do
    case "$a" in
        --skip-download) DOWNLOAD=no ;;
        --json) DOWNLOAD=no; BENCH_ARGS+=("$a") ;;
        --quick) DOWNLOAD_ARGS+=("$a"); BENCH_ARGS+=("$a") ;;
        *) BENCH_ARGS+=("$a") ;;
    esac
done
swift build -c release --product tquic-bench --scratch-path "$SCRATCH" >&2
"$SCRATCH/release/tquic-bench" "${BENCH_ARGS[@]}"
if [ "$DOWNLOAD" = yes ]; then
    TQUIC_BENCH_SCRATCH=$SCRATCH scripts/bench-download.sh "${DOWNLOAD_ARGS[@]}"
fi
