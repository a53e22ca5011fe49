#!/usr/bin/env bash
# Regenerates the controller x congestion-scenario table in README.md from `tquic-sim --cc-table`
# (release build, seed 1): bottleneck utilisation, p50 queueing delay, loss, and the scenario's
# own figure (multipath/single share, Jain's index, time to hold 90 % of a satellite link).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
swift build -c release --product tquic-sim --scratch-path .build-release >&2
BIN="$(swift build -c release --scratch-path .build-release --show-bin-path)/tquic-sim"
TABLE=$("$BIN" --cc-table)
python3 - "$TABLE" <<'PY'
import re, sys
table = sys.argv[1]
path = "README.md"
text = open(path).read()
begin, end = "<!-- cc-table:begin -->", "<!-- cc-table:end -->"
block = f"{begin}\n{table}\n{end}"
if begin in text:
    text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
else:
    text += "\n" + block + "\n"
open(path, "w").write(text)
PY
echo "README.md congestion table updated" >&2
