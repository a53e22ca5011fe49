#!/usr/bin/env bash
# The project's test command (README "Tests"; CI runs it through .ci/run):
#   0. style                    scripts/lint.sh: swift format lint --strict (docs/code-style.md)
#   1. swift test               unit, RFC-vector, codec and in-memory connection tests
#   2. interop (pytest)         tquic-peer against aioquic over UDP on loopback, both directions
#   3. fuzz smoke               each libFuzzer target for a short while (FUZZ_SECONDS, default 20)
#   4. simulator targets        tquic-sim (release) scenarios checked against the bonding targets
#   5. benchmark smoke          scripts/bench.sh --quick prints the data-plane figures (no assertions)
#   6. end-to-end (root)        scripts/e2e.sh: release tquicd/tquicctl in network namespaces, ping,
#                               iperf3 and a UDP probe through the tunnel (skipped when not root)
#   7. VPN benchmark smoke      scripts/bench-vpn.sh 2 (root): tquic against OpenVPN and
#                               wireguard-go on one veth, figures only (docs/vpn-benchmark.md)
#   8. link emulator (root)     Tests/netem: tquic-netem between namespaces: delay, rate, loss,
#                               outage, offloads (pytest; skipped when not root)
#   9. packages (root)          Tests/pkg/test-packages.sh: tquic-router and tquic-vps built, lintian,
#                               installed and purged in a debootstrapped Debian 12 root, apt from a
#                               signed repository, booted with systemd-nspawn (docs/packaging.md)
# Needs the Python venv made by scripts/setup.sh (aioquic, pytest) and openssl.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

echo "== style: swift format lint --strict (scripts/lint.sh)"
scripts/lint.sh

echo "== build"
swift build --build-tests

echo "== swift test"
swift test --skip-build

echo "== fuzz smoke (${FUZZ_SECONDS:-20} s per target)"
scripts/fuzz.sh all "${FUZZ_SECONDS:-20}"

echo "== bonding simulator targets (release build of tquic-sim)"
swift build -c release --product tquic-sim --scratch-path .build-release
.venv/bin/pytest -q -p no:cacheprovider Tests/sim

echo "== benchmark smoke run (figures, not assertions)"
# The loopback download's baseline build (another cold release build of an old commit) is left to
# the full `scripts/bench.sh`: CI prints the new code's figures only.
TQUIC_BASELINE_COMMIT=${TQUIC_BASELINE_COMMIT:-none} scripts/bench.sh --quick

echo "== interop with aioquic"
TQUIC_PEER="$(swift build --show-bin-path)/tquic-peer" .venv/bin/pytest -q -p no:cacheprovider Tests/interop

echo "== end-to-end: the appliance in network namespaces (scripts/e2e.sh)"
if [ "$(id -u)" = 0 ]; then
    scripts/e2e.sh
else
    echo "skipped: needs root (network namespaces, TUN, nftables)"
fi

echo "== data-plane benchmark smoke: tquic, OpenVPN, wireguard-go on one veth (scripts/bench-vpn.sh 2; figures, not assertions)"
if [ "$(id -u)" = 0 ]; then
    TQUIC_BIN_DIR=.build-release/release scripts/bench-vpn.sh 2
else
    echo "skipped: needs root (network namespaces, TUN, uprobes)"
fi

echo "== link emulator: tquic-netem in network namespaces (Tests/netem)"
if [ "$(id -u)" = 0 ]; then
    TQUIC_NETEM="$(swift build --show-bin-path)/tquic-netem" .venv/bin/pytest -q -p no:cacheprovider Tests/netem
else
    echo "skipped: needs root (network namespaces)"
fi

echo "== packages: build, lintian, install in a clean Debian 12 root, apt, boot (Tests/pkg)"
if [ "$(id -u)" = 0 ]; then
    timeout 1200 Tests/pkg/test-packages.sh
else
    echo "skipped: needs root (debootstrap, chroot, systemd-nspawn)"
fi
