#!/usr/bin/env bash
# The project's "checkpatch": the toolchain's swift-format over Sources and Tests with the
# committed .swift-format (docs/code-style.md says which rules are off and why).
#   scripts/lint.sh          report every finding, exit non-zero if there is one (CI)
#   scripts/lint.sh --fix    let swift-format rewrite what it can, then report what is left
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ "${1:-}" = "--fix" ]; then
    swift format format --in-place --recursive --parallel Sources Tests
fi
swift format lint --strict --recursive --parallel Sources Tests
echo "swift format lint --strict: clean ($(find Sources Tests -name '*.swift' | wc -l) files)"
