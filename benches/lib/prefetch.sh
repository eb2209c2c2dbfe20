# shellcheck shell=bash
# Phase 8 of benches/run.sh: pre-warming a cache. `ferry prefetch --file
# LIST` of PF_N images against the same PF_N images pulled one after another
# by `skopeo copy docker://ferry/... dir:` through ferry (what a site does
# without prefetch: a script of pulls), both into a fresh, empty data
# directory each run, from the same upstream. The upstream column is the
# same sequential pulls straight from the upstream.
# Sourced by run.sh and by prefetch.sh (uses their WORK, UP, UP_PORT, RUNS,
# QUICK, FERRY, warn, policy.json and lib/common.sh, lib/images.sh); sets the
# PF_* results that prefetch_section prints into the report.

PF_N=${PF_N:-20}
PF_LAYERS_MB=${PF_LAYERS_MB:-"2 4 8"}
if [ "${QUICK:-0}" = 1 ]; then
  PF_N=${PF_N_QUICK:-4}
  PF_LAYERS_MB=${PF_LAYERS_MB_QUICK:-"1 2"}
fi

# make_prefetch_images: pushes bench/pf1:v1 ... bench/pfN:v1 to the
# upstream (each its own random tar layers) and writes the list file.
make_prefetch_images() {
  local i
  PF_LIST="$WORK/prefetch.list"
  : >"$PF_LIST"
  declare -gA PF_DIGEST=()
  PF_BYTES=0
  for ((i = 1; i <= PF_N; i++)); do
    # shellcheck disable=SC2086
    make_image "$UP" "bench/pf$i" v1 "$WORK/img-pf$i" tar $PF_LAYERS_MB
    # shellcheck disable=SC1091
    source "$WORK/img-pf$i/image.env"
    PF_DIGEST[$i]=$MANIFEST_DIGEST
    PF_BYTES=$((PF_BYTES + IMAGE_BYTES))
    echo "bench/pf$i:v1" >>"$PF_LIST"
    rm -rf "$WORK/img-pf$i"
  done
}

# sequential_pulls HOST_PREFIX: seconds for skopeo to pull every image, one
# after another, each into a fresh dir (its manifest digest checked), in
# SECONDS_TAKEN. (No command substitution around anything that starts a
# server: a subshell would not stop it on failure.)
sequential_pulls() {
  local prefix=$1 i dest t0 t1
  t0=$(now_s)
  for ((i = 1; i <= PF_N; i++)); do
    dest="$WORK/pull/pf$i"
    skopeo --policy "$WORK/policy.json" copy --quiet --src-tls-verify=false \
      "docker://$prefix/bench/pf$i:v1" "dir:$dest" >>"$WORK/logs/skopeo.log" 2>&1 ||
      die "skopeo pull of $prefix/bench/pf$i:v1 failed: $(tail -3 "$WORK/logs/skopeo.log")"
    [ "sha256:$(sha256_of "$dest/manifest.json")" = "${PF_DIGEST[$i]}" ] || die "pulled bench/pf$i manifest differs"
  done
  t1=$(now_s)
  rm -rf "$WORK"/pull/pf*
  SECONDS_TAKEN=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
}

# prefetch_time: seconds for `ferry prefetch` of the list into a fresh ferry
# (exit status 0: every image cached), in SECONDS_TAKEN. The first time,
# ferry is then restarted with an unreachable upstream and every image must
# still pull.
prefetch_time() {
  local data="$WORK/ferry-pf" t0 t1 port
  start_ferry ferry-pf "$data" "$UP"
  port=$FERRY_PORT
  t0=$(now_s)
  "$FERRY" prefetch --file "$PF_LIST" --url "http://127.0.0.1:$port" --data-dir "$data" \
    --distribution up </dev/null >>"$WORK/logs/prefetch.log" 2>&1 ||
    die "ferry prefetch failed: $(tail -3 "$WORK/logs/prefetch.log")"
  t1=$(now_s)
  stop_pid "$FERRY_PID"
  if [ -z "${PF_CHECKED:-}" ]; then
    start_ferry ferry-pf-check "$data" "http://127.0.0.1:9"
    sequential_pulls "127.0.0.1:$FERRY_PORT/up"
    stop_pid "$FERRY_PID"
    PF_CHECKED=1
  fi
  rm -rf "$data"
  SECONDS_TAKEN=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
}

prefetch_phase() {
  log "phase 8: prefetch of $PF_N images ($PF_LAYERS_MB MiB layers each) against $PF_N sequential pulls"
  make_prefetch_images
  declare -gA PFT=()
  local run
  for ((run = 1; run <= RUNS; run++)); do
    prefetch_time
    PFT[prefetch]+="$SECONDS_TAKEN "
    start_ferry ferry-seq "$WORK/ferry-seq" "$UP"
    sequential_pulls "127.0.0.1:$FERRY_PORT/up"
    PFT[sequential]+="$SECONDS_TAKEN "
    stop_pid "$FERRY_PID"
    rm -rf "$WORK/ferry-seq"
    sequential_pulls "127.0.0.1:$UP_PORT"
    PFT[direct]+="$SECONDS_TAKEN "
  done
  log "prefetch s: ferry prefetch ${PFT[prefetch]}| sequential skopeo through ferry ${PFT[sequential]}| direct ${PFT[direct]}"
}

# The report's section: a table and every run's values.
prefetch_section() {
  local p s d mib
  # shellcheck disable=SC2086
  { p=$(median ${PFT[prefetch]}) s=$(median ${PFT[sequential]}) d=$(median ${PFT[direct]}); }
  mib=$(awk -v b="$PF_BYTES" 'BEGIN {printf "%.1f", b / 1048576}')
  cat <<EOF
### Pre-warming: prefetch against sequential pulls

$PF_N images (bench/pf1..$PF_N:v1, tar layers of $PF_LAYERS_MB MiB each; $mib MiB in all), a fresh data directory each run, the same upstream. Medians of $RUNS runs.

| # | Measurement | ferry prefetch | $PF_N × skopeo copy through ferry | $PF_N × skopeo copy from the upstream | prefetch ÷ sequential | prefetch ÷ direct |
|---|---|---:|---:|---:|---:|---:|
| 8 | Cold fill of $PF_N images (s) | $(fmt "$p" 2) | $(fmt "$s" 2) | $(fmt "$d" 2) | $(ratio "$p" "$s") | $(ratio "$p" "$d") |

- runs, s: prefetch ${PFT[prefetch]% }; sequential through ferry ${PFT[sequential]% }; sequential direct ${PFT[direct]% }
EOF
}
