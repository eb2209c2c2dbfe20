#!/usr/bin/env bash
# Phase 8 of benches/run.sh alone: `ferry prefetch` of PF_N images against
# PF_N sequential `skopeo copy` pulls through ferry, cold both times (fresh
# data directories), same upstream (docker-registry). See lib/prefetch.sh
# and benches/README.md.
#
#   benches/prefetch.sh            # RUNS=5 runs, 20 images of 2+4+8 MiB
#   QUICK=1 benches/prefetch.sh    # 1 run, 4 images of 1+2 MiB
#
# Knobs: RUNS, PF_N, PF_LAYERS_MB, FERRY_BIN, BENCH_TMP, KEEP_WORK. Prints a
# markdown section on stdout; progress on stderr.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
shopt -s inherit_errexit

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
# shellcheck source=lib/common.sh
source "$BENCH_DIR/lib/common.sh"
# shellcheck source=lib/images.sh
source "$BENCH_DIR/lib/images.sh"
# shellcheck source=lib/prefetch.sh
source "$BENCH_DIR/lib/prefetch.sh"

QUICK=${QUICK:-0}
[ "$QUICK" = 1 ] && RUNS=${RUNS:-1}
RUNS=${RUNS:-5}
TAG_TTL=3600
export RUST_LOG=${FERRY_RUST_LOG:-warn}
ferry_binary
require skopeo docker-registry jq curl python3

standalone_upstream
prefetch_phase

echo "Command: \`$([ "$QUICK" = 1 ] && echo 'QUICK=1 ')RUNS=$RUNS benches/prefetch.sh\`, ferry $(cd "$ROOT" && git rev-parse --short HEAD), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
prefetch_section
print_warnings
