#!/usr/bin/env bash
# Phase 7 of benches/run.sh alone: podman's zstd:chunked partial pulls
# through ferry and through the peer (distribution in proxy mode), against
# full pulls of the same image. See lib/partial.sh and benches/README.md.
#
#   benches/partial_pull.sh            # RUNS=5 runs, 400 files
#   QUICK=1 benches/partial_pull.sh    # 1 run, 100 files
#
# Same knobs as run.sh where they apply (RUNS, FERRY_BIN, BENCH_TMP,
# KEEP_WORK), plus PARTIAL_FILES and PARTIAL_EVERY. Needs root (podman's
# overlay storage). Prints the rows 7a-7d of run.sh's table.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
shopt -s inherit_errexit

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
# shellcheck source=lib/common.sh
source "$BENCH_DIR/lib/common.sh"
# shellcheck source=lib/partial.sh
source "$BENCH_DIR/lib/partial.sh"

QUICK=${QUICK:-0}
[ "$QUICK" = 1 ] && RUNS=${RUNS:-1}
RUNS=${RUNS:-5}
TAG_TTL=3600
export RUST_LOG=${FERRY_RUST_LOG:-warn}
ferry_binary
require podman skopeo docker-registry jq curl python3

standalone_upstream
partial_pull_phase

echo "Command: \`$([ "$QUICK" = 1 ] && echo 'QUICK=1 ')RUNS=$RUNS benches/partial_pull.sh\`, ferry $(cd "$ROOT" && git rev-parse --short HEAD), $PARTIAL_FILES files"
echo
echo "| # | Measurement | ferry | peer | nginx | upstream | ferry ÷ peer | target | ferry vs. target | met |"
echo "|---|---|---:|---:|---:|---:|---:|---|---|---|"
partial_rows
echo
partial_runs
print_warnings
