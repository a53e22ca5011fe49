#!/usr/bin/env bash
# End-to-end tests of the appliance (root): builds release tquicd, tquicctl, tquic-netem and
# tquic-sim (.build-release, incremental), then runs pytest Tests/e2e: namespaces from
# scripts/lab-net.sh with tquicd as VPS and router(s), ping/iperf3/UDP probe through the tunnel
# (Tests/e2e/test_appliance.py says what each test checks), and the lab's `equal` profile through
# tquic-netem beside kernel MPTCP (test_lab_profile.py). About 2 minutes after the build. Arguments go to pytest (-k NAME, -x, -s
# for the figures). TQUIC_BIN_DIR=DIR uses binaries from DIR instead (no build).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
[ "$(id -u)" = 0 ] || { echo "e2e: needs root (network namespaces, TUN, nftables)" >&2; exit 1; }
if [ -z "${TQUIC_BIN_DIR:-}" ]; then
    for product in tquicd tquicctl tquic-netem tquic-sim; do
        swift build -c release --product "$product" --scratch-path .build-release
    done
fi
exec .venv/bin/pytest -q -p no:cacheprovider -rxXfE Tests/e2e "$@"
