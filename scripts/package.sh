#!/usr/bin/env bash
# Builds the Debian packages tquic-router and tquic-vps (debian/, docs/packaging.md) and leaves
# them, with the .buildinfo and .changes, in $TQUIC_DEB_DIR (default .build-pkg/deb), not in the
# parent directory where dpkg-buildpackage would put them. `make deb` runs this.
# Needs: the Swift toolchain on PATH, the Build-Depends of debian/control (scripts/setup.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export TQUIC_DEB_DIR=${TQUIC_DEB_DIR:-$ROOT/.build-pkg/deb}
version=$(dpkg-parsechangelog -S Version)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
mkdir -p "$TQUIC_DEB_DIR"
rm -f "$TQUIC_DEB_DIR"/tquic*_"$version"_*
start=$(date +%s)
# -b: binary packages only (no source package); -us -uc: unsigned (the apt repository made by
# scripts/apt-repo.sh is what gets signed); -u: where dpkg-genchanges finds the .debs.
dpkg-buildpackage -us -uc -b \
    --buildinfo-option=-u"$TQUIC_DEB_DIR" --changes-option=-u"$TQUIC_DEB_DIR" \
    --buildinfo-file="$TQUIC_DEB_DIR/tquic_${version}_${arch}.buildinfo" \
    --changes-file="$TQUIC_DEB_DIR/tquic_${version}_${arch}.changes"
echo "built in $(( $(date +%s) - start )) s:"
ls -l "$TQUIC_DEB_DIR"/tquic*_"$version"_*
