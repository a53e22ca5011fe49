#!/usr/bin/env bash
# Network namespaces for the appliance's end-to-end tests and demo (root):
#
#   PREFIX-lan ──lan── PREFIX-rtr ══wan1..wanN══ PREFIX-isp ──core── PREFIX-vps ──egress── PREFIX-inet
#   (LAN host)         (tquicd router)           (the internet)      (tquicd vps)          (a server)
#
# Each WAN is a veth pair rate-limited both ways with tbf (RATE Mbit/s, default 20); `ip link set
# wanK down` in PREFIX-rtr cuts one. IPv4 and IPv6 everywhere (the tunnel carries both, and runs
# over IPv4 or IPv6 WANs). Only addresses inside these namespaces are used.
#
# With RATE `netem` a WAN has no tbf: it is cut in two through a middle namespace PREFIX-wK,
#   wanK (rtr) ── veth ── rt  PREFIX-wK  isp ── veth ── rK (isp)
# where the caller runs `tquic-netem --a rt --b isp --link UPLINK --link-back DOWNLINK` (lab.py
# does), the emulator bridging the two at layer 2 so addresses and routes stay the same.
#
# usage: scripts/lab-net.sh up PREFIX [WANS] [RATE_MBIT|netem]   build (WANS default 2)
#        scripts/lab-net.sh down PREFIX                     delete every PREFIX-* namespace
#        scripts/lab-net.sh add-wan PREFIX K [RATE_MBIT]    one more WAN, wanK (a link plugged in)
#        scripts/lab-net.sh up-rtr2 PREFIX [WANS] [RATE]    a second router, PREFIX-rtr2 (another
#                                                           tenant of the VPS; no LAN host behind it)
#
# Addresses: LAN 10.201.0.0/24 + fd01::/64 (router .1, host .2); WAN K 10.10K.0.0/24 + fd10:K::/64
# (isp .1, router .2); core 10.100.0.0/24 + fd00:100::/64 (isp .1, vps .2); egress 10.202.0.0/24
# + fd02::/64 (vps .1, inet host .2). rtr2's WAN K: veth wanK ↔ isp's sK, 10.11K.0.0/24 +
# fd11:K::/64 (isp .1, rtr2 .2).
set -euo pipefail
cmd=${1:-}; P=${2:-}
[[ -n $cmd && -n $P && $P =~ ^[a-z0-9]{1,8}$ ]] || { sed -n '2,25p' "$0" >&2; exit 2; }
ns() { echo "$P-$1"; }
x() { ip netns exec "$(ns "$1")" "${@:2}"; }

# One WAN: veth wanK (router) ↔ rK (isp), tbf both ways, default route with metric 100·K.
# (ROUTER ISP_SIDE NET select rtr2's: rtr2, sK, 10.11K.)
add_wan() { # K RATE [ROUTER ISP_SIDE NET]
    local k=$1 rate=$2 rtr=${3:-rtr} side=${4:-r} net=${5:-10.10}
    if [[ $rate == netem ]]; then
        local m; m=$(ns "w$k")
        ip netns add "$m"; x "w$k" ip link set lo up
        # The middle is no host: no IPv6 of its own (no router solicitations, no DAD on the wire).
        x "w$k" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
        ip link add "wan$k" netns "$(ns "$rtr")" type veth peer name rt netns "$m"
        ip link add "$side$k" netns "$(ns isp)" type veth peer name isp netns "$m"
        x "w$k" ip link set rt up; x "w$k" ip link set isp up
        # Whole frames into the emulator: the veths that send into it cut nothing (docs/netem.md).
        x "$rtr" ethtool -K "wan$k" gso off tso off tx off >/dev/null 2>&1 || true
        x isp ethtool -K "$side$k" gso off tso off tx off >/dev/null 2>&1 || true
    else
        ip link add "wan$k" netns "$(ns "$rtr")" type veth peer name "$side$k" netns "$(ns isp)"
    fi
    local net6=fd${net#10.}:$k:: # IPv6 too (fd10:K::/64, rtr2's fd11:K::/64): tunnels over IPv6 WANs
    x "$rtr" ip addr add "$net$k.0.2/24" dev "wan$k"
    x isp ip addr add "$net$k.0.1/24" dev "$side$k"
    x "$rtr" ip link set "wan$k" up
    x isp ip link set "$side$k" up
    x "$rtr" ip -6 addr add "${net6}2/64" dev "wan$k" nodad
    x isp ip -6 addr add "${net6}1/64" dev "$side$k" nodad
    if [[ $rate != netem ]]; then
        # tbf: the link's rate, a queue of ~50 ms at that rate (at least 32 KB), like a modem's buffer.
        local burst=$((rate * 1000000 / 8 / 250)); ((burst < 3200)) && burst=3200
        local limit=$((rate * 1000000 / 8 / 20)); ((limit < 32000)) && limit=32000
        x "$rtr" tc qdisc add dev "wan$k" root tbf rate "${rate}mbit" burst "$burst" limit "$limit"
        x isp tc qdisc add dev "$side$k" root tbf rate "${rate}mbit" burst "$burst" limit "$limit"
    fi
    x "$rtr" ip route add default via "$net$k.0.1" dev "wan$k" metric $((100 * k))
    x "$rtr" ip -6 route add default via "${net6}1" dev "wan$k" metric $((100 * k))
}

case $cmd in
up)
    WANS=${3:-2}; RATE=${4:-20}
    for n in lan rtr isp vps inet; do ip netns add "$(ns $n)"; x "$n" ip link set lo up; done
    ip link add lan netns "$(ns lan)" type veth peer name lan netns "$(ns rtr)"
    # Links up before the IPv6 addresses: a `nodad` address added to a link that is down answers
    # no neighbour solicitation until one is retransmitted (the first IPv6 packets wait 1 s).
    x lan ip link set lan up; x rtr ip link set lan up
    x lan ip addr add 10.201.0.2/24 dev lan; x lan ip -6 addr add fd01::2/64 dev lan nodad
    x rtr ip addr add 10.201.0.1/24 dev lan; x rtr ip -6 addr add fd01::1/64 dev lan nodad
    x lan ip route add default via 10.201.0.1; x lan ip -6 route add default via fd01::1
    for k in $(seq 1 "$WANS"); do add_wan "$k" "$RATE"; done
    ip link add core netns "$(ns isp)" type veth peer name core netns "$(ns vps)"
    x isp ip addr add 10.100.0.1/24 dev core; x vps ip addr add 10.100.0.2/24 dev core
    x isp ip link set core up; x vps ip link set core up
    x isp ip -6 addr add fd00:100::1/64 dev core nodad; x vps ip -6 addr add fd00:100::2/64 dev core nodad
    x vps ip -6 route add default via fd00:100::1
    x vps ip route add default via 10.100.0.1
    x isp sysctl -qw net.ipv4.ip_forward=1
    x isp sysctl -qw net.ipv6.conf.all.forwarding=1
    ip link add egress netns "$(ns vps)" type veth peer name egress netns "$(ns inet)"
    x vps ip link set egress up; x inet ip link set egress up
    x vps ip addr add 10.202.0.1/24 dev egress; x vps ip -6 addr add fd02::1/64 dev egress nodad
    x inet ip addr add 10.202.0.2/24 dev egress; x inet ip -6 addr add fd02::2/64 dev egress nodad
    # The inet host knows only its own subnet: everything from the LAN must come masqueraded.
    ;;
add-wan)
    K=${3:?wan number}; RATE=${4:-20}
    add_wan "$K" "$RATE"
    ;;
up-rtr2)
    WANS=${3:-1}; RATE=${4:-20}
    ip netns add "$(ns rtr2)"; x rtr2 ip link set lo up
    for k in $(seq 1 "$WANS"); do add_wan "$k" "$RATE" rtr2 s 10.11; done
    ;;
down)
    for n in lan rtr rtr2 isp vps inet w1 w2 w3 w4 w5 w6 w7 w8; do ip netns del "$(ns $n)" 2>/dev/null || true; done
    ;;
*) sed -n '2,25p' "$0" >&2; exit 2 ;;
esac
