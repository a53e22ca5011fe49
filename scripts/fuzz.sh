#!/usr/bin/env bash
# libFuzzer + AddressSanitizer over the pure wire code (no BoringSSL, no Foundation).
#
# usage: scripts/fuzz.sh TARGET [SECONDS]
#   TARGET   frames | transport-parameters | packet-header | all
#   SECONDS  run time per target (default 60), passed as -max_total_time
#
# Environment:
#   FUZZ_EXTRA_SOURCES  extra Swift files (space-separated, absolute or relative to the repo root)
#                       compiled into every target, e.g. a pure packet header parser.
#   FUZZ_ARGS           extra libFuzzer flags, e.g. "-jobs=2 -workers=2" or "-max_len=4096".
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

run_target() { # name harness seeds...
    local name=$1 harness=$2; shift 2
    local bin=$OUT/$name corpus=$OUT/corpus-$name artifacts=$OUT/artifacts-$name
    mkdir -p "$corpus" "$artifacts"
    echo "== building $name"
    # ld.gold warns about every ASan register thunk ("Cannot export local symbol"): keep the log quiet.
    if ! swiftc -sanitize=fuzzer,address -parse-as-library -O -g -module-name QUICFuzz \
        "${SOURCES[@]}" "$ROOT/Tests/Fuzz/$harness" -o "$bin" >"$OUT/build-$name.log" 2>&1; then
        grep -v 'Cannot export local symbol' "$OUT/build-$name.log" >&2 || true
        echo "== $name: build FAILED (full log: $OUT/build-$name.log)" >&2
        return 1
    fi
    grep -v 'Cannot export local symbol' "$OUT/build-$name.log" || true
    write_seeds "$corpus" "$@"
    if [[ -d $ROOT/Tests/Fuzz/corpus/$name ]]; then
        cp -n "$ROOT/Tests/Fuzz/corpus/$name"/* "$corpus"/ 2>/dev/null || true
    fi
    echo "== fuzzing $name for ${SECS}s"
    local rc=0
    # shellcheck disable=SC2086
    "$bin" -max_total_time="$SECS" -print_final_stats=1 -artifact_prefix="$artifacts/" \
        ${FUZZ_ARGS:-} "$corpus" || rc=$?
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
    all)
        run_target frames FrameFuzz.swift "${FRAME_SEEDS[@]}" || status=1
        run_target transport-parameters TransportParametersFuzz.swift "${TP_SEEDS[@]}" || status=1
        run_target packet-header PacketHeaderFuzz.swift "${PH_SEEDS[@]}" || status=1
        ;;
    *) usage ;;
esac
exit $status
