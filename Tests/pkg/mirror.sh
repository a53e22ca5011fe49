#!/usr/bin/env bash
# Prints the Debian archive URL that apt on this machine already uses for bookworm (deb822
# .sources or one-line sources.list), so debootstrap talks to the same reachable mirror.
set -euo pipefail
suite=${1:-bookworm}
for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    # deb822: one stanza per blank-line-separated block; take URIs of a stanza listing $suite.
    awk -v suite="$suite" 'BEGIN { RS = ""; FS = "\n" }
        { uris = ""; ok = 0
          for (i = 1; i <= NF; i++) {
              if ($i ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", $i); uris = $i }
              if ($i ~ /^Suites:/ && (" " $i " ") ~ (" " suite " ")) ok = 1 }
          if (ok && uris != "") { split(uris, u, /[ \t]+/); print u[1]; exit } }' "$f"
done | head -n1 | grep . && exit 0
cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk -v suite="$suite" '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i == suite) { u = $(i - 1); if (u !~ /^\[/) { print u; exit } } }' |
    grep . && exit 0
echo "no apt source for $suite found in /etc/apt/sources.list*" >&2
exit 1
