# shellcheck shell=bash
# Phase 9 of benches/run.sh: carrying a cache across an air gap. ferry
# export and import of one image of BUNDLE_MB MiB (4 random layers), MB/s
# against `tar` of the same files (ferry's stored blob files) and against
# `skopeo copy` of the same image to and from an OCI layout (`oci:DIR:REF`;
# the import side pushes that layout into a fresh docker-registry, since a
# registry is where skopeo imports to), plus ferry's peak RSS (server and
# command) with that bundle: the goal is flat memory, whatever the size.
# Sourced by run.sh and by bundle.sh (uses their WORK, UP, RUNS, QUICK,
# FERRY, warn, policy.json and lib/common.sh, lib/images.sh); sets the
# BUNDLE_* results that bundle_section prints into the report.
#
# Export and import go both ways ferry offers: through a running ferry's
# API (`--url`, streamed) and on a stopped ferry's data directory
# (`--data-dir`). MB/s is the image's bytes (manifest, config, layers) over
# the wall time of the whole command, for every column alike.

BUNDLE_MB=${BUNDLE_MB:-1024}
[ "${QUICK:-0}" = 1 ] && BUNDLE_MB=${BUNDLE_MB_QUICK:-128}
BUNDLE_RUNS=${BUNDLE_RUNS:-3}
[ "${QUICK:-0}" = 1 ] && BUNDLE_RUNS=1

# timed_peak LOGNAME CMD...: runs CMD (output to logs/LOGNAME.log) and sets
# TP_SECONDS and TP_PEAK_KIB (the command's own peak RSS, from
# getrusage(RUSAGE_CHILDREN) of a python parent that only runs it). The
# steps before left up to a GiB to write back: `sync` first (untimed), so
# that each step pays only for its own writes.
timed_peak() {
  local name=$1 out="$WORK/timed_peak.out"
  shift
  sync
  python3 -c '
import resource, subprocess, sys, time
t = time.monotonic()
r = subprocess.run(sys.argv[2:], stdin=subprocess.DEVNULL)
d = time.monotonic() - t
with open(sys.argv[1], "w") as f:
    f.write("%.3f %d\n" % (d, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(r.returncode)' "$out" "$@" >>"$WORK/logs/$name.log" 2>&1 ||
    die "$name failed: $(tail -3 "$WORK/logs/$name.log")"
  read -r TP_SECONDS TP_PEAK_KIB <"$out"
}

bundle_mib() { awk -v k="$1" 'BEGIN {if (k == "") print "–"; else printf "%.1f", k / 1024}'; }
mbps() { awk -v b="$1" -v s="$2" 'BEGIN {if (s > 0) printf "%.1f", b / 1e6 / s; else print "nan"}'; }

# bundle_check URL: the imported image answers with its digest, no upstream.
bundle_check() {
  local got
  got=$(curl -s -H "Accept: $OCI_MANIFEST" -o /dev/null -D - "$1/v2/up/bench/bundle/manifests/v1" |
    tr -d '\r' | awk -F': ' 'tolower($1) == "docker-content-digest" {print $2}')
  [ "$got" = "$BUNDLE_DIGEST" ] || die "the imported image is not served by $1 (digest '$got', want $BUNDLE_DIGEST)"
}

bundle_phase() {
  log "phase 9: export and import of a $BUNDLE_MB MiB image ($BUNDLE_RUNS runs)"
  local quarter=$((BUNDLE_MB / 4)) run a_data="$WORK/ferry-a" t0 t1
  ((quarter > 0)) || die "BUNDLE_MB must be at least 4"
  local free_kib
  free_kib=$(df --output=avail -k "$WORK" | tail -1)
  ((free_kib > BUNDLE_MB * 1024 * 9 / 2)) ||
    die "phase 9 needs about $((BUNDLE_MB * 9 / 2)) MiB free under $WORK, there are $((free_kib / 1024)): set BUNDLE_MB lower"
  make_image "$UP" bench/bundle v1 "$WORK/img-bundle" raw "$quarter" "$quarter" "$quarter" "$quarter"
  # shellcheck disable=SC1091
  source "$WORK/img-bundle/image.env"
  BUNDLE_DIGEST=$MANIFEST_DIGEST BUNDLE_BYTES=$IMAGE_BYTES
  rm -rf "$WORK/img-bundle"
  declare -gA BS=() BR=()

  # ferry A holds the image (one pull through it, checked).
  start_ferry ferry-a "$a_data" "$UP"
  skopeo --policy "$WORK/policy.json" copy --quiet --src-tls-verify=false \
    "docker://127.0.0.1:$FERRY_PORT/up/bench/bundle:v1" "dir:$WORK/pull/bundle" >>"$WORK/logs/skopeo.log" 2>&1 ||
    die "filling ferry A failed: $(tail -3 "$WORK/logs/skopeo.log")"
  [ "sha256:$(sha256_of "$WORK/pull/bundle/manifest.json")" = "$BUNDLE_DIGEST" ] || die "pulled bench/bundle differs"
  rm -rf "$WORK/pull/bundle"
  stop_pid "$FERRY_PID"

  # In an order that keeps at most 4 copies of the image on disk: the
  # upstream's, A's, and two made by the steps (each removed when done).
  for ((run = 1; run <= BUNDLE_RUNS; run++)); do
    # --- export from the stopped ferry A's data directory
    timed_peak export-dir "$FERRY" export --output "$WORK/bundle-dir.tar" --data-dir "$a_data"
    BS[export-dir]+="$(mbps "$BUNDLE_BYTES" "$TP_SECONDS") " BR[export-dir]+="$TP_PEAK_KIB "
    rm -f "$WORK/bundle-dir.tar"

    # --- the same, split into 4 parts (FILE.part001.., FILE.sha256), and
    # imported from the parts given in reverse order into a stopped ferry C
    timed_peak export-split "$FERRY" export --output "$WORK/split.tar" --data-dir "$a_data" --split "$((BUNDLE_MB / 4 + 1))MiB"
    BS[export-split]+="$(mbps "$BUNDLE_BYTES" "$TP_SECONDS") " BR[export-split]+="$TP_PEAK_KIB "
    BUNDLE_PARTS=$(find "$WORK" -maxdepth 1 -name 'split.tar.part*' | wc -l)
    start_ferry ferry-c "$WORK/ferry-c" "http://127.0.0.1:9"
    stop_pid "$FERRY_PID"
    # shellcheck disable=SC2046 # the part names have no spaces
    timed_peak import-split "$FERRY" import --data-dir "$WORK/ferry-c" $(find "$WORK" -maxdepth 1 -name 'split.tar.part*' | sort -r)
    BS[import-split]+="$(mbps "$BUNDLE_BYTES" "$TP_SECONDS") " BR[import-split]+="$TP_PEAK_KIB "
    rm -rf "$WORK/ferry-c" "$WORK"/split.tar.*

    # --- tar of the same files (ferry A's stored blobs), and tar -x of it
    timed_peak tar-c tar -cf "$WORK/files.tar" -C "$a_data" blobs
    BS[export-tar]+="$(mbps "$BUNDLE_BYTES" "$TP_SECONDS") " BR[export-tar]+="$TP_PEAK_KIB "
    mkdir -p "$WORK/untar"
    timed_peak tar-x tar -xf "$WORK/files.tar" -C "$WORK/untar"
    BS[import-tar]+="$(mbps "$BUNDLE_BYTES" "$TP_SECONDS") " BR[import-tar]+="$TP_PEAK_KIB "
    rm -rf "$WORK/untar" "$WORK/files.tar"

    # --- skopeo: the same image from a running ferry A to an OCI layout,
    # then that layout into a fresh registry
    start_ferry ferry-a "$a_data" "$UP"
    local a_pid=$FERRY_PID a_url="http://127.0.0.1:$FERRY_PORT"
    timed_peak skopeo-oci skopeo --policy "$WORK/policy.json" copy --quiet --src-tls-verify=false \
      "docker://127.0.0.1:$FERRY_PORT/up/bench/bundle:v1" "oci:$WORK/oci:v1"
    BS[export-skopeo]+="$(mbps "$BUNDLE_BYTES" "$TP_SECONDS") " BR[export-skopeo]+="$TP_PEAK_KIB "
    start_registry reg-import "$WORK/reg-import" warn
    timed_peak skopeo-push skopeo --policy "$WORK/policy.json" copy --quiet --dest-tls-verify=false \
      "oci:$WORK/oci:v1" "docker://127.0.0.1:$REG_PORT/bench/bundle:v1"
    BS[import-skopeo]+="$(mbps "$BUNDLE_BYTES" "$TP_SECONDS") " BR[import-skopeo]+="$TP_PEAK_KIB "
    stop_pid "$REG_PID"
    rm -rf "$WORK/reg-import" "$WORK/oci"

    # --- export through the API of the running ferry A
    reset_hwm "$a_pid"
    timed_peak export-url "$FERRY" export --output "$WORK/bundle.tar" --url "$a_url" --data-dir "$a_data"
    BS[export-url]+="$(mbps "$BUNDLE_BYTES" "$TP_SECONDS") "
    BR[export-url-cli]+="$TP_PEAK_KIB " BR[export-url-server]+="$(vmhwm_kib "$a_pid") "
    BUNDLE_FILE_BYTES=$(size_of "$WORK/bundle.tar")
    stop_pid "$a_pid"

    # --- import through the API of a fresh ferry B whose upstream is unreachable
    start_ferry ferry-b "$WORK/ferry-b" "http://127.0.0.1:9"
    local b_pid=$FERRY_PID b_url="http://127.0.0.1:$FERRY_PORT"
    reset_hwm "$b_pid"
    timed_peak import-url "$FERRY" import --url "$b_url" --data-dir "$WORK/ferry-b" "$WORK/bundle.tar"
    BS[import-url]+="$(mbps "$BUNDLE_BYTES" "$TP_SECONDS") "
    BR[import-url-cli]+="$TP_PEAK_KIB " BR[import-url-server]+="$(vmhwm_kib "$b_pid") "
    bundle_check "$b_url"
    stop_pid "$b_pid"
    rm -rf "$WORK/ferry-b"

    # --- import into a stopped ferry C's data directory (made by one start)
    start_ferry ferry-c "$WORK/ferry-c" "http://127.0.0.1:9"
    stop_pid "$FERRY_PID"
    timed_peak import-dir "$FERRY" import --data-dir "$WORK/ferry-c" "$WORK/bundle.tar"
    BS[import-dir]+="$(mbps "$BUNDLE_BYTES" "$TP_SECONDS") " BR[import-dir]+="$TP_PEAK_KIB "
    if ((run == 1)); then
      start_ferry ferry-c "$WORK/ferry-c" "http://127.0.0.1:9"
      bundle_check "http://127.0.0.1:$FERRY_PORT"
      stop_pid "$FERRY_PID"
    fi
    rm -rf "$WORK/ferry-c" "$WORK/bundle.tar"
  done
  rm -rf "$a_data"
  local k
  for k in export-url export-dir export-split export-tar export-skopeo import-url import-dir import-split import-tar import-skopeo; do
    log "bundle $k MB/s: ${BS[$k]}"
  done
  log "bundle peak RSS KiB: export url server ${BR[export-url-server]}cli ${BR[export-url-cli]}| dir ${BR[export-dir]}| import url server ${BR[import-url-server]}cli ${BR[import-url-cli]}| dir ${BR[import-dir]}"
}

# The report's section: a table and every run's values.
bundle_section() {
  local k
  declare -A M=() P=()
  # shellcheck disable=SC2086
  for k in "${!BS[@]}"; do M[$k]=$(median ${BS[$k]}); done
  # shellcheck disable=SC2086
  for k in "${!BR[@]}"; do P[$k]=$(max_of ${BR[$k]}); done
  cat <<EOF
### Across the air gap: export and import

One image, bench/bundle:v1: 4 random layers of $((BUNDLE_MB / 4)) MiB, $BUNDLE_BYTES bytes in all (the bundle file: $BUNDLE_FILE_BYTES bytes). MB/s (10^6 bytes/s) is the image's bytes over the whole command's wall time, median of $BUNDLE_RUNS runs. **tar**: \`tar -cf\` of ferry's stored blob files, and \`tar -xf\` of that archive. **skopeo**: \`skopeo copy docker://ferry/... oci:DIR:v1\` (export, from the running ferry), and \`skopeo copy oci:DIR:v1 docker://registry/...\` into a fresh docker-registry (import). Import targets are fresh: ferry B (running, its upstream unreachable) and a stopped ferry's empty data directory; the imported image is then served with its digest.

| # | Measurement | ferry --url (API) | ferry --data-dir | tar | skopeo (OCI layout) | --url ÷ tar | --url ÷ skopeo | --data-dir ÷ tar |
|---|---|---:|---:|---:|---:|---:|---:|---:|
| 9a | Export (MB/s) | $(fmt "${M[export-url]}" 0) | $(fmt "${M[export-dir]}" 0) | $(fmt "${M[export-tar]}" 0) | $(fmt "${M[export-skopeo]}" 0) | $(ratio "${M[export-url]}" "${M[export-tar]}") | $(ratio "${M[export-url]}" "${M[export-skopeo]}") | $(ratio "${M[export-dir]}" "${M[export-tar]}") |
| 9b | Import (MB/s) | $(fmt "${M[import-url]}" 0) | $(fmt "${M[import-dir]}" 0) | $(fmt "${M[import-tar]}" 0) | $(fmt "${M[import-skopeo]}" 0) | $(ratio "${M[import-url]}" "${M[import-tar]}") | $(ratio "${M[import-url]}" "${M[import-skopeo]}") | $(ratio "${M[import-dir]}" "${M[import-tar]}") |

Split media (\`--data-dir\`, $BUNDLE_PARTS parts of at most $((BUNDLE_MB / 4 + 1)) MiB, imported from the parts given in reverse order, each part's checksum checked as it streams):

| # | Measurement | ferry, split | ferry, one file | split ÷ one file | peak RSS, split (MiB) |
|---|---|---:|---:|---:|---:|
| 9e | Export --split (MB/s) | $(fmt "${M[export-split]}" 0) | $(fmt "${M[export-dir]}" 0) | $(ratio "${M[export-split]}" "${M[export-dir]}") | $(bundle_mib "${P[export-split]}") |
| 9f | Import of the parts (MB/s) | $(fmt "${M[import-split]}" 0) | $(fmt "${M[import-dir]}" 0) | $(ratio "${M[import-split]}" "${M[import-dir]}") | $(bundle_mib "${P[import-split]}") |

Peak RSS with the $BUNDLE_MB MiB bundle (MiB, VmHWM; the most of $BUNDLE_RUNS runs; the server's reset before the command):

| # | | ferry server (--url) | ferry command (--url) | ferry command (--data-dir) | tar | skopeo |
|---|---|---:|---:|---:|---:|---:|
| 9c | Export | $(bundle_mib "${P[export-url-server]}") | $(bundle_mib "${P[export-url-cli]}") | $(bundle_mib "${P[export-dir]}") | $(bundle_mib "${P[export-tar]}") | $(bundle_mib "${P[export-skopeo]}") |
| 9d | Import | $(bundle_mib "${P[import-url-server]}") | $(bundle_mib "${P[import-url-cli]}") | $(bundle_mib "${P[import-dir]}") | $(bundle_mib "${P[import-tar]}") | $(bundle_mib "${P[import-skopeo]}") |

$(for k in export-url export-dir export-split export-tar export-skopeo import-url import-dir import-split import-tar import-skopeo; do
    printf -- '- %s MB/s: %s\n' "$k" "${BS[$k]% }"
  done)
EOF
}
