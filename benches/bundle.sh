#!/usr/bin/env bash
# Phase 9 of benches/run.sh alone: ferry export and import MB/s (through the
# API and on a data directory) against tar of the same files and skopeo copy
# of the same image to and from an OCI layout, and ferry's peak RSS with a
# BUNDLE_MB bundle. See lib/bundle.sh and benches/README.md.
#
#   benches/bundle.sh            # 1 GiB image, BUNDLE_RUNS=3 runs
#   QUICK=1 benches/bundle.sh    # 128 MiB image, 1 run
#
# Knobs: BUNDLE_MB, BUNDLE_RUNS, FERRY_BIN, BENCH_TMP, KEEP_WORK. Needs about
# 4 × BUNDLE_MB of free disk under BENCH_TMP. Prints a markdown section on
# stdout; progress on stderr.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
shopt -s inherit_errexit

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
# shellcheck source=lib/common.sh
source "$BENCH_DIR/lib/common.sh"
# shellcheck source=lib/images.sh
source "$BENCH_DIR/lib/images.sh"
# shellcheck source=lib/bundle.sh
source "$BENCH_DIR/lib/bundle.sh"

QUICK=${QUICK:-0}
TAG_TTL=3600
export RUST_LOG=${FERRY_RUST_LOG:-warn}
ferry_binary
require skopeo docker-registry jq curl python3 tar

standalone_upstream
bundle_phase

echo "Command: \`$([ "$QUICK" = 1 ] && echo 'QUICK=1 ')BUNDLE_MB=$BUNDLE_MB BUNDLE_RUNS=$BUNDLE_RUNS benches/bundle.sh\`, ferry $(cd "$ROOT" && git rev-parse --short HEAD), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
bundle_section
print_warnings
