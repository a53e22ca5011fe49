#!/usr/bin/env bash
# Regenerates the scheduler x scenario table in README.md from `tquic-sim --table` (release
# build): goodput as a share of the summed link rates, per scheduler and scenario, seed 1.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
swift build -c release --product tquic-sim --scratch-path .build-release >&2
BIN="$(swift build -c release --scratch-path .build-release --show-bin-path)/tquic-sim"
TABLE=$("$BIN" --table)
python3 - "$TABLE" <<'PY'
import re, sys
table = sys.argv[1]
path = "README.md"
text = open(path).read()
begin, end = "<!-- sim-table:begin -->", "<!-- sim-table:end -->"
block = f"{begin}\n{table}\n{end}"
if begin in text:
    text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
else:
    text += "\n" + block + "\n"
open(path, "w").write(text)
PY
echo "README.md table updated" >&2
