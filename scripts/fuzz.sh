#!/usr/bin/env bash
# libFuzzer + AddressSanitizer over the pure wire code (no BoringSSL, no Foundation), and over a
# whole server connection past its handshake (target `connection`, with BoringSSL).
#
# usage: scripts/fuzz.sh TARGET [SECONDS]
#   TARGET   frames | transport-parameters | packet-header | connection | tunnel-frame | flow-key | config | all
#   SECONDS  run time per target (default 60), passed as -max_total_time
#
# Environment:
#   FUZZ_EXTRA_SOURCES  extra Swift files (space-separated, absolute or relative to the repo root)
#                       compiled into every parser target, e.g. a pure packet header parser.
#   FUZZ_ARGS           extra libFuzzer flags, e.g. "-jobs=2 -workers=2" or "-max_len=4096".
#   FUZZ_BORINGSSL_SCRATCH  SwiftPM scratch path whose release build of CNIOBoringSSL the
#                       `connection` target links (default .build-release, the one scripts/test.sh
#                       builds tquic-sim in, so CI compiles BoringSSL once for both).
#
# The `connection` target (Tests/Fuzz/ConnectionFuzz.swift) is built in three swiftc steps into
# .build-fuzz/connection-build: the Congestion module, the QUIC module (both with the sanitizers,
# importing CNIOBoringSSL through swift-nio-ssl's module map) and the harness, linked with the
# BoringSSL objects of `swift build -c release --target CNIOBoringSSL`. Modules are rebuilt only
# when a source is newer than their object file.
#
# The `tunnel-frame` and `flow-key` targets fuzz the tunnel's own parsers (Bonding: the tunnel frame
# decoder a VPS runs on every DATAGRAM, the inner IP/flow-key parser a router runs on every TUN
# packet), built from the pure Bonding sources.
#
# The `config` target fuzzes the /etc/tquic.conf parser (TQUICDaemon/Config, pure Swift) with
# SocketAddress and IPPrefix.
#
# Each target is built with `swiftc -sanitize=fuzzer,address -parse-as-library -O` into
# .build-fuzz/TARGET and run on the corpus .build-fuzz/corpus-TARGET, seeded with valid encodings
# (below) and with any files under Tests/Fuzz/corpus/TARGET/. A crash is saved under
# .build-fuzz/artifacts-TARGET/ and the script exits non-zero; reproduce with
#   .build-fuzz/TARGET .build-fuzz/artifacts-TARGET/crash-...
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 2; }
[[ $# -ge 1 && $# -le 2 ]] || usage
TARGET=$1
SECS=${2:-60}
[[ $SECS =~ ^[0-9]+$ ]] || usage

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$ROOT/.build-fuzz
mkdir -p "$OUT"

# Only the sources known to be pure Swift: files the other modules add (which may import
# BoringSSL) are deliberately not globbed.
shopt -s nullglob
SOURCES=(
    "$ROOT"/Sources/QUIC/Wire/*.swift
    "$ROOT"/Sources/QUIC/Packet/ConnectionID.swift
    "$ROOT"/Sources/QUIC/Packet/PacketType.swift
    "$ROOT"/Sources/QUIC/Packet/PacketHeader.swift
    "$ROOT"/Sources/QUIC/Packet/PacketNumber.swift
    "$ROOT"/Sources/QUIC/Frames/*.swift
    "$ROOT"/Sources/QUIC/TransportParameters/*.swift
)
BONDING_SOURCES=(
    "$ROOT"/Sources/Bonding/TunnelFrame.swift
    "$ROOT"/Sources/Bonding/TunnelSequence.swift
    "$ROOT"/Sources/Bonding/FlowKey.swift
)
CONFIG_SOURCES=(
    "$ROOT"/Sources/QUIC/Support/SocketAddress.swift
    "$ROOT"/Sources/QUIC/Support/IPPrefix.swift
    "$ROOT"/Sources/TQUICDaemon/Config/ConfigFile.swift
    "$ROOT"/Sources/TQUICDaemon/Config/DaemonConfiguration.swift
)
shopt -u nullglob
for extra in ${FUZZ_EXTRA_SOURCES:-}; do
    [[ $extra = /* ]] || extra=$ROOT/$extra
    [[ -f $extra ]] || { echo "fuzz.sh: FUZZ_EXTRA_SOURCES file not found: $extra" >&2; exit 2; }
    SOURCES+=("$extra")
done

# Seeds: hex of valid encodings (generated with Frame.encode / TransportParameters.encode).
FRAME_SEEDS=(
    01                                                                  # PING
    06000801020304050607080000000000000000000000000000000000000000      # CRYPTO + PADDING run
    020c190202010201020303010000010002                                  # ACK with ranges, ACK_ECN
    0f044064036162631104800100000408010a050802                          # STREAM, MAX_STREAM_DATA, RESET_STREAM, STOP_SENDING
    180201080102030405060708000102030405060708090a0b0c0d0e0f19000703090909  # NEW_CONNECTION_ID, RETIRE, NEW_TOKEN
    1a01020304050607081b000000000000002a1e1043e8120a14051500031704      # PATH_CHALLENGE/RESPONSE, HANDSHAKE_DONE, flow control
    1c0a0603626164                                                      # CONNECTION_CLOSE
    3102010230030405                                                    # DATAGRAM with and without length
    3e01090200047e7502007e7601017e7701027e780100000407070707000102030405060708090a0b0c0d0e0f7e7901007e7a047e7b047e7c0103  # multipath
)
TP_SEEDS=(
    010480007530030245c004048010000005048004000006048004000007048004000008024064090240640e01040f080102030405060708200244b03e01031b0447525345
    0008080706050403020101048000ea600210000102030405060708090a0b0c0d0e0f0404801000000a01040b01140c000d2dc000020101bb0000000000000000000000000000000000000405050505000102030405060708090a0b0c0d0e0f0f040303030310020404
)

# Seeds: whole datagrams (the first byte % 21 is also the short header connection ID length).
PAD1178=$(printf '00%.0s' {1..1178})
PH_SEEDS=(
    "c300000001088394c8f03e5157080000449e00000002$PAD1178"                     # RFC 9001 A.2 client Initial header + payload
    ff000000010008f067a5502a4262b5746f6b656e04a265ba2eff4d829058fb3f0f2496ba   # RFC 9001 A.4 Retry
    800000000008010203040506070805f067a5502a00000001ff00001d1a2a3a4a         # Version Negotiation (v1, draft-29, a reserved version)
    4883948c8f03e51570842b4d3a1e6e5f0c17d0d95c0a4f8a5a1b2c3d4e5f6071           # short header, CID length 0x48 % 21 = 9
    c50000000108010203040506070805a1b2c3d4e500140000000000000000000000000000000000000000e00000000108010203040506070800140000000000000000000000000000000000000000430102030405060708aabbccdd00000000000000000000000000000000  # coalesced Initial + Handshake + 1-RTT (0xc5 % 21 = 8-byte CIDs)
    c01a2a3a4a0401020304000102030405                                          # unknown version
)

write_seeds() { # dir hex...
    local dir=$1; shift
    local i=0 hex
    for hex in "$@"; do
        printf '%b' "$(sed 's/../\\x&/g' <<<"$hex")" >"$dir/seed-$i"
        i=$((i + 1))
    done
}

# Seeds of the `connection` target: programs for Tests/Fuzz/ConnectionFuzz.swift (op byte % 8:
# 0-3 frame of kind NEXT % 34, 4 send the packet, 5 let time pass, 6 pick path/address/key phase,
# 7 server application call).
CONN_SEEDS=(
    0007000010010400070000                      # STREAM on stream 0 with FIN, send, application reads
    00010002000000000004                        # PING, ACK of the handshake, send
    000e0000000400180000000004                  # NEW_CONNECTION_ID, RETIRE_CONNECTION_ID 0, send
    064100100102030400010004                    # new address on path 1: PATH_CHALLENGE, PING
    00130004                                    # HANDSHAKE_DONE from the client
    001601000004001a000300040015010100040018020102030405060708090a0b0c0d0e0f0004  # multipath frames
    0005ff0dff05ff                              # time passes (loss detection, idle timeout)
    0007020000400104000c0100000000040003080000ff04  # uni STREAM, STOP_SENDING, RESET_STREAM
    00070086c8000007008ac8000007008ec80004      # three overlapping out-of-order STREAM frames
)

# Seeds: tunnel frames (version 1, R bit, lanes, sequences) and inner packets for the flow key.
TF_SEEDS=(
    40010000002a0001450000                      # version 1, lane 1, sequence 42, lane sequence 1, IPv4 byte
    6fff01020304ffff60                          # R bit, lane 0xfff, sequence 0x01020304
    4000000000000000                            # header only (empty payload: refused)
    80010000000100010a                          # version 2 (refused)
)
FK_SEEDS=(
    4500001c0000400040110000c0a8010ac633640727111389000800000000  # IPv4 UDP 192.168.1.10:10001 → 198.51.100.7:5001
    450000280000400040060000c0a8010ac63364070050d4310000000000000000500200000000  # IPv4 TCP
    4500001c00002000401100000a0000010a000002                      # IPv4 first fragment (MF set)
    6000000000080640200100000000000000000000000000012001000000000000000000000000000200501f9000000000  # IPv6 TCP
    60000000000c2c40200100000000000000000000000000012001000000000000000000000000000211000001000000002711138900  # IPv6 fragment header then UDP
    450000540000400001010000c0a80101c0a801020800f7ff12340001      # ICMP echo
)

# Seeds: configuration files (text as hex is unreadable here, so they are written below).
CONFIG_SEEDS=()

# Builds .build-fuzz/connection (see the header). Objects are rebuilt only when stale.
build_connection() { # bin log
    local bin=$1 log=$2
    local scratch=${FUZZ_BORINGSSL_SCRATCH:-$ROOT/.build-release}
    local dir=$OUT/connection-build
    mkdir -p "$dir"
    local t0=$SECONDS
    swift build -c release --target CNIOBoringSSL --scratch-path "$scratch" >>"$log" 2>&1 || return 1
    local bssl=$scratch/release/CNIOBoringSSL.build
    local inc=$scratch/checkouts/swift-nio-ssl/Sources/CNIOBoringSSL/include
    [[ -d $bssl && -f $inc/module.modulemap ]] || { echo "no CNIOBoringSSL build in $scratch" >>"$log"; return 1; }
    if [[ ! -f $dir/libCNIOBoringSSL.a || -n $(find "$bssl" -name '*.o' -newer "$dir/libCNIOBoringSSL.a" | head -1) ]]; then
        rm -f "$dir/libCNIOBoringSSL.a"
        find "$bssl" -name '*.o' -print0 | xargs -0 ar rcs "$dir/libCNIOBoringSSL.a"
    fi
    local flags=(-sanitize=fuzzer,address -parse-as-library -O -g -I "$dir"
                 -Xcc -fmodule-map-file="$inc/module.modulemap" -Xcc -I"$inc")
    stale() { [[ ! -f $1 ]] || [[ -n $(find "${@:2}" -name '*.swift' -newer "$1" | head -1) ]]; }
    if stale "$dir/Congestion.o" "$ROOT/Sources/Congestion"; then
        swiftc "${flags[@]}" -wmo -module-name Congestion -emit-module -emit-module-path "$dir/Congestion.swiftmodule" \
            -c "$ROOT"/Sources/Congestion/*.swift -o "$dir/Congestion.o" >>"$log" 2>&1 || return 1
        rm -f "$dir/QUIC.o"
    fi
    if stale "$dir/QUIC.o" "$ROOT/Sources/QUIC"; then
        local quic=()
        mapfile -t quic < <(find "$ROOT/Sources/QUIC" -name '*.swift' | sort)
        swiftc "${flags[@]}" -wmo -module-name QUIC -emit-module -emit-module-path "$dir/QUIC.swiftmodule" \
            -c "${quic[@]}" -o "$dir/QUIC.o" >>"$log" 2>&1 || return 1
    fi
    swiftc "${flags[@]}" -module-name ConnectionFuzz "$ROOT/Tests/Fuzz/ConnectionFuzz.swift" \
        "$dir/QUIC.o" "$dir/Congestion.o" "$dir/libCNIOBoringSSL.a" -lstdc++ -o "$bin" >>"$log" 2>&1 || return 1
    echo "== connection built in $((SECONDS - t0)) s"
}

run_target() { # name harness seeds...
    local name=$1 harness=$2; shift 2
    local bin=$OUT/$name corpus=$OUT/corpus-$name artifacts=$OUT/artifacts-$name
    mkdir -p "$corpus" "$artifacts"
    echo "== building $name"
    # ld.gold warns about every ASan register thunk ("Cannot export local symbol"): keep the log quiet.
    local built=0
    : >"$OUT/build-$name.log"
    if [[ $name = connection ]]; then
        build_connection "$bin" "$OUT/build-$name.log" && built=1
    elif [[ $name = config ]]; then
        swiftc -sanitize=fuzzer,address -parse-as-library -O -g -module-name ConfigFuzz \
            "${CONFIG_SOURCES[@]}" "$ROOT/Tests/Fuzz/$harness" -o "$bin" >"$OUT/build-$name.log" 2>&1 && built=1
    elif [[ $name = tunnel-frame || $name = flow-key ]]; then
        swiftc -sanitize=fuzzer,address -parse-as-library -O -g -module-name BondingFuzz \
            "${BONDING_SOURCES[@]}" "$ROOT/Tests/Fuzz/$harness" -o "$bin" >"$OUT/build-$name.log" 2>&1 && built=1
    elif swiftc -sanitize=fuzzer,address -parse-as-library -O -g -module-name QUICFuzz \
        "${SOURCES[@]}" "$ROOT/Tests/Fuzz/$harness" -o "$bin" >"$OUT/build-$name.log" 2>&1; then
        built=1
    fi
    if [[ $built -ne 1 ]]; then
        grep -v 'Cannot export local symbol' "$OUT/build-$name.log" >&2 || true
        echo "== $name: build FAILED (full log: $OUT/build-$name.log)" >&2
        return 1
    fi
    [[ $name = connection ]] || grep -v 'Cannot export local symbol' "$OUT/build-$name.log" || true
    write_seeds "$corpus" "$@"
    # The config target starts from the example files, their key placeholders filled in.
    if [[ $name = config ]]; then
        for f in "$ROOT"/etc/*.conf; do
            sed -E 's#REPLACE_WITH_[A-Za-z_]+#AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=#' "$f" >"$corpus/example-$(basename "$f")"
        done
    fi
    if [[ -d $ROOT/Tests/Fuzz/corpus/$name ]]; then
        cp -n "$ROOT/Tests/Fuzz/corpus/$name"/* "$corpus"/ 2>/dev/null || true
    fi
    echo "== fuzzing $name for ${SECS}s"
    local rc=0 extra=()
    # The connection target does a TLS handshake per input: ASan's malloc stack traces cost a
    # sixth of its time (unset ASAN_OPTIONS to get them when reproducing a crash). Its RSS
    # limit is well above what a run needs (ASan's quarantine included), below the default.
    if [[ $name = connection ]]; then
        export ASAN_OPTIONS=${ASAN_OPTIONS:-malloc_context_size=0}
        extra=(-rss_limit_mb=1536)
    fi
    # Swift's crash backtracer would hang the process under ASan: let libFuzzer report instead.
    # shellcheck disable=SC2086
    SWIFT_BACKTRACE=enable=no "$bin" -max_total_time="$SECS" -print_final_stats=1 -artifact_prefix="$artifacts/" \
        "${extra[@]}" ${FUZZ_ARGS:-} "$corpus" || rc=$?
    if [[ $rc -ne 0 ]]; then
        echo "== $name: fuzzer FAILED (exit $rc); artifacts in $artifacts" >&2
    else
        echo "== $name: no crash"
    fi
    return $rc
}

status=0
case $TARGET in
    frames) run_target frames FrameFuzz.swift "${FRAME_SEEDS[@]}" || status=1 ;;
    transport-parameters) run_target transport-parameters TransportParametersFuzz.swift "${TP_SEEDS[@]}" || status=1 ;;
    packet-header) run_target packet-header PacketHeaderFuzz.swift "${PH_SEEDS[@]}" || status=1 ;;
    connection) run_target connection ConnectionFuzz.swift "${CONN_SEEDS[@]}" || status=1 ;;
    tunnel-frame) run_target tunnel-frame TunnelFrameFuzz.swift "${TF_SEEDS[@]}" || status=1 ;;
    flow-key) run_target flow-key FlowKeyFuzz.swift "${FK_SEEDS[@]}" || status=1 ;;
    config) run_target config ConfigFuzz.swift "${CONFIG_SEEDS[@]}" || status=1 ;;
    all)
        run_target frames FrameFuzz.swift "${FRAME_SEEDS[@]}" || status=1
        run_target transport-parameters TransportParametersFuzz.swift "${TP_SEEDS[@]}" || status=1
        run_target packet-header PacketHeaderFuzz.swift "${PH_SEEDS[@]}" || status=1
        run_target connection ConnectionFuzz.swift "${CONN_SEEDS[@]}" || status=1
        run_target tunnel-frame TunnelFrameFuzz.swift "${TF_SEEDS[@]}" || status=1
        run_target flow-key FlowKeyFuzz.swift "${FK_SEEDS[@]}" || status=1
        run_target config ConfigFuzz.swift "${CONFIG_SEEDS[@]}" || status=1
        ;;
    *) usage ;;
esac
exit $status
