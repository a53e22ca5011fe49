#!/usr/bin/env bash
# Regenerates the controller x congestion-scenario table and the loss-based controller x coupling
# table in docs/congestion-control.md from `tquic-sim --cc-table` (release build, seed 1):
# bottleneck utilisation, p50 queueing delay, loss, and each scenario's own figure.
exec "$(dirname "${BASH_SOURCE[0]}")/docs-table.sh" docs/congestion-control.md cc-table --cc-table
