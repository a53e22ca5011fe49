#!/usr/bin/env bash
# Three network namespaces for trying tquic-netem (its tests and scripts/netem-bench.sh; root):
#
#   PREFIX-a ──wan── [a]  PREFIX-m  [b] ──wan── PREFIX-b
#   10.77.0.1/24          tquic-netem --a a --b b         10.77.0.2/24
#
# The middle namespace holds the two veth ends, up and addressless (IPv6 off, so the kernel sends
# nothing of its own); tquic-netem bridges them. The end veths have GSO, TSO, GRO and checksum
# offload off (ethtool), so tquic-netem sees MTU-sized frames with complete checksums, and static
# neighbour entries, so no ARP crosses the emulated link; IPv6 is off in the ends too (no router
# solicitations or MLD reports mixed into a test's counts).
#
# With OFFLOADS=on the end veths keep the kernel's default offloads (checksum offload, GSO, TSO):
# tquic-netem then gets 64 KB super-frames and partial checksums, and must cope.
#
# usage: scripts/netem-net.sh up PREFIX [MTU]    build (MTU default 1500)
#        scripts/netem-net.sh down PREFIX        delete PREFIX-a, PREFIX-m, PREFIX-b
# then:  ip netns exec PREFIX-m tquic-netem --a a --b b --link SPEC
set -euo pipefail
cmd=${1:-}; P=${2:-}
[[ -n $cmd && -n $P && $P =~ ^[a-z0-9-]{1,24}$ ]] || { sed -n '2,18p' "$0" >&2; exit 2; }
x() { ip netns exec "$P-$1" "${@:2}"; }

case $cmd in
up)
    MTU=${3:-1500}
    OFFLOADS=${OFFLOADS:-off}
    [[ $OFFLOADS == on ]] || command -v ethtool >/dev/null || { echo "netem-net.sh: needs ethtool (apt-get install ethtool)" >&2; exit 1; }
    for n in a m b; do
        ip netns add "$P-$n"
        x "$n" ip link set dev lo up
        x "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    done
    ip link add wan netns "$P-a" type veth peer name a netns "$P-m"
    ip link add wan netns "$P-b" type veth peer name b netns "$P-m"
    for n in a b; do
        x "$n" ip link set dev wan mtu "$MTU"
        x m ip link set dev "$n" mtu "$MTU"
        if [[ $OFFLOADS != on ]]; then
            x "$n" ethtool -K wan gso off tso off gro off tx off >/dev/null
            x m ethtool -K "$n" gso off tso off gro off tx off >/dev/null
        fi
    done
    x a ip addr add 10.77.0.1/24 dev wan
    x b ip addr add 10.77.0.2/24 dev wan
    mac_a=$(x a cat /sys/class/net/wan/address); mac_b=$(x b cat /sys/class/net/wan/address)
    x a ip neigh add 10.77.0.2 lladdr "$mac_b" dev wan nud permanent
    x b ip neigh add 10.77.0.1 lladdr "$mac_a" dev wan nud permanent
    for n in a b; do x "$n" ip link set dev wan up; x m ip link set dev "$n" up; done
    ;;
down)
    for n in a m b; do ip netns del "$P-$n" 2>/dev/null || true; done
    ;;
*) sed -n '2,18p' "$0" >&2; exit 2 ;;
esac
