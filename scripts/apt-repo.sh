#!/usr/bin/env bash
# Publishes the .debs built by scripts/package.sh as a signed apt repository (apt-ftparchive), the
# kind a router or VPS adds with one sources line and the key (docs/packaging.md):
#   $TQUIC_APT_DIR/pool/main/*.deb
#   $TQUIC_APT_DIR/dists/bookworm/main/binary-amd64/Packages{,.gz}
#   $TQUIC_APT_DIR/dists/bookworm/{Release,InRelease,Release.gpg}
#   $TQUIC_APT_DIR/tquic-archive-keyring.gpg     the public key, for signed-by=
# It signs with the first secret key of $TQUIC_APT_GNUPGHOME (the project's real archive key,
# kept off the build machine's repository). Without it, it makes a throwaway test key (CI): good
# for testing the signing chain, worthless as a trust anchor.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEB_DIR=${TQUIC_DEB_DIR:-$ROOT/.build-pkg/deb}
APT_DIR=${TQUIC_APT_DIR:-$ROOT/.build-pkg/apt}
SUITE=bookworm
ARCH=$(dpkg --print-architecture)

shopt -s nullglob
debs=("$DEB_DIR"/tquic-*.deb)
[ ${#debs[@]} -gt 0 ] || { echo "no tquic-*.deb in $DEB_DIR: run scripts/package.sh first" >&2; exit 1; }

if [ -n "${TQUIC_APT_GNUPGHOME:-}" ]; then
    export GNUPGHOME=$TQUIC_APT_GNUPGHOME
else
    # A short path: gpg-agent's socket lives in GNUPGHOME and sun_path holds 107 bytes.
    export GNUPGHOME=$(mktemp -d /tmp/tquic-gpg.XXXXXX)
    trap 'gpgconf --kill all 2>/dev/null || true; rm -rf "$GNUPGHOME"' EXIT
    gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
        --quick-generate-key 'TQUIC test archive key (CI only) <maintainers@users.noreply.b-seed-24de9f4b.example>' \
        ed25519 sign 30d
fi
fpr=$(gpg --batch --with-colons --list-secret-keys | awk -F: '$1 == "fpr" { print $10; exit }')
[ -n "$fpr" ] || { echo "no secret key in $GNUPGHOME" >&2; exit 1; }

rm -rf "$APT_DIR"
mkdir -p "$APT_DIR/pool/main" "$APT_DIR/dists/$SUITE/main/binary-$ARCH"
cp "${debs[@]}" "$APT_DIR/pool/main/"
cd "$APT_DIR"
apt-ftparchive packages pool > "dists/$SUITE/main/binary-$ARCH/Packages"
gzip -9n -k "dists/$SUITE/main/binary-$ARCH/Packages"
apt-ftparchive \
    -o APT::FTPArchive::Release::Origin=TQUIC -o APT::FTPArchive::Release::Label=TQUIC \
    -o APT::FTPArchive::Release::Suite=$SUITE -o APT::FTPArchive::Release::Codename=$SUITE \
    -o APT::FTPArchive::Release::Components=main -o APT::FTPArchive::Release::Architectures="$ARCH" \
    release "dists/$SUITE" > Release.tmp
mv Release.tmp "dists/$SUITE/Release"
# InRelease (inline) is what apt reads first; Release.gpg (detached) for older clients.
gpg --batch --yes --local-user "$fpr" --clearsign -o "dists/$SUITE/InRelease" "dists/$SUITE/Release"
gpg --batch --yes --local-user "$fpr" --armor --detach-sign -o "dists/$SUITE/Release.gpg" "dists/$SUITE/Release"
gpg --batch --export "$fpr" > tquic-archive-keyring.gpg
echo "apt repository in $APT_DIR, signed by $fpr; on a $SUITE machine:"
echo "  cp tquic-archive-keyring.gpg /usr/share/keyrings/"
echo "  echo 'deb [signed-by=/usr/share/keyrings/tquic-archive-keyring.gpg] file:$APT_DIR $SUITE main' > /etc/apt/sources.list.d/tquic.list"
