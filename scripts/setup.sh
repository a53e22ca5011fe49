#!/usr/bin/env bash
# Installs what building and testing need on a fresh Debian 12 machine (run as root):
# Debian packages, and a Python venv (.venv) with the aioquic interop peer and pytest.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # openssl: test certificates; iproute2: namespaces; libmnl/libnftables/libsystemd: what LinuxNet
    # links (rtnetlink, nftables, sd_notify); nftables, iperf3, iputils-ping: the end-to-end tests; ethtool:
    # tquic-netem's test namespaces and the lab; mptcpize: the lab's kernel MPTCP comparison.
    apt-get install -y -qq openssl iproute2 ca-certificates pkg-config \
        libmnl-dev libnftables-dev libsystemd-dev nftables iperf3 iputils-ping ethtool mptcpize >/dev/null
    # chromium: the dashboard's headless-browser check in the end-to-end tests and the lab.
    apt-get install -y -qq chromium >/dev/null
    # The package tests (Tests/pkg): building .debs, lintian, a signed apt repository, a clean
    # Debian root and booting it with systemd.
    apt-get install -y -qq --no-install-recommends debhelper dpkg-dev fakeroot lintian apt-utils gnupg \
        debootstrap systemd-container binutils >/dev/null
    python3 -c 'import venv, ensurepip' 2>/dev/null || apt-get install -y -qq python3-venv >/dev/null
fi
[ -x .venv/bin/python3 ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r Tests/interop/requirements.txt
