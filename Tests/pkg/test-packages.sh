#!/usr/bin/env bash
# Package tests (DESIGN.md "Testing pyramid" 6, docs/packaging.md): the .debs on a Debian 12
# machine that never saw the source tree or a Swift toolchain. Root only; CI runs it from
# scripts/test.sh. Every stage fails the run loudly; nothing is skipped.
#   1. build     scripts/package.sh (both .debs; version = Version.swift), contents, static Swift
#                runtime (ldd), stripped
#   2. lintian   no errors and no warnings that are not overridden with a reason
#   3. root      a fresh bookworm root by debootstrap (minbase + systemd) from the mirror apt uses
#                here; the downloaded .debs are cached in $TQUIC_CI_CACHE, so later runs are fast
#   4. chroot    per package: apt installs it (its Debian dependencies from the mirror); files,
#                conffile, 0600, tquicd --version / --check-config without Swift, systemd-analyze
#                verify, Conflicts, upgrade keeps the edited conffile, remove, purge leaves nothing
#   5. apt       scripts/apt-repo.sh's signed repository as a file: source with signed-by; a wrong
#                key is refused; `apt-get install tquic-vps` pulls nftables from Debian's archive
#   6. boot      systemd-nspawn --boot of that root (own network namespace): Tests/pkg/boot-check.sh
#                under systemd as PID 1 (start fails clearly, then active, watchdog, reload, stop)
# Everything lives under one work directory removed at exit (mounts first), however it ends.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
export TQUIC_DEB_DIR=${TQUIC_DEB_DIR:-$ROOT/.build-pkg/deb}
CACHE=${TQUIC_CI_CACHE:-/var/cache/tquic-ci}
SUITE=bookworm
# systemd + dbus: to boot the root and to run systemd-analyze; nothing else beyond minbase, so
# whatever else the packages need must come from their Depends.
INCLUDE=systemd,systemd-sysv,dbus
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8

[ "$(id -u)" = 0 ] || { echo "FAIL: the package tests need root (debootstrap, chroot, systemd-nspawn)" >&2; exit 1; }

WORK=$(mktemp -d /var/tmp/tquic-pkg-test.XXXXXX)
R=$WORK/root
NSPAWN_PID=
cleanup() {
    local rc=$?
    set +e
    [ -n "$NSPAWN_PID" ] && kill -KILL "$NSPAWN_PID" 2>/dev/null && wait "$NSPAWN_PID" 2>/dev/null
    rm -f "$CACHE"/*.part.$$
    # Deepest mounts first; lazy, so a process still holding one cannot keep the root alive.
    findmnt -rn -o TARGET | grep -F "$WORK/" | sort -r | while read -r m; do umount -l "$m"; done
    if findmnt -rn -o TARGET | grep -qF "$WORK/"; then
        echo "FAIL: mounts left under $WORK" >&2; rc=1
    else
        rm -rf "$WORK"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

failures=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
die() { echo "FAIL: $*" >&2; exit 1; }
T0=$(date +%s)
stage() { echo; echo "== [$(( $(date +%s) - T0 )) s] $*"; }
in_root() { chroot "$R" "$@"; }

version=$(dpkg-parsechangelog -S Version)
swift_version=$(sed -n 's/.*static let string = "\(.*\)".*/\1/p' Sources/TQUICDaemon/Version.swift)
arch=$(dpkg --print-architecture)
deb() { echo "$TQUIC_DEB_DIR/${1}_${version}_${arch}.deb"; }

stage "1. build the packages (scripts/package.sh)"
[ "$version" = "$swift_version" ] && ok "debian/changelog $version = Version.swift $swift_version" ||
    bad "debian/changelog says $version, Sources/TQUICDaemon/Version.swift says $swift_version"
t=$(date +%s)
scripts/package.sh > "$WORK/build.log" 2>&1 || { tail -n 40 "$WORK/build.log"; die "scripts/package.sh failed"; }
ok "both packages built in $(( $(date +%s) - t )) s: $(cd "$TQUIC_DEB_DIR" && ls -s --block-size=K tquic-*.deb | tr '\n' ' ')"
for p in tquic-router tquic-vps; do
    [ -f "$(deb $p)" ] || die "$(deb $p) missing"
    mkdir -p "$WORK/x/$p"; dpkg-deb -x "$(deb $p)" "$WORK/x/$p"
    for f in usr/sbin/tquicd usr/bin/tquicctl etc/tquic.conf lib/systemd/system/tquic.service \
             lib/systemd/system/tquic@.service usr/lib/sysctl.d/60-tquic.conf \
             usr/share/man/man8/tquicd.8.gz usr/share/man/man8/tquicctl.8.gz \
             usr/share/man/man5/tquic.conf.5.gz usr/share/doc/$p/copyright; do
        [ -e "$WORK/x/$p/$f" ] || bad "$p lacks /$f"
    done
    for b in usr/sbin/tquicd usr/bin/tquicctl; do
        libs=$(ldd "$WORK/x/$p/$b")
        if grep -qi swift <<<"$libs" || grep -q 'not found' <<<"$libs"; then bad "$p /$b needs: $libs"; fi
        readelf -S "$WORK/x/$p/$b" | grep -qE '\.symtab|\.debug_info' && bad "$p /$b is not stripped"
    done
    ok "$p: files in place, tquicd and tquicctl stripped, no Swift library among their ldd needs"
    dpkg-deb -f "$(deb $p)" Depends | tr ',' '\n' | sed 's/^ */    depends: /'
done
dpkg-deb -f "$(deb tquic-vps)" Depends | grep -qw nftables || bad "tquic-vps does not depend on nftables"
dpkg-deb -f "$(deb tquic-router)" Conflicts | grep -qw tquic-vps || bad "tquic-router does not conflict with tquic-vps"
dpkg-deb -f "$(deb tquic-vps)" Conflicts | grep -qw tquic-router || bad "tquic-vps does not conflict with tquic-router"

stage "2. lintian"
# --fail-on warning too: a warning we keep must be overridden, with its reason on the line
# above, in debian/*.lintian-overrides (listed here); anything else fails, as does lintian itself.
if lintian --fail-on error,warning --tag-display-limit 0 \
        "$TQUIC_DEB_DIR/tquic_${version}_${arch}.changes" > "$WORK/lintian.txt" 2>&1; then
    ok "lintian: no errors, no warnings but the overridden ones:"
else
    bad "lintian (exit $?): errors, warnings without an override, or lintian failed:"
fi
{ grep -v '^running with root privileges' "$WORK/lintian.txt" || true; } | sed 's/^/    /'
grep -H '^[a-z]' debian/*.lintian-overrides | sed 's/^/    overridden: /'

stage "3. a fresh $SUITE root (debootstrap, minbase + $INCLUDE)"
mirror=$(Tests/pkg/mirror.sh "$SUITE")
mkdir -p "$CACHE"
tarball=$CACHE/debootstrap-$SUITE-minbase-$(echo "$INCLUDE" | md5sum | cut -c1-8).tgz
t=$(date +%s)
if [ ! -s "$tarball" ]; then
    # Cold: download once into the cache, written aside (per process: two CI runs may share the
    # cache) and renamed, so a failed or killed run leaves no half tarball for the next one.
    debootstrap --variant=minbase --include="$INCLUDE" --make-tarball="$tarball.part.$$" \
        "$SUITE" "$WORK/dl" "$mirror" > "$WORK/debootstrap.log" 2>&1 ||
        { rm -f "$tarball.part.$$"; tail -n 20 "$WORK/debootstrap.log"; die "debootstrap --make-tarball from $mirror failed"; }
    mv "$tarball.part.$$" "$tarball"
    ok "downloaded $SUITE from $mirror into $tarball in $(( $(date +%s) - t )) s"
    t=$(date +%s)
fi
debootstrap --variant=minbase --include="$INCLUDE" --unpack-tarball="$tarball" \
    "$SUITE" "$R" "$mirror" > "$WORK/debootstrap.log" 2>&1 ||
    { tail -n 20 "$WORK/debootstrap.log"; die "debootstrap --unpack-tarball $tarball failed"; }
ok "root made in $(( $(date +%s) - t )) s ($(du -sm "$R" | cut -f1) MB) from $mirror"
[ -e "$R/opt/swift" ] || [ -n "$(find "$R" -xdev -name 'libswiftCore.so' -print -quit)" ] && die "the root holds a Swift runtime"
in_root sh -c 'command -v swift swiftc' && die "the root has a Swift toolchain on PATH"
ok "no Swift toolchain or runtime in the root"
cp /etc/resolv.conf "$R/etc/resolv.conf"
# Maintainer scripts must not start services in the chroot (policy-rc.d, like a build chroot).
printf '#!/bin/sh\nexit 101\n' > "$R/usr/sbin/policy-rc.d"; chmod 755 "$R/usr/sbin/policy-rc.d"
mount -t proc proc "$R/proc"
in_root apt-get update -qq > "$WORK/apt.log" 2>&1 || { cat "$WORK/apt.log"; die "apt-get update in the root failed"; }

# Every path in the root except package databases, caches and logs of apt/dpkg and /run (a
# tmpfs on a running system; systemd-analyze leaves a file there): the picture
# "purge leaves nothing behind" compares.
snapshot() {
    (cd "$R" && find . -xdev \( -path ./var/lib/dpkg -o -path ./var/lib/apt -o -path ./var/cache \
        -o -path ./var/log/apt -o -path ./var/log/dpkg.log -o -path ./var/log/alternatives.log \
        -o -path ./tmp -o -path ./run -o -path ./proc -o -path ./etc/ld.so.cache \) -prune -o -print) | sort
}

stage "4. install, check, upgrade, remove and purge each package in the root (chroot)"
cp "$(deb tquic-router)" "$(deb tquic-vps)" "$R/tmp/"
for p in tquic-router tquic-vps; do
    role=${p#tquic-}
    echo "-- $p"
    snapshot > "$WORK/before-$p"
    in_root apt-get install -y -qq --no-install-recommends "/tmp/$(basename "$(deb $p)")" > "$WORK/apt.log" 2>&1 ||
        { cat "$WORK/apt.log"; die "apt-get install $p failed"; }
    ok "apt-get install ./$p.deb: $(grep -c '^Setting up' "$WORK/apt.log") packages set up"
    [ "$(in_root dpkg-query -W -f='${Status}' $p)" = "install ok installed" ] || bad "$p not installed"
    conffiles=$(in_root dpkg-query -W -f='${Conffiles}' $p)
    grep -q '^ /etc/tquic.conf [0-9a-f]\{32\}$' <<<"$conffiles" && ok "/etc/tquic.conf is a conffile" ||
        bad "/etc/tquic.conf not a conffile: '$conffiles'"
    [ "$(stat -c '%a %U:%G' "$R/etc/tquic.conf")" = "600 root:root" ] && ok "/etc/tquic.conf mode 0600 root:root" ||
        bad "/etc/tquic.conf is $(stat -c '%a %U:%G' "$R/etc/tquic.conf")"
    cmp -s "$R/etc/tquic.conf" "etc/tquic-$role.conf" && ok "/etc/tquic.conf is etc/tquic-$role.conf" ||
        bad "/etc/tquic.conf is not etc/tquic-$role.conf"
    if [ "$role" = vps ]; then
        grep -q '^net.ipv4.ip_forward = 1' "$R/usr/lib/sysctl.d/60-tquic.conf" && ok "sysctl drop-in: ip_forward" || bad "vps drop-in lacks ip_forward"
    else
        grep -q 'forward' "$R/usr/lib/sysctl.d/60-tquic.conf" && bad "the router's drop-in turns on forwarding"
    fi
    grep -q '^net.core.rmem_max = ' "$R/usr/lib/sysctl.d/60-tquic.conf" && ok "sysctl drop-in: rmem_max/wmem_max" || bad "drop-in lacks rmem_max"
    in_root ldd /usr/sbin/tquicd | grep -E 'not found|swift' && bad "tquicd misses libraries in the root"
    v=$(in_root tquicd --version) && [ "$v" = "$version" ] && ok "tquicd --version in the root: $v" || bad "tquicd --version: '$v'"
    if out=$(in_root tquicd --check-config 2>&1); then
        bad "tquicd --check-config accepts the shipped example (no keys): $out"
    elif grep -q "^/etc/tquic.conf:[0-9]*: private-key .*not set yet.*tquicctl genkey" <<<"$out"; then
        ok "shipped config refused clearly: $out"
    else
        bad "unclear --check-config message for the shipped config: $out"
    fi
    # The admin's edit: the generated keys pasted in where the comments say.
    key=$(in_root tquicctl genkey); peer=$(in_root tquicctl genkey); peer2=$(in_root tquicctl genkey)
    [[ $key =~ ^[A-Za-z0-9+/]{43}=$ ]] || bad "tquicctl genkey printed '$key'"
    peer_pub=$(in_root tquicctl pubkey <<<"$peer"); peer2_pub=$(in_root tquicctl pubkey <<<"$peer2")
    sed -i -e "s|REPLACE_WITH_OUTPUT_OF_tquicctl_genkey|$key|" \
        -e "s|REPLACE_WITH_THE_VPS_PUBLIC_KEY|$peer_pub|;s|REPLACE_WITH_THE_ROUTER_PUBLIC_KEY|$peer_pub|" \
        -e "s|REPLACE_WITH_ANOTHER_ROUTER_PUBLIC_KEY|$peer2_pub|" "$R/etc/tquic.conf"
    out=$(in_root tquicd --check-config 2>&1) && ok "with keys from tquicctl genkey pasted in: $out" || bad "edited config refused: $out"
    for unit in tquic.service tquic@example.service; do
        out=$(in_root systemd-analyze verify --man=no "$unit" 2>&1) && [ -z "$out" ] &&
            ok "systemd-analyze verify $unit: clean" || bad "systemd-analyze verify $unit: $out"
    done
    other=tquic-router; [ $p = tquic-router ] && other=tquic-vps
    if out=$(in_root dpkg -i "/tmp/$(basename "$(deb $other)")" 2>&1); then
        bad "$other installed beside $p"
    else
        grep -q "conflicts with $p" <<<"$out" && ok "dpkg refuses $other beside $p (Conflicts)" || bad "dpkg -i $other: $out"
    fi
    [ "$(in_root dpkg-query -W -f='${Status}' $p)" = "install ok installed" ] || bad "$p damaged by the refused $other"

    # Upgrade: the same package as version $version+upgradetest; the edited conffile must stay.
    cp -p "$R/etc/tquic.conf" "$WORK/edited.conf"
    dpkg-deb -R "$(deb $p)" "$WORK/up-$p"
    sed -i "s/^Version: .*/Version: $version+upgradetest/" "$WORK/up-$p/DEBIAN/control"
    dpkg-deb -b --root-owner-group "$WORK/up-$p" "$WORK/up-$p.deb" > /dev/null
    cp "$WORK/up-$p.deb" "$R/tmp/up.deb"
    in_root dpkg -i /tmp/up.deb > "$WORK/dpkg.log" 2>&1 < /dev/null || { cat "$WORK/dpkg.log"; die "upgrade of $p failed"; }
    [ "$(in_root dpkg-query -W -f='${Version}' $p)" = "$version+upgradetest" ] || bad "upgrade did not happen"
    cmp -s "$R/etc/tquic.conf" "$WORK/edited.conf" && [ "$(stat -c %a "$R/etc/tquic.conf")" = 600 ] &&
        ok "upgrade to $version+upgradetest kept the edited /etc/tquic.conf (0600)" || bad "upgrade changed /etc/tquic.conf"
    ls "$R"/etc/tquic.conf.dpkg-* 2>/dev/null && bad "upgrade left .dpkg-* files"

    # Things the admin and the daemon add at run time, which purge must take too.
    mkdir -p "$R/etc/tquic/tenants.d" "$R/var/log/tquic/qlog"
    echo '# tenant file' > "$R/etc/tquic/tenants.d/shop.conf"; echo x > "$R/var/log/tquic/qlog/1.sqlog"
    in_root apt-get remove -y -qq $p > "$WORK/apt.log" 2>&1 || { cat "$WORK/apt.log"; die "apt-get remove $p failed"; }
    [ ! -e "$R/usr/sbin/tquicd" ] && [ -e "$R/etc/tquic.conf" ] && ok "remove: binaries gone, /etc/tquic.conf kept" ||
        bad "remove: tquicd $( [ -e "$R/usr/sbin/tquicd" ] && echo left || echo gone), tquic.conf $( [ -e "$R/etc/tquic.conf" ] && echo kept || echo gone)"
    in_root apt-get purge -y -qq --autoremove $p > "$WORK/apt.log" 2>&1 || { cat "$WORK/apt.log"; die "apt-get purge $p failed"; }
    [ -z "$(in_root dpkg-query -W -f='${Status}' $p 2>/dev/null | grep -v 'not-installed')" ] || bad "$p still known to dpkg after purge"
    snapshot > "$WORK/after-$p"
    if diff -u "$WORK/before-$p" "$WORK/after-$p" > "$WORK/diff"; then
        ok "purge --autoremove: the root is as before the install (no file left, none missing)"
    else
        bad "purge left the root changed:"; sed 's/^/    /' "$WORK/diff" | head -n 40 >&2
    fi
done

stage "5. the signed apt repository as a file: source; apt-get install tquic-vps"
TQUIC_APT_DIR=$WORK/apt scripts/apt-repo.sh > "$WORK/repo.log" 2>&1 || { cat "$WORK/repo.log"; die "scripts/apt-repo.sh failed"; }
mkdir -p "$R/srv"; cp -a "$WORK/apt" "$R/srv/tquic-apt"
line="deb [signed-by=/usr/share/keyrings/tquic-archive-keyring.gpg] file:/srv/tquic-apt $SUITE main"
echo "$line" > "$R/etc/apt/sources.list.d/tquic.list"
# First with Debian's key in place of ours: apt must refuse the repository.
cp "$R/usr/share/keyrings/debian-archive-keyring.gpg" "$R/usr/share/keyrings/tquic-archive-keyring.gpg"
if out=$(in_root apt-get update 2>&1) && ! grep -q 'tquic-apt.*not signed\|NO_PUBKEY' <<<"$out"; then
    bad "apt accepted the repository signed by a key it was not given: $out"
else
    ok "with a wrong signed-by key apt refuses it: $(grep -m1 -o 'NO_PUBKEY [0-9A-F]*\|is not signed' <<<"$out")"
fi
cp "$WORK/apt/tquic-archive-keyring.gpg" "$R/usr/share/keyrings/tquic-archive-keyring.gpg"
out=$(in_root apt-get update 2>&1) && ! grep -qE '^(W|E):' <<<"$out" && ok "apt-get update with the project key: no warning" ||
    bad "apt-get update with the project key: $out"
ls "$R"/var/lib/apt/lists/*tquic-apt*InRelease > /dev/null 2>&1 && ok "apt verified the repository's InRelease" || bad "no InRelease fetched"
in_root dpkg-query -W -f='${Status}' nftables 2>/dev/null | grep -q 'ok installed' && die "nftables already in the root before the install"
in_root apt-get install -y -qq --no-install-recommends tquic-vps > "$WORK/apt.log" 2>&1 ||
    { cat "$WORK/apt.log"; die "apt-get install tquic-vps from the repository failed"; }
pulled=$(grep -o '^Setting up [^ ]*' "$WORK/apt.log" | cut -d' ' -f3 | tr '\n' ' ')
grep -qw nftables <<<"$pulled" && grep -qw libmnl0 <<<"$pulled" && ok "apt-get install tquic-vps pulled from Debian: $pulled" ||
    bad "apt-get install tquic-vps did not pull nftables and libmnl0: $pulled"
in_root apt-cache policy tquic-vps | grep -q 'file:/srv/tquic-apt' || bad "tquic-vps did not come from the repository"
[ -e "$R/etc/systemd/system/multi-user.target.wants/tquic.service" ] && bad "install enabled tquic.service" ||
    ok "tquic.service installed, not enabled (no network change until the admin says so)"

stage "6. boot the root with systemd (systemd-nspawn --boot) and run Tests/pkg/boot-check.sh"
umount "$R/proc"
rm -f "$R/usr/sbin/policy-rc.d"
install -m 0755 Tests/pkg/boot-check.sh "$R/usr/local/sbin/tquic-boot-check"
install -m 0644 Tests/pkg/tquic-pkg-test.service "$R/etc/systemd/system/tquic-pkg-test.service"
# The upgrade the boot check installs while tquic runs (not in /tmp: a tmpfs there at boot).
cp "$WORK/up-tquic-vps.deb" "$R/var/tmp/tquic-vps-upgrade.deb"
# A getty on the container's console would only wait for input.
ln -sf /dev/null "$R/etc/systemd/system/console-getty.service"
# --register=no --keep-unit: no machined or D-Bus on this host (docs/packaging.md);
# --private-network: tquicd's TUN, routes and nftables table stay in the container's namespace;
# /dev/net/tun bound in for the TUN. Bounded: a hung boot is killed, and the cleanup above runs.
t=$(date +%s)
timeout --kill-after=10 240 systemd-nspawn --quiet --boot --register=no --keep-unit --private-network \
    --console=passive --bind=/dev/net/tun -D "$R" systemd.wants=tquic-pkg-test.service \
    > "$WORK/nspawn.log" 2>&1 < /dev/null &
NSPAWN_PID=$!
rc=0; wait "$NSPAWN_PID" || rc=$?
NSPAWN_PID=
[ -f "$R/var/tmp/tquic-boot-check.log" ] && sed 's/^/    /' "$R/var/tmp/tquic-boot-check.log"
[ -f "$R/var/tmp/tquic-journal.txt" ] && { echo "    --- journal of tquic.service and tquic@router.service"; tail -n 80 "$R/var/tmp/tquic-journal.txt" | sed 's/^/    /'; }
[ $rc = 0 ] || { echo "    --- the container's console (last 60 lines)"; tail -n 60 "$WORK/nspawn.log" | sed 's/^/    /'; }
case $rc in
    0) ok "booted root: every check passed ($(( $(date +%s) - t )) s)" ;;
    124|137) bad "the booted root did not finish within 240 s" ;;
    *) bad "the booted root reported $rc failed check(s) or nspawn failed (exit $rc)" ;;
esac

stage "done: $failures failure(s) in $(( $(date +%s) - T0 )) s"
[ "$failures" = 0 ]
