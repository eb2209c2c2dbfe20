# shellcheck shell=bash
# Phase 7 of benches/run.sh: podman's zstd:chunked partial pulls through
# ferry and through the peer, against full pulls of the same image.
# Sourced by run.sh and by partial_pull.sh (uses their WORK, UP, UP_PORT,
# RUNS, QUICK, warn, policy.json and lib/common.sh); sets the PARTIAL_*
# results that partial_rows and partial_runs print into the report.
#
# The image: bench/partial:v1, one layer of PARTIAL_FILES random files of
# 64 KiB, and bench/partial:v2, the same with every PARTIAL_EVERY-th file
# replaced, both pushed by podman with --compression-format zstd:chunked. A
# podman store that holds v1 pulls v2: with partial pulls on (storage.conf
# pull_options), podman asks for the changed files' chunks as multi-range
# requests; with them off it downloads the whole v2 layer. Both caches hold
# both images already (one skopeo pull each), so this is the serving path.
# Bytes are what a counting proxy between podman and the cache saw
# (headers and bodies, both images' manifests and config included).
# Needs root (podman's overlay driver); skipped with a warning otherwise.

PARTIAL_FILES=${PARTIAL_FILES:-400}
PARTIAL_EVERY=${PARTIAL_EVERY:-20}
[ "${QUICK:-0}" = 1 ] && PARTIAL_FILES=${PARTIAL_FILES_QUICK:-100}
PARTIAL_SKIPPED=""

# podman_cmd STORE PARTIAL(0|1): sets PODMAN to the command for a fresh
# throwaway store (overlay driver; partial pulls on or off).
podman_cmd() {
  local store=$1 partial=$2
  mkdir -p "$store/root" "$store/run" "$store/tmp"
  {
    printf '[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n' "$store/root" "$store/run"
    if [ "$partial" = 1 ]; then
      printf '[storage.options]\npull_options = {enable_partial_images = "true", use_hard_links = "false"}\n'
    fi
  } >"$store/storage.conf"
  echo 'unqualified-search-registries = []' >"$store/registries.conf"
  echo '{}' >"$store/auth.json"
  PODMAN=(env "CONTAINERS_STORAGE_CONF=$store/storage.conf" "CONTAINERS_REGISTRIES_CONF=$store/registries.conf"
    "REGISTRY_AUTH_FILE=$store/auth.json" "HOME=$store"
    podman --root "$store/root" --runroot "$store/run" --tmpdir "$store/tmp" --storage-driver overlay
    --cgroup-manager cgroupfs --events-backend file)
}

# make_partial_image: pushes bench/partial:v1 and :v2 to the upstream.
make_partial_image() {
  local dir="$WORK/img-partial" i v
  mkdir -p "$dir/v1/data" "$dir/v2/data"
  for ((i = 0; i < PARTIAL_FILES; i++)); do
    head -c 65536 /dev/urandom >"$dir/v1/data/f$i"
    if ((i % PARTIAL_EVERY == 0)); then
      head -c 65536 /dev/urandom >"$dir/v2/data/f$i"
    else
      cp "$dir/v1/data/f$i" "$dir/v2/data/f$i"
    fi
  done
  podman_cmd "$WORK/push" 0
  for v in v1 v2; do
    tar -C "$dir/$v" -cf "$dir/$v.tar" .
    "${PODMAN[@]}" import "$dir/$v.tar" "localhost/partial:$v" >>"$WORK/logs/podman.log" 2>&1 ||
      die "podman import failed: $(tail -3 "$WORK/logs/podman.log")"
    "${PODMAN[@]}" push --quiet --tls-verify=false --compression-format zstd:chunked \
      --signature-policy "$WORK/policy.json" "localhost/partial:$v" "127.0.0.1:$UP_PORT/bench/partial:$v" \
      >>"$WORK/logs/podman.log" 2>&1 || die "podman push failed: $(tail -3 "$WORK/logs/podman.log")"
  done
  PARTIAL_V2=$(curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' -o /dev/null -D - \
    "$UP/v2/bench/partial/manifests/v2" | tr -d '\r' | awk -F': ' 'tolower($1) == "docker-content-digest" {print $2}')
  PARTIAL_LAYER_BYTES=$(curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "$UP/v2/bench/partial/manifests/v2" | jq '.layers[0].size')
  PARTIAL_CHANGED_FILE=$dir/v2/data/f0
  rm -rf "$dir/v1" "$WORK/push"
  [ -n "$PARTIAL_V2" ] || die "bench/partial:v2 has no digest upstream"
}

# timed_update HOSTPATH MODE: a fresh store (MODE partial or full) pulls v1,
# then v2 (timed, counted at the proxy); prints "SECONDS BYTES". Checks the
# v2 manifest digest and a changed file.
timed_update() {
  local ref=$1 mode=$2 store t0 t1 bytes digest mnt ok=1
  # Short: podman refuses a runroot path over 50 characters.
  store=$(mktemp -d "$WORK/s.XXXX")
  podman_cmd "$store" "$([ "$mode" = partial ] && echo 1 || echo 0)"
  "${PODMAN[@]}" pull --quiet --tls-verify=false --signature-policy "$WORK/policy.json" "$ref:v1" \
    >>"$WORK/logs/podman.log" 2>&1 || die "podman pull $ref:v1 failed: $(tail -3 "$WORK/logs/podman.log")"
  proxy_reset
  t0=$(now_s)
  "${PODMAN[@]}" pull --quiet --tls-verify=false --signature-policy "$WORK/policy.json" "$ref:v2" \
    >>"$WORK/logs/podman.log" 2>&1 || die "podman pull $ref:v2 failed: $(tail -3 "$WORK/logs/podman.log")"
  t1=$(now_s)
  bytes=$(proxy_down)
  digest=$("${PODMAN[@]}" image inspect --format '{{.Digest}}' "$ref:v2")
  [ "$digest" = "$PARTIAL_V2" ] || die "$mode pull of $ref:v2 recorded $digest, upstream has $PARTIAL_V2"
  mnt=$("${PODMAN[@]}" image mount "$ref:v2")
  cmp -s "$mnt/data/f0" "$PARTIAL_CHANGED_FILE" || ok=0
  "${PODMAN[@]}" image unmount "$ref:v2" >/dev/null
  [ "$ok" = 1 ] || die "$mode pull of $ref:v2: data/f0 differs from the pushed file"
  rm -rf "$store"
  awk -v a="$t0" -v b="$t1" -v n="$bytes" 'BEGIN {printf "%.3f %d\n", b - a, n}'
}

partial_pull_phase() {
  if [ "$(id -u)" != 0 ] || ! command -v podman >/dev/null; then
    PARTIAL_SKIPPED="needs root and podman (overlay storage)"
    warn "phase 7 skipped: $PARTIAL_SKIPPED"
    return
  fi
  log "phase 7: podman zstd:chunked partial pulls ($PARTIAL_FILES files of 64 KiB, every ${PARTIAL_EVERY}th changed)"
  make_partial_image
  declare -gA PT=() PB=()
  local who run mode ref port path v t b r
  for who in ferry peer; do
    if [ "$who" = ferry ]; then
      start_ferry ferry-partial "$WORK/ferry-partial" "$UP"
      port=$FERRY_PORT path=up/bench/partial
    else
      start_registry peer-partial "$WORK/peer-partial" warn "$UP"
      port=$REG_PORT path=bench/partial
    fi
    for v in v1 v2; do
      skopeo --policy "$WORK/policy.json" copy --quiet --src-tls-verify=false \
        "docker://127.0.0.1:$port/$path:$v" "dir:$WORK/pull/partial-warm" >>"$WORK/logs/skopeo.log" 2>&1 ||
        die "warming $who with bench/partial:$v failed"
      rm -rf "$WORK/pull/partial-warm"
    done
    start_count_proxy "$port"
    ref="127.0.0.1:$PROXY_PORT/$path"
    for ((run = 1; run <= RUNS; run++)); do
      for mode in partial full; do
        r=$(timed_update "$ref" "$mode") # (a failure ends the run)
        read -r t b <<<"$r"
        PT[$who-$mode]+="$t "
        PB[$who-$mode]+="$b "
      done
    done
    if [ "$who" = ferry ]; then
      PARTIAL_MULTIPART=$(curl -sf "http://127.0.0.1:$port/metrics" |
        awk '/^ferry_blob_range_requests_total\{answer="multipart"\}/ {print $2}')
      stop_pid "$FERRY_PID"
    else
      stop_pid "$REG_PID"
    fi
    stop_pid "$PROXY_PID"
    rm -rf "$WORK/ferry-partial" "$WORK/peer-partial"
    log "$who: v2 over v1, s: partial ${PT[$who-partial]}| full ${PT[$who-full]}; bytes: partial ${PB[$who-partial]}| full ${PB[$who-full]}"
  done
  [ "${PARTIAL_MULTIPART:-0}" != 0 ] || warn "ferry answered no multi-range request in phase 7"
  if awk -v p="$(median ${PB[ferry-partial]})" -v f="$(median ${PB[ferry-full]})" 'BEGIN {exit !(p > f / 2)}'; then
    warn "ferry's partial pulls moved more than half the bytes of full pulls: did podman fall back?"
  fi
}

# Rows 7a-7d of the report's table.
partial_rows() {
  if [ -n "$PARTIAL_SKIPPED" ]; then
    echo "| 7 | Partial pulls (podman zstd:chunked) | skipped: $PARTIAL_SKIPPED | | | | | | | |"
    return
  fi
  local pbf pbp fbf fbp ptf ptp ftf ftp
  # shellcheck disable=SC2086
  {
    pbf=$(median ${PB[ferry-partial]}) pbp=$(median ${PB[peer-partial]})
    fbf=$(median ${PB[ferry-full]}) fbp=$(median ${PB[peer-full]})
    ptf=$(median ${PT[ferry-partial]}) ptp=$(median ${PT[peer-partial]})
    ftf=$(median ${PT[ferry-full]}) ftp=$(median ${PT[peer-full]})
  }
  kib() { awk -v b="$1" 'BEGIN {printf "%.0f", b / 1024}'; }
  cat <<EOF
| 7a | Partial pull of bench/partial:v2 over v1, podman zstd:chunked: bytes to the client (KiB; layer $(kib "$PARTIAL_LAYER_BYTES") KiB) | $(kib "$pbf") | $(kib "$pbp") | – | – | $(ratio "$pbf" "$pbp" 3) | – | $(ratio "$pbf" "$fbf" 3)× a full pull | |
| 7b | The same, time (s) | $(fmt "$ptf" 2) | $(fmt "$ptp" 2) | – | – | $(ratio "$ptf" "$ptp") | – | $(ratio "$ptf" "$ftf")× a full pull | |
| 7c | Full pull of v2 over v1 (partial pulls off): bytes to the client (KiB) | $(kib "$fbf") | $(kib "$fbp") | – | – | $(ratio "$fbf" "$fbp" 3) | – | | |
| 7d | The same, time (s) | $(fmt "$ftf" 2) | $(fmt "$ftp" 2) | – | – | $(ratio "$ftf" "$ftp") | – | | |
EOF
}

# Every run's values for the report's list.
partial_runs() {
  [ -z "$PARTIAL_SKIPPED" ] || return 0
  printf -- '- partial pull s: ferry %s; peer %s; full pull s: ferry %s; peer %s\n' \
    "${PT[ferry-partial]% }" "${PT[peer-partial]% }" "${PT[ferry-full]% }" "${PT[peer-full]% }"
  printf -- '- partial pull bytes: ferry %s; peer %s; full pull bytes: ferry %s; peer %s (ferry answered %s multi-range requests)\n' \
    "${PB[ferry-partial]% }" "${PB[peer-partial]% }" "${PB[ferry-full]% }" "${PB[peer-full]% }" "${PARTIAL_MULTIPART:-0}"
}
