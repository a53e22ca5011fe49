#!/bin/bash
# Runs inside the installed Debian root booted by systemd-nspawn (Tests/pkg/test-packages.sh
# copies it to /usr/local/sbin and pulls it in with systemd.wants=tquic-pkg-test.service): the
# admin's first hour with tquic-vps under a real systemd. It ends the container with
# `systemctl exit N`, N = number of failed checks, so nspawn's exit status is the verdict.
#   0. after boot: tquic.service disabled and not running, the sysctl drop-in applied
#   1. the shipped /etc/tquic.conf: `systemctl start tquic` fails, and the journal says (at error
#      priority) which line to edit and that `tquicctl genkey` makes the key (no stack trace)
#   2. keys from `tquicctl genkey` pasted in: tquic.service reaches active (Type=notify: only
#      after READY=1), sends STATUS=, and keeps a 2 s watchdog fed
#   3. a router (tquic@router.service, same root, loopback as its WAN) connects as tenant home
#   4. `systemctl reload tquic` with a new tenant: same PID, new tenant listed, home still up
#   5. an upgrade (dpkg -i) while both run: the edited conffile kept, both restarted, home back
#   6. `systemctl stop`: inactive with result success, TUN and nftables table gone
#   7. `dpkg --purge` while both run: prerm stops them, nothing of theirs is left
set -uo pipefail
LOG=/var/tmp/tquic-boot-check.log
exec > >(tee "$LOG") 2>&1
failures=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; failures=$((failures + 1)); }
finish() {
    # Into a file the host prints, not to this unit's output: journalctl's output fed back into
    # the journal through this unit's stream made the container's shutdown stall at
    # local-fs.target until nspawn was killed.
    journalctl -b --no-pager -o short-monotonic -u tquic.service -u tquic@router.service > /var/tmp/tquic-journal.txt
    echo "boot check: $failures failure(s)"
    sync
    systemctl exit "$failures"
    exit 0
}
trap finish EXIT
# Waits up to $1 tenths of a second for the command after it to succeed.
wait_for() { local n=$1; shift; while ! "$@" >/dev/null 2>&1; do n=$((n - 1)); [ $n -gt 0 ] || return 1; sleep 0.1; done; }
prop() { systemctl show -P "$2" "$1"; }
journal_of() { journalctl -b --no-pager -o cat -u "$1"; }

echo "== 0. after boot, before anyone touched it"
# Installing changed nothing on the network: the unit is not enabled, so the boot left it alone;
# the drop-in is what systemd-sysctl applied at boot (this namespace's forwarding).
[ "$(systemctl is-enabled tquic.service)" = disabled ] && ok "tquic.service is disabled" || bad "tquic.service is $(systemctl is-enabled tquic.service)"
[ "$(systemctl is-active tquic.service)" = inactive ] && [ ! -e /sys/class/net/tquic0 ] && ok "nothing started at boot: no tquicd, no tquic0" ||
    bad "something started tquic at boot"
[ "$(cat /proc/sys/net/ipv4/ip_forward)" = 1 ] && ok "ip_forward = 1 from /usr/lib/sysctl.d/60-tquic.conf at boot" || bad "the sysctl drop-in was not applied at boot"

echo "== 1. first start with the shipped example config"
if systemctl start tquic.service; then
    bad "tquic.service started with the shipped example config (it has no keys)"
else
    ok "tquic.service refuses to start with the shipped config"
fi
systemctl stop tquic.service; systemctl reset-failed tquic.service 2>/dev/null || true
text=$(journal_of tquic.service)
if grep -q '/etc/tquic.conf:[0-9]*: private-key .*not set yet' <<<"$text" && grep -q 'tquicctl genkey' <<<"$text"; then
    ok "the journal names the line and the command: $(grep -m1 'not set yet' <<<"$text")"
else
    bad "the journal does not say what to edit: $text"
fi
if journalctl -b --no-pager -o cat -p err -u tquic.service | grep -q 'not set yet'; then
    ok "filed as an error: journalctl -p err -u tquic shows it"
else
    bad "the refusal is not at error priority in the journal"
fi
if grep -qiE 'fatal error|stack dump|backtrace|0x[0-9a-f]{12}' <<<"$text"; then
    bad "the journal shows a crash: $text"
else
    ok "no crash or stack trace in the journal"
fi

echo "== 2. a working configuration: keys from tquicctl genkey pasted into the shipped file"
vps_key=$(tquicctl genkey); router_key=$(tquicctl genkey); office_key=$(tquicctl genkey)
vps_pub=$(tquicctl pubkey <<<"$vps_key"); router_pub=$(tquicctl pubkey <<<"$router_key")
office_pub=$(tquicctl pubkey <<<"$office_key")
cp -p /etc/tquic.conf /var/tmp/tquic.conf.shipped
# The shipped file with its placeholders replaced and, for this container (loopback only:
# nspawn --private-network), egress = lo; tenant office comes in with the reload below.
sed -e "s|^private-key = REPLACE_WITH_OUTPUT_OF_tquicctl_genkey|private-key = $vps_key|" \
    -e "s|^public-key = REPLACE_WITH_THE_ROUTER_PUBLIC_KEY|public-key = $router_pub|" \
    -e 's|^egress = eth0|egress = lo|' /var/tmp/tquic.conf.shipped |
    awk '/^\[tenant\]/ { n++ } n < 2' > /etc/tquic.conf
if tquicd --check-config; then ok "tquicd --check-config accepts the edited file"; else bad "tquicd --check-config refuses the edited file"; fi
mkdir -p /run/systemd/system/tquic.service.d
printf '[Service]\nWatchdogSec=2s\n' > /run/systemd/system/tquic.service.d/50-test-watchdog.conf
systemctl daemon-reload
if systemctl start tquic.service; then ok "systemctl start tquic: $(systemctl is-active tquic.service)"; else bad "systemctl start tquic failed"; fi
[ "$(systemctl is-active tquic.service)" = active ] && ok "active (Type=notify: READY=1 received)" || bad "not active: $(systemctl is-active tquic.service)"
pid=$(prop tquic.service MainPID)
[ "$(prop tquic.service WatchdogUSec)" = 2s ] && ok "watchdog 2 s armed" || bad "watchdog not 2 s: $(prop tquic.service WatchdogUSec)"
sleep 7
if [ "$(systemctl is-active tquic.service)" = active ] && [ "$(prop tquic.service MainPID)" = "$pid" ] && [ "$(prop tquic.service NRestarts)" = 0 ]; then
    ok "still active after 7 s with WatchdogSec=2s, same PID $pid, no restart"
else
    bad "watchdog: active=$(systemctl is-active tquic.service) pid=$(prop tquic.service MainPID) (was $pid) restarts=$(prop tquic.service NRestarts)"
fi
status_text=$(prop tquic.service StatusText)
[ -n "$status_text" ] && ok "STATUS= from tquicd: $status_text" || bad "no STATUS= from tquicd"
[ -e /sys/class/net/tquic0 ] && ok "TUN tquic0 exists" || bad "no TUN tquic0"
nft list tables | grep -q 'inet tquic_tquic0' && ok "nftables table inet tquic_tquic0 exists" || bad "no nftables table: $(nft list tables)"

echo "== 3. a router on the same root (tquic@router.service, loopback as its only WAN)"
mkdir -p /etc/tquic
cat > /etc/tquic/router.conf <<CONF
[tquic]
role = router
private-key = $router_key
control-socket = /run/tquic/router/tquic.sock
[tunnel]
name = tquic1
address = 10.8.0.2/24
routes = 192.0.2.0/24
[server]
address = 127.0.0.1:4433
public-key = $vps_pub
[wan]
interface = lo
CONF
chmod 600 /etc/tquic/router.conf
if systemctl start tquic@router.service; then ok "tquic@router.service active"; else bad "tquic@router.service failed to start"; fi
if wait_for 150 sh -c 'tquicctl status --json | grep -Eq "\"connected\" ?: ?true"'; then
    ok "tenant home connected: $(tquicctl tenants | head -n 3 | tr '\n' ' ')"
else
    bad "tenant home did not connect within 15 s: $(tquicctl status 2>&1 | head -n 20)"
fi

sleep 2
echo "--- tquicctl status (the VPS)"; tquicctl status
echo "--- tquicctl status --socket /run/tquic/router/tquic.sock (the router)"; tquicctl status --socket /run/tquic/router/tquic.sock

echo "== 4. systemctl reload tquic with a new tenant"
cat >> /etc/tquic.conf <<CONF

[tenant]
name = office
public-key = $office_pub
allowed = 10.8.0.3/32, fd00:8::3/128, 192.168.50.0/24
CONF
if systemctl reload tquic.service; then ok "systemctl reload tquic"; else bad "systemctl reload tquic failed"; fi
if wait_for 50 sh -c 'tquicctl tenants | grep -q office'; then ok "tenant office listed after the reload"; else bad "tenant office missing after reload: $(tquicctl tenants 2>&1)"; fi
[ "$(prop tquic.service MainPID)" = "$pid" ] && ok "same PID after reload" || bad "PID changed on reload"
journal_of tquic.service | grep -q 'reloaded /etc/tquic.conf' && ok "journal: reloaded /etc/tquic.conf" || bad "no reload line in the journal"
tquicctl status --json | grep -Eq '"connected" ?: ?true' && ok "tenant home still connected after the reload" || bad "home dropped by the reload"

echo "== 5. upgrade while both run: dpkg -i tquic-vps $(dpkg-deb -f /var/tmp/tquic-vps-upgrade.deb Version)"
pid=$(prop tquic.service MainPID); router_pid=$(prop tquic@router.service MainPID)
cp -p /etc/tquic.conf /var/tmp/tquic.conf.edited
if dpkg -i /var/tmp/tquic-vps-upgrade.deb < /dev/null; then ok "dpkg -i of the upgrade"; else bad "dpkg -i of the upgrade failed"; fi
cmp -s /etc/tquic.conf /var/tmp/tquic.conf.edited && [ "$(stat -c %a /etc/tquic.conf)" = 600 ] &&
    ok "the edited /etc/tquic.conf kept (0600)" || bad "the upgrade changed /etc/tquic.conf"
for u in tquic.service tquic@router.service; do
    old=$pid; [ $u = tquic.service ] || old=$router_pid
    if [ "$(systemctl is-active $u)" = active ] && [ "$(prop $u MainPID)" != "$old" ]; then
        ok "$u restarted on the new binary (PID $old -> $(prop $u MainPID))"
    else
        bad "$u after the upgrade: $(systemctl is-active $u), PID $(prop $u MainPID) (was $old)"
    fi
done
if wait_for 300 sh -c 'tquicctl status --json | grep -Eq "\"connected\" ?: ?true"'; then
    ok "tenant home connected again after the upgrade"
else
    bad "tenant home did not reconnect within 30 s of the upgrade"
fi

echo "== 6. systemctl stop"
# tquic.service first: its RuntimeDirectory (/run/tquic) is the parent of tquic@router's
# (/run/tquic/router), and the router's control socket must outlive the VPS's stop.
systemctl stop tquic.service
if [ -S /run/tquic/router/tquic.sock ] && tquicctl status --socket /run/tquic/router/tquic.sock > /dev/null; then
    ok "tquic@router's control socket still answers after tquic.service stopped"
else
    bad "stopping tquic.service removed tquic@router's /run/tquic/router/tquic.sock"
fi
systemctl stop tquic@router.service
for u in tquic.service tquic@router.service; do
    if [ "$(prop $u ActiveState)" = inactive ] && [ "$(prop $u Result)" = success ]; then
        ok "$u stopped cleanly (inactive, result success)"
    else
        bad "$u: state $(prop $u ActiveState), result $(prop $u Result)"
    fi
done
[ ! -e /sys/class/net/tquic0 ] && [ ! -e /sys/class/net/tquic1 ] && ok "TUN devices removed" || bad "a TUN device is left"
nft list tables | grep -q tquic && bad "nftables table left: $(nft list tables)" || ok "nftables tables removed"
[ ! -e /run/tquic/tquic.sock ] && ok "control socket removed" || bad "control socket left"

echo "== 7. dpkg --purge while tquic and tquic@router run"
systemctl start tquic.service tquic@router.service
mkdir -p /var/log/tquic/qlog && echo x > /var/log/tquic/qlog/1.sqlog
if dpkg --purge tquic-vps < /dev/null; then ok "dpkg --purge tquic-vps"; else bad "dpkg --purge tquic-vps failed"; fi
# /proc, not pgrep: procps is not in this minimal root.
running=$(grep -lx tquicd /proc/[0-9]*/comm 2>/dev/null || true)
[ -z "$running" ] && ok "prerm stopped both tquicd" || bad "a tquicd still runs after the purge: $running"
[ ! -e /sys/class/net/tquic0 ] && [ ! -e /sys/class/net/tquic1 ] && ! nft list tables | grep -q tquic &&
    ok "their TUNs and nftables tables are gone" || bad "a TUN or nftables table is left after the purge"
left=$(ls -d /etc/tquic.conf /etc/tquic /var/log/tquic /lib/systemd/system/tquic*.service /usr/sbin/tquicd 2>/dev/null)
[ -z "$left" ] && ok "config, tenant files, logs, units and binaries gone" || bad "left after the purge: $left"

