#!/usr/bin/env bash
# Writes the Markdown table that `tquic-sim ARGS...` prints (release build) into FILE (a page under
# docs/) between `<!-- NAME:begin -->` and `<!-- NAME:end -->`; appended with both markers if FILE
# has none yet. Only the text between the markers changes.
#
# usage: scripts/docs-table.sh FILE NAME TQUIC-SIM-ARGS...   (see sim-table.sh and cc-table.sh)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
FILE=$1
NAME=$2
shift 2
[ -f "$FILE" ] || { echo "docs-table.sh: no such page: $FILE" >&2; exit 64; }
swift build -c release --product tquic-sim --scratch-path .build-release >&2
BIN="$(swift build -c release --scratch-path .build-release --show-bin-path)/tquic-sim"
TABLE=$("$BIN" "$@")
python3 - "$FILE" "$NAME" "$TABLE" <<'PY'
import re, sys
path, name, table = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(path).read()
begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
block = f"{begin}\n{table}\n{end}"
if begin in text:
    text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
else:
    text += "\n" + block + "\n"
open(path, "w").write(text)
PY
echo "$FILE $NAME updated" >&2
