#!/usr/bin/env bash
# Regenerates the scheduler x scenario table in docs/simulator.md from `tquic-sim --table` (release
# build): goodput as a share of the summed link rates, per scheduler and scenario, seed 1.
exec "$(dirname "${BASH_SOURCE[0]}")/docs-table.sh" docs/simulator.md sim-table --table
