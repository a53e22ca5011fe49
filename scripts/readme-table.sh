#!/usr/bin/env bash
# Writes the Markdown table that `tquic-sim ARGS...` prints (release build) into README.md between
# `<!-- NAME:begin -->` and `<!-- NAME:end -->`.
#
# usage: scripts/readme-table.sh NAME TQUIC-SIM-ARGS...   (see sim-table.sh and cc-table.sh)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
NAME=$1
shift
swift build -c release --product tquic-sim --scratch-path .build-release >&2
BIN="$(swift build -c release --scratch-path .build-release --show-bin-path)/tquic-sim"
TABLE=$("$BIN" "$@")
python3 - "$NAME" "$TABLE" <<'PY'
import re, sys
name, table = sys.argv[1], sys.argv[2]
path = "README.md"
text = open(path).read()
begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
block = f"{begin}\n{table}\n{end}"
if begin in text:
    text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
else:
    text += "\n" + block + "\n"
open(path, "w").write(text)
PY
echo "README.md $NAME updated" >&2
