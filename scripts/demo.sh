#!/usr/bin/env bash
# The main job while only the cores exist: build tquic-peer, start a server on loopback and run a
# client against it (stream echo, a 5 MB transfer, datagrams, key update, a multipath transfer
# over three loopback paths, an HTTP/0.9 download), then the same client against the aioquic
# server (interop). Prints what each side reports.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
[ -x .venv/bin/python3 ] || scripts/setup.sh
swift build --product tquic-peer
BIN="$(swift build --show-bin-path)/tquic-peer"
CERTS=Tests/QUICTests/Fixtures
LOG=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

echo "== tquic-peer server on 127.0.0.1:4433"
"$BIN" server --listen 127.0.0.1:4433 --cert $CERTS/server.pem --key $CERTS/server.key --www "$ROOT" > "$LOG/server.log" 2>&1 &
PIDS+=($!)
sleep 0.5
echo "== tquic-peer client -> tquic-peer server"
time "$BIN" client --connect 127.0.0.1:4433 --ca $CERTS/ca.pem --stream "hello, QUIC" \
    --datagram "a datagram" --download-bytes 5000000 --key-update
echo "== multipath: two extra paths from 127.0.0.2 and 127.0.0.3 (draft-ietf-quic-multipath)"
"$BIN" client --connect 127.0.0.1:4433 --ca $CERTS/ca.pem --path 127.0.0.2 --path 127.0.0.3 --download-bytes 5000000
echo "== hq-interop download of README.md"
"$BIN" client --connect 127.0.0.1:4433 --ca $CERTS/ca.pem --get https://127.0.0.1:4433/README.md --downloads "$LOG/dl"
cmp README.md "$LOG/dl/README.md" && echo "README.md downloaded intact"

echo "== aioquic server on 127.0.0.1:4434"
.venv/bin/python3 Tests/interop/aioquic_peer.py server --listen 127.0.0.1:4434 --cert $CERTS/server.pem --key $CERTS/server.key > "$LOG/aioquic.log" 2>&1 &
PIDS+=($!)
sleep 1.5
echo "== tquic-peer client -> aioquic server"
"$BIN" client --connect 127.0.0.1:4434 --ca $CERTS/ca.pem --stream "hello, aioquic" --datagram "dg" --download-bytes 1000000 --chacha20
echo "== server logs"
cat "$LOG/server.log" "$LOG/aioquic.log"
