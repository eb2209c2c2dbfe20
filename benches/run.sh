#!/usr/bin/env bash
# ferry's benchmark: ferry against the CNCF distribution registry in proxy
# mode ("the peer"), nginx serving the same blob file (sendfile off), and
# the upstream registry itself, in one run on one machine, with the same
# images on the same disk. See benches/README.md for what each number means.
#
#   benches/run.sh                 # full run (~10-15 min on 2 cores)
#   QUICK=1 benches/run.sh         # smoke check: 1 run each, short wrk, small blobs
#
# Prints a markdown report on stdout (progress goes to stderr) and writes it
# to $OUT (default /var/tmp/ferry-bench-results.md). Knobs (environment):
#   RUNS=5            runs per measurement; the table shows medians
#   WRK_DURATION=5    seconds per wrk run;  WRK_CONNS=32, WRK_THREADS=2
#   BLOB_MB=256       warm blob size;  HUGE_MB=1024  blob for the RSS-while-caching row
#   LAYERS_MB="2 4 6 8 10"  layer sizes of the cold-pull image
#   CONC=20           concurrent cold pulls;  CONC_RUNS=3  times that is repeated (worst shown)
#   TAGS=10000        tags in the start-up test
#   PF_N=20           images prefetched in phase 8 (lib/prefetch.sh; QUICK: 4)
#   BUNDLE_MB=1024    image exported and imported in phase 9 (lib/bundle.sh; QUICK: 128);
#   BUNDLE_RUNS=3     its runs (QUICK: 1)
#   FERRY_BIN=path    use this ferry binary instead of `cargo build --release`
#   BENCH_TMP=/var/tmp  where the scratch directory goes (all servers' data: same disk)
#   KEEP_WORK=1       keep the scratch directory (logs, data) afterwards
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
shopt -s inherit_errexit

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
# shellcheck source=lib/common.sh
source "$BENCH_DIR/lib/common.sh"
# shellcheck source=lib/images.sh
source "$BENCH_DIR/lib/images.sh"
# shellcheck source=lib/partial.sh
source "$BENCH_DIR/lib/partial.sh"
# shellcheck source=lib/prefetch.sh
source "$BENCH_DIR/lib/prefetch.sh"
# shellcheck source=lib/bundle.sh
source "$BENCH_DIR/lib/bundle.sh"

CMDLINE=""
for v in QUICK RUNS WRK_DURATION WRK_CONNS WRK_THREADS BLOB_MB HUGE_MB LAYERS_MB CONC CONC_RUNS TAGS PF_N BUNDLE_MB BUNDLE_RUNS FERRY_BIN; do
  [ -n "${!v:-}" ] && CMDLINE+="$v=${!v} "
done
CMDLINE+="benches/run.sh"
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  RUNS=${RUNS:-1} WRK_DURATION=${WRK_DURATION:-2} BLOB_MB=${BLOB_MB:-64} HUGE_MB=${HUGE_MB:-128}
  CONC_RUNS=${CONC_RUNS:-1} TAGS=${TAGS:-500}
fi
RUNS=${RUNS:-5}
WRK_DURATION=${WRK_DURATION:-5}
WRK_CONNS=${WRK_CONNS:-32}
WRK_THREADS=${WRK_THREADS:-2}
BLOB_MB=${BLOB_MB:-256}
HUGE_MB=${HUGE_MB:-1024}
LAYERS_MB=${LAYERS_MB:-"2 4 6 8 10"}
CONC=${CONC:-20}
CONC_RUNS=${CONC_RUNS:-3}
TAGS=${TAGS:-10000}
TAG_TTL=${TAG_TTL:-3600}
OUT=${OUT:-/var/tmp/ferry-bench-results.md}
export RUST_LOG=${FERRY_RUST_LOG:-warn}

# ------------------------------------------------------------------ setup

install_missing() {
  local -A need=([wrk]=wrk [nginx]=nginx-light [docker-registry]=docker-registry [skopeo]=skopeo
    [jq]=jq [curl]=curl [python3]=python3 [sha256sum]=coreutils [cc]=gcc [podman]=podman)
  local missing=() cmd
  for cmd in "${!need[@]}"; do command -v "$cmd" >/dev/null || missing+=("${need[$cmd]}"); done
  if ((${#missing[@]})); then
    log "installing: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
  fi
}

install_missing
ferry_binary
FERRY_COMMIT=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "${FERRY_BIN:-}" ]; then
  FERRY_COMMIT="binary $FERRY_BIN ($("$FERRY" --version 2>/dev/null || echo '?')); work tree at $FERRY_COMMIT"
elif [ -n "$(cd "$ROOT" && git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ]; then
  FERRY_COMMIT+=" + uncommitted changes in src/"
fi

make_work ferry-bench
mkdir -p "$WORK/pull"
HLOAD="$WORK/hload"
cc -O2 -pthread -o "$HLOAD" "$BENCH_DIR/lib/hload.c" || die "cannot build lib/hload.c"
START_TS=$(date +%s)
LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)

cat >"$WORK/policy.json" <<'EOF'
{"default":[{"type":"insecureAcceptAnything"}]}
EOF
# skopeo copy REF DEST (plain HTTP registries on loopback).
skopeo_pull() {
  skopeo --policy "$WORK/policy.json" copy --quiet --src-tls-verify=false \
    "docker://$1" "dir:$2"
}
# pull_time REF: seconds for one skopeo pull into a fresh dir (checked, removed).
pull_time() {
  local ref=$1 dest t0 t1
  dest=$(mktemp -d -u "$WORK/pull/p.XXXXXX")
  t0=$(now_s)
  skopeo_pull "$ref" "$dest" >>"$WORK/logs/skopeo.log" 2>&1 || die "skopeo pull of $ref failed: $(tail -3 "$WORK/logs/skopeo.log")"
  t1=$(now_s)
  check_pulled "$dest"
  rm -rf "$dest"
  awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f\n", b - a}'
}
# The pulled dir holds the manifest and every blob, with the right digests.
check_pulled() {
  local dir=$1 d
  [ "$(sha256_of "$dir/manifest.json")" = "${MULTI_MANIFEST#sha256:}" ] || die "pulled manifest differs in $dir"
  for d in $MULTI_LAYERS ${MULTI_CONFIG}; do
    [ "$(sha256_of "$dir/${d#sha256:}")" = "${d#sha256:}" ] || die "pulled blob $d wrong in $dir"
  done
}

# ------------------------------------------------------------------ upstream and images

log "work dir $WORK; ferry $FERRY ($FERRY_COMMIT)"
start_registry upstream "$WORK/upstream-data" warn
UP_PORT=$REG_PORT UP_PID=$REG_PID
UP="http://127.0.0.1:$UP_PORT"

log "creating test images in the upstream"
# shellcheck disable=SC2086
make_image "$UP" bench/multi v1 "$WORK/img-multi" tar $LAYERS_MB
# shellcheck disable=SC1091
source "$WORK/img-multi/image.env"
MULTI_MANIFEST=$MANIFEST_DIGEST MULTI_CONFIG=$CONFIG_DIGEST MULTI_LAYERS=$LAYER_DIGESTS MULTI_BYTES=$IMAGE_BYTES
N_LAYERS=$(wc -w <<<"$LAYERS_MB")
MULTI_MIB=$(awk -v b="$MULTI_BYTES" 'BEGIN {printf "%.1f", b / 1048576}')
# A small blob for the many-tags repository: the image's first layer.
TAGS_LAYER="${MULTI_LAYERS%% *}:$(size_of "$LAYER0_FILE")"
rm -f "$WORK"/img-multi/layer*

make_image "$UP" bench/big v1 "$WORK/img-big" raw "$BLOB_MB"
# shellcheck disable=SC1091
source "$WORK/img-big/image.env"
BIG_DIGEST=${LAYER_DIGESTS%% *} BIG_BYTES=$(size_of "$LAYER0_FILE")
rm -f "$WORK"/img-big/layer*

make_image "$UP" bench/huge v1 "$WORK/img-huge" raw "$HUGE_MB"
# shellcheck disable=SC1091
source "$WORK/img-huge/image.env"
HUGE_DIGEST=${LAYER_DIGESTS%% *} HUGE_BYTES=$(size_of "$LAYER0_FILE")
rm -f "$WORK"/img-huge/layer*

log "pushing $TAGS tags to bench/tags"
push_blob "$UP" bench/tags "$WORK/img-multi/config.json" >/dev/null
# The layer already sits in the upstream's storage; a cross-repository
# mount links it into bench/tags without sending it again.
curl -sf -o /dev/null -X POST "$UP/v2/bench/tags/blobs/uploads/?mount=${TAGS_LAYER%:*}&from=bench/multi" ||
  die "blob mount into bench/tags failed"
python3 "$BENCH_DIR/lib/tags.py" push --registry "$UP" --repo bench/tags --count "$TAGS" \
  --config "$MULTI_CONFIG:$(size_of "$WORK/img-multi/config.json")" --layer "$TAGS_LAYER" >&2

# ------------------------------------------------------------------ 1, 2, 5a: warm serving

log "phase 1/2: warm blob and manifest serving"
start_ferry ferry-warm "$WORK/ferry-warm" "$UP"
F_PORT=$FERRY_PORT F_PID=$FERRY_PID
start_registry peer-warm "$WORK/peer-warm" warn "$UP"
P_PORT=$REG_PORT P_PID=$REG_PID

F_BASE="http://127.0.0.1:$F_PORT/v2/up"
P_BASE="http://127.0.0.1:$P_PORT/v2"
U_BASE="$UP/v2"

# Fill both caches: the big blob (checked byte for byte once), the manifests.
for base in "$F_BASE" "$P_BASE"; do
  got=$(curl -sf "$base/bench/big/blobs/$BIG_DIGEST" | sha256sum | cut -d' ' -f1)
  [ "sha256:$got" = "$BIG_DIGEST" ] || die "blob through $base has the wrong content"
  for ref in v1 "$MULTI_MANIFEST"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "Accept: $MANIFEST_ACCEPT" "$base/bench/multi/manifests/$ref")
    [ "$code" = 200 ] || die "manifest $ref through $base: HTTP $code"
  done
done
# nginx serves ferry's own stored copy of the blob.
big_file=$(find "$WORK/ferry-warm" -type f -name "${BIG_DIGEST#sha256:}" | head -1)
[ -n "$big_file" ] || die "ferry's stored file for $BIG_DIGEST not found"
start_nginx "$WORK/ferry-warm"
N_URL="http://127.0.0.1:$NGINX_PORT/${big_file#"$WORK/ferry-warm/"}"

# Peaks from here on are the warm phases' (VmHWM reset to current RSS).
reset_hwm "$F_PID"
reset_hwm "$P_PID"
reset_hwm "$UP_PID"

# blob_speed URL: MB/s (10^6 bytes) of one GET to /dev/null.
blob_speed() {
  local r
  r=$(curl -s -o /dev/null -w '%{http_code} %{size_download} %{speed_download}' "$1")
  read -r code size speed <<<"$r"
  if [ "$code" != 200 ] || [ "$size" != "$BIG_BYTES" ]; then
    warn "blob GET $1: HTTP $code, $size bytes"
    echo nan
    return
  fi
  awk -v s="$speed" 'BEGIN {printf "%.1f\n", s / 1e6}'
}
# ms of CPU (user + system, every thread) per GiB sent, from tick counts.
cpu_ms_per_gib() { awk -v t="$1" -v hz="$(getconf CLK_TCK)" -v b="$2" 'BEGIN {printf "%.0f\n", t * 1000 / hz / (b / 1073741824)}'; }
sleep 0.2
NGINX_PIDS="$NGINX_PID $(pgrep -P "$NGINX_PID" | tr '\n' ' ')"
declare -A BLOB=() BLOBCPU=()
for ((run = 1; run <= RUNS; run++)); do
  for who in ferry peer nginx upstream; do
    case $who in
      ferry) url="$F_BASE/bench/big/blobs/$BIG_DIGEST" pids=$F_PID ;;
      peer) url="$P_BASE/bench/big/blobs/$BIG_DIGEST" pids=$P_PID ;;
      nginx) url=$N_URL pids=$NGINX_PIDS ;;
      upstream) url="$U_BASE/bench/big/blobs/$BIG_DIGEST" pids=$UP_PID ;;
    esac
    # shellcheck disable=SC2086
    t0=$(cpu_ticks $pids)
    BLOB[$who]+="$(blob_speed "$url") "
    # shellcheck disable=SC2086
    BLOBCPU[$who]+="$(cpu_ms_per_gib $(($(cpu_ticks $pids) - t0)) "$BIG_BYTES") "
  done
done
log "blob MB/s: ferry ${BLOB[ferry]}| peer ${BLOB[peer]}| nginx ${BLOB[nginx]}| upstream ${BLOB[upstream]}"
log "blob CPU ms/GiB: ferry ${BLOBCPU[ferry]}| peer ${BLOBCPU[peer]}| nginx ${BLOBCPU[nginx]}| upstream ${BLOBCPU[upstream]}"

# rps URL METHOD: requests/s, or nan if >1% of answers were not 2xx/3xx.
# GET: wrk. HEAD: lib/hload.c (wrk 4.1 waits for a body after a HEAD answer
# that carries Content-Length, and completes no request; see hload.c).
rps() {
  local url=$1 method=$2 out total bad rps
  if [ "$method" = HEAD ]; then
    out=$("$HLOAD" -m HEAD -t "$WRK_THREADS" -c "$WRK_CONNS" -d "$WRK_DURATION" -H "Accept: $MANIFEST_ACCEPT" "$url" 2>&1) || {
      warn "hload HEAD $url failed: $out"
      echo nan
      return
    }
    printf '== %s %s\n%s\n' "$method" "$url" "$out" >>"$WORK/logs/wrk.log"
    read -r _ total _ bad _ errs _ _ _ rps <<<"$out"
    [ "$bad" = 0 ] && bad=
    [ "$errs" = 0 ] || warn "hload HEAD $url: $errs connection errors"
  else
    out=$(wrk -t "$WRK_THREADS" -c "$WRK_CONNS" -d "${WRK_DURATION}s" --timeout 5s \
      -H "Accept: $MANIFEST_ACCEPT" "$url" 2>&1) || {
      warn "wrk $url failed: $out"
      echo nan
      return
    }
    printf '== %s %s\n%s\n' "$method" "$url" "$out" >>"$WORK/logs/wrk.log"
    total=$(awk '/requests in/ {print $1}' <<<"$out")
    bad=$(awk -F: '/Non-2xx or 3xx responses/ {gsub(/ /, "", $2); print $2}' <<<"$out")
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    if grep -q 'Socket errors' <<<"$out"; then
      warn "wrk $url: $(grep 'Socket errors' <<<"$out" | sed 's/^ *//')"
    fi
  fi
  if [ -n "$bad" ]; then
    warn "$method $url: $bad of $total answers were not 2xx/3xx"
    if awk -v b="$bad" -v t="$total" 'BEGIN {exit !(b > t / 100)}'; then
      echo nan
      return
    fi
  fi
  echo "${rps:-nan}"
}
declare -A RPS=()
for kind in tag digest; do
  ref=v1
  [ "$kind" = digest ] && ref=$MULTI_MANIFEST
  for method in GET HEAD; do
    for ((run = 1; run <= RUNS; run++)); do
      for who in ferry peer upstream; do
        case $who in
          ferry) base=$F_BASE ;;
          peer) base=$P_BASE ;;
          upstream) base=$U_BASE ;;
        esac
        RPS[$kind-$method-$who]+="$(rps "$base/bench/multi/manifests/$ref" "$method") "
      done
    done
    log "$method by $kind req/s: ferry ${RPS[$kind-$method-ferry]}| peer ${RPS[$kind-$method-peer]}| upstream ${RPS[$kind-$method-upstream]}"
  done
done

RSS_WARM_F=$(vmhwm_kib "$F_PID")
RSS_WARM_P=$(vmhwm_kib "$P_PID")
RSS_WARM_U=$(vmhwm_kib "$UP_PID")
log "peak RSS warm (KiB): ferry $RSS_WARM_F, peer $RSS_WARM_P, upstream $RSS_WARM_U"
stop_pid "$NGINX_PID"
stop_pid "$F_PID"
stop_pid "$P_PID"
rm -rf "$WORK/ferry-warm" "$WORK/peer-warm"

# ------------------------------------------------------------------ 3: cold pulls

log "phase 3: cold pulls of bench/multi:v1 ($N_LAYERS layers, $MULTI_MIB MiB)"
declare -A COLD=()
for ((run = 1; run <= RUNS; run++)); do
  COLD[direct]+="$(pull_time "127.0.0.1:$UP_PORT/bench/multi:v1") "

  start_ferry "ferry-cold-$run" "$WORK/ferry-cold" "$UP"
  COLD[ferry]+="$(pull_time "127.0.0.1:$FERRY_PORT/up/bench/multi:v1") "
  stop_pid "$FERRY_PID"
  rm -rf "$WORK/ferry-cold"

  start_registry "peer-cold-$run" "$WORK/peer-cold" warn "$UP"
  COLD[peer]+="$(pull_time "127.0.0.1:$REG_PORT/bench/multi:v1") "
  stop_pid "$REG_PID"
  rm -rf "$WORK/peer-cold"
done
log "cold pull s: ferry ${COLD[ferry]}| peer ${COLD[peer]}| direct ${COLD[direct]}"

# ------------------------------------------------------------------ 4: upstream bytes

log "phase 4: bytes the upstream sends"
# A second upstream process on the same storage, logging every response
# (distribution's "response completed" lines carry http.response.written,
# the body bytes), behind the counting proxy (bytes on the wire).
start_registry upstream-logged "$WORK/upstream-data" info
UL_PID=$REG_PID UL_LOG=$REG_LOG
start_count_proxy "$REG_PORT"
COUNTED="http://127.0.0.1:$PROXY_PORT"

# upstream_traffic CMD...: runs CMD, then prints "BODY_BYTES WIRE_BYTES REQUESTS BLOB_GETS".
upstream_traffic() {
  local off body wire reqs gets
  proxy_reset
  off=$(size_of "$UL_LOG")
  "$@"
  sleep 0.5 # the registry logs a response after sending it
  wire=$(proxy_down)
  body=$(tail -c +$((off + 1)) "$UL_LOG" | grep 'response completed' |
    grep -o 'http.response.written=[0-9]*' | awk -F= '{s += $2} END {print s + 0}')
  reqs=$(tail -c +$((off + 1)) "$UL_LOG" | grep -c 'response completed' || true)
  gets=$(tail -c +$((off + 1)) "$UL_LOG" | grep 'response completed' |
    grep 'http.request.method=GET' | grep -c '/blobs/sha256:' || true)
  echo "$body $wire $reqs $gets"
}
one_pull() { pull_time "$1" >/dev/null; }
conc_pulls() {
  local ref=$1 i p fails=0 pids=() dest
  for ((i = 1; i <= CONC; i++)); do
    dest="$WORK/pull/conc-$i"
    rm -rf "$dest"
    skopeo_pull "$ref" "$dest" >>"$WORK/logs/skopeo.log" 2>&1 &
    pids+=($!)
    BENCH_PIDS+=($!)
  done
  for p in "${pids[@]}"; do
    wait "$p" || fails=$((fails + 1))
    stop_pid "$p"
  done
  ((fails == 0)) || warn "$fails of $CONC concurrent pulls of $ref failed"
  for ((i = 1; i <= CONC; i++)); do
    [ -f "$WORK/pull/conc-$i/manifest.json" ] && check_pulled "$WORK/pull/conc-$i"
    rm -rf "$WORK/pull/conc-$i"
  done
}

declare -A BYTES1=() BYTESC=()
BYTES1[direct]=$(upstream_traffic one_pull "127.0.0.1:$PROXY_PORT/bench/multi:v1")
start_ferry ferry-bytes1 "$WORK/ferry-bytes" "$COUNTED"
BYTES1[ferry]=$(upstream_traffic one_pull "127.0.0.1:$FERRY_PORT/up/bench/multi:v1")
stop_pid "$FERRY_PID"
rm -rf "$WORK/ferry-bytes"
start_registry peer-bytes1 "$WORK/peer-bytes" warn "$COUNTED"
BYTES1[peer]=$(upstream_traffic one_pull "127.0.0.1:$REG_PORT/bench/multi:v1")
stop_pid "$REG_PID"
rm -rf "$WORK/peer-bytes"
log "one cold pull, upstream body/wire/requests/blob GETs: ferry ${BYTES1[ferry]} | peer ${BYTES1[peer]} | direct ${BYTES1[direct]} (image $MULTI_BYTES bytes)"

for ((run = 1; run <= CONC_RUNS; run++)); do
  start_ferry "ferry-conc-$run" "$WORK/ferry-bytes" "$COUNTED"
  BYTESC[ferry]+="$(upstream_traffic conc_pulls "127.0.0.1:$FERRY_PORT/up/bench/multi:v1" | tr ' ' '/') "
  stop_pid "$FERRY_PID"
  rm -rf "$WORK/ferry-bytes"
  start_registry "peer-conc-$run" "$WORK/peer-bytes" warn "$COUNTED"
  BYTESC[peer]+="$(upstream_traffic conc_pulls "127.0.0.1:$REG_PORT/bench/multi:v1" | tr ' ' '/') "
  stop_pid "$REG_PID"
  rm -rf "$WORK/peer-bytes"
done
log "$CONC concurrent cold pulls, upstream body/wire/requests/blob GETs: ferry ${BYTESC[ferry]}| peer ${BYTESC[peer]}"
stop_pid "$PROXY_PID"
stop_pid "$UL_PID"

# ------------------------------------------------------------------ 5b: caching a huge blob

log "phase 5: peak RSS while caching a $HUGE_MB MiB blob"
# cold_blob URL: "MB/s peak-RSS-KiB" for one GET of the huge blob, checked.
# (and "MB/s peak-RSS-KiB CPU-ms/GiB").
cold_blob() {
  local url=$1 pid=$2 r t0
  t0=$(cpu_ticks "$pid")
  r=$(curl -s -o /dev/null -w '%{http_code} %{size_download} %{speed_download}' "$url")
  read -r code size speed <<<"$r"
  if [ "$code" != 200 ] || [ "$size" != "$HUGE_BYTES" ]; then warn "huge blob GET $url: HTTP $code, $size bytes"; fi
  sleep 0.5 # let a download that outlives the response finish storing
  printf '%s %s %s\n' "$(awk -v s="$speed" 'BEGIN {printf "%.1f", s / 1e6}')" "$(vmhwm_kib "$pid")" \
    "$(cpu_ms_per_gib $(($(cpu_ticks "$pid") - t0)) "$HUGE_BYTES")"
}
start_ferry ferry-huge "$WORK/ferry-huge" "$UP"
read -r HUGE_SPEED_F RSS_HUGE_F HUGE_CPU_F <<<"$(cold_blob "http://127.0.0.1:$FERRY_PORT/v2/up/bench/huge/blobs/$HUGE_DIGEST" "$FERRY_PID")"
[ -n "$(find "$WORK/ferry-huge" -type f -name "${HUGE_DIGEST#sha256:}")" ] || warn "ferry did not store the $HUGE_MB MiB blob"
stop_pid "$FERRY_PID"
rm -rf "$WORK/ferry-huge"
start_registry peer-huge "$WORK/peer-huge" warn "$UP"
read -r HUGE_SPEED_P RSS_HUGE_P HUGE_CPU_P <<<"$(cold_blob "http://127.0.0.1:$REG_PORT/v2/bench/huge/blobs/$HUGE_DIGEST" "$REG_PID")"
stop_pid "$REG_PID"
rm -rf "$WORK/peer-huge"
reset_hwm "$UP_PID"
read -r HUGE_SPEED_U RSS_HUGE_U HUGE_CPU_U <<<"$(cold_blob "$UP/v2/bench/huge/blobs/$HUGE_DIGEST" "$UP_PID")"
log "huge blob MB/s / peak KiB / CPU ms/GiB: ferry $HUGE_SPEED_F/$RSS_HUGE_F/$HUGE_CPU_F peer $HUGE_SPEED_P/$RSS_HUGE_P/$HUGE_CPU_P upstream $HUGE_SPEED_U/$RSS_HUGE_U/$HUGE_CPU_U"

# ------------------------------------------------------------------ 6: start-up with many tags

log "phase 6: start-up with $TAGS cached tags"
startup_ms() { # URL CMD...
  local url=$1
  shift
  python3 "$BENCH_DIR/lib/startup_time.py" --url "$url" --timeout 120 --log "$WORK/logs/startup.log" -- "$@"
}
# populate: fill a fresh cache with every tag; prints seconds.
populate() {
  local base=$1 t0 t1
  t0=$(now_s)
  python3 "$BENCH_DIR/lib/tags.py" pull --base "$base" --count "$TAGS" --concurrency 8 >&2 ||
    die "pulling $TAGS tags through $base failed"
  t1=$(now_s)
  awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f\n", b - a}'
}
declare -A START=() START0=()
FD="$WORK/ferry-tags"
PORT6=$(free_port)
ferry_at() { FERRY_CMD=("$FERRY" serve --listen "127.0.0.1:$PORT6" --data-dir "$1" --cache "up=$UP" --tag-ttl-secs "$TAG_TTL"); }
ferry_at "$WORK/ferry-empty"
for ((run = 1; run <= RUNS; run++)); do
  rm -rf "$WORK/ferry-empty"
  START0[ferry]+="$(startup_ms "http://127.0.0.1:$PORT6/v2/" "${FERRY_CMD[@]}") "
done
start_ferry ferry-tags "$FD" "$UP"
POP_F=$(populate "http://127.0.0.1:$FERRY_PORT/v2/up/bench/tags")
stop_pid "$FERRY_PID"
FERRY_TAGS_DU=$(du -sh "$FD" | cut -f1)
ferry_at "$FD"
for ((run = 1; run <= RUNS; run++)); do
  START[ferry]+="$(startup_ms "http://127.0.0.1:$PORT6/v2/" "${FERRY_CMD[@]}") "
done
# After the restarts the cache still answers every tag without the upstream.
start_ferry ferry-tags-check "$FD" "http://127.0.0.1:9"
python3 "$BENCH_DIR/lib/tags.py" pull --base "http://127.0.0.1:$FERRY_PORT/v2/up/bench/tags" --count "$TAGS" >&2 ||
  warn "ferry lost cached tags across restarts"
stop_pid "$FERRY_PID"
rm -rf "$FD" "$WORK/ferry-empty"

PD="$WORK/peer-tags"
# (Configs of their own: start_registry writes NAME.yml with a port it picks.)
registry_config "$WORK/peer-tags-restart.yml" "$PD" "$PORT6" warn "$UP"
registry_config "$WORK/peer-empty-restart.yml" "$WORK/peer-empty" "$PORT6" warn "$UP"
for ((run = 1; run <= RUNS; run++)); do
  rm -rf "$WORK/peer-empty"
  START0[peer]+="$(startup_ms "http://127.0.0.1:$PORT6/v2/" docker-registry serve "$WORK/peer-empty-restart.yml") "
done
start_registry peer-tags "$PD" warn "$UP"
POP_P=$(populate "http://127.0.0.1:$REG_PORT/v2/bench/tags")
stop_pid "$REG_PID"
PEER_TAGS_DU=$(du -sh "$PD" | cut -f1)
for ((run = 1; run <= RUNS; run++)); do
  START[peer]+="$(startup_ms "http://127.0.0.1:$PORT6/v2/" docker-registry serve "$WORK/peer-tags-restart.yml") "
done
rm -rf "$PD" "$WORK/peer-empty"
log "start-up ms with $TAGS tags: ferry ${START[ferry]}| peer ${START[peer]}; empty: ferry ${START0[ferry]}| peer ${START0[peer]}"
log "populating $TAGS tags took ${POP_F}s (ferry, $FERRY_TAGS_DU on disk), ${POP_P}s (peer, $PEER_TAGS_DU)"

# ------------------------------------------------------------------ 7: partial pulls

partial_pull_phase

# ------------------------------------------------------------------ 8, 9: across the air gap

prefetch_phase
bundle_phase

# ------------------------------------------------------------------ report

# shellcheck disable=SC2086
m() { median $1; } # word-split on purpose
mib() { awk -v k="$1" 'BEGIN {if (k == "") print ""; else printf "%.1f", k / 1024}'; }
# bytes_ratio "BODY WIRE REQS GETS" field-number: that field / image bytes.
bytes_ratio() { awk -v s="$1" -v f="$2" -v img="$MULTI_BYTES" 'BEGIN {split(s, a, /[ \/]/); printf "%.3f", a[f] / img}'; }
worst_ratio() { # "B/W/R/G B/W/R/G ..." field -> max ratio
  local x best=0 r
  for x in $1; do
    r=$(bytes_ratio "$x" "$2")
    best=$(max_of "$best" "$r")
  done
  echo "$best"
}
field() { awk -v s="$1" -v f="$2" 'BEGIN {split(s, a, /[ \/]/); print a[f]}'; }

CBF=$(m "${BLOBCPU[ferry]}") CBP=$(m "${BLOBCPU[peer]}") CBN=$(m "${BLOBCPU[nginx]}") CBU=$(m "${BLOBCPU[upstream]}")
BF=$(m "${BLOB[ferry]}") BP=$(m "${BLOB[peer]}") BN=$(m "${BLOB[nginx]}") BU=$(m "${BLOB[upstream]}")
declare -A R=()
for k in "${!RPS[@]}"; do R[$k]=$(m "${RPS[$k]}"); done
CF=$(m "${COLD[ferry]}") CP=$(m "${COLD[peer]}") CD=$(m "${COLD[direct]}")
SF=$(m "${START[ferry]}") SP=$(m "${START[peer]}")
S0F=$(m "${START0[ferry]}") S0P=$(m "${START0[peer]}")
B1F=$(bytes_ratio "${BYTES1[ferry]}" 1) B1P=$(bytes_ratio "${BYTES1[peer]}" 1) B1D=$(bytes_ratio "${BYTES1[direct]}" 1)
W1F=$(bytes_ratio "${BYTES1[ferry]}" 2) W1P=$(bytes_ratio "${BYTES1[peer]}" 2) W1D=$(bytes_ratio "${BYTES1[direct]}" 2)
BCF=$(worst_ratio "${BYTESC[ferry]}" 1) BCP=$(worst_ratio "${BYTESC[peer]}" 1)
WCF=$(worst_ratio "${BYTESC[ferry]}" 2) WCP=$(worst_ratio "${BYTESC[peer]}" 2)
ELAPSED=$(($(date +%s) - START_TS))

exact_bytes=$([ "$(field "${BYTES1[ferry]}" 1)" = "$MULTI_BYTES" ] && echo yes || echo "**no**")
rss_max_f=$(max_of "$RSS_WARM_F" "$RSS_HUGE_F")
tag_get_ok=$(
  a=$(meets "$(ratio "${R[tag-GET-ferry]}" "${R[tag-GET-peer]}")" ">=" 10)
  b=$(meets "$(ratio "${R[tag-GET-ferry]}" "${R[tag-GET-upstream]}")" ">=" 2)
  [ "$a" = yes ] && [ "$b" = yes ] && echo yes || echo "**no**"
)
cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
disk_dev=$(df --output=source "$WORK" | tail -1)
# shellcheck disable=SC2001
disk_info="$disk_dev, $(df --output=fstype "$WORK" | tail -1 | tr -d ' '), $(lsblk -dno ROTA,SIZE "$(sed 's/[0-9]*$//' <<<"$disk_dev")" 2>/dev/null | awk '{print "size " $2 ", kernel reports rotational=" $1}')"

report() {
  cat <<EOF
# ferry benchmark results

- **Date:** $(date -u '+%Y-%m-%d %H:%M UTC'); total run time $((ELAPSED / 60)) min $((ELAPSED % 60)) s
- **Command:** \`$CMDLINE\` (runs per measurement: $RUNS, medians shown; wrk (GET) and lib/hload.c (HEAD) ${WRK_DURATION} s × $WRK_CONNS connections × $WRK_THREADS threads)
- **ferry:** $FERRY_COMMIT, release build, RUST_LOG=warn, tag TTL ${TAG_TTL} s
- **Machine:** $(nproc) cores ($cpu_model), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM, kernel $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME")
- **Disk:** $disk_info (every server's data and the test images on it; blob reads come from the page cache when warm)
- **Load average:** $LOAD_AT_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end (1, 5, 15 min; load from other processes on the machine shows up as noise)
- **Peer / baselines:** $(docker-registry --version 2>/dev/null | awk '{print $2, $3}') in proxy mode (the peer) and as the upstream; nginx $(nginx -v 2>&1 | sed 's|.*/||') with \`sendfile off\`; $(wrk -v 2>&1 | head -1 | awk '{print "wrk", $2}'); $(skopeo --version)
- **Images:** bench/multi:v1 = $N_LAYERS uncompressed tar layers of random bytes ($LAYERS_MB MiB), $MULTI_BYTES bytes with config and manifest; bench/big = one $BLOB_MB MiB random blob; bench/huge = one $HUGE_MB MiB random blob; bench/tags = $TAGS tags (distinct manifests)

"Ratio" is ferry ÷ peer. Higher is better for MB/s and req/s; lower is better for seconds, bytes, MiB and ms.

| # | Measurement | ferry | peer | nginx | upstream | ferry ÷ peer | target | ferry vs. target | met |
|---|---|---:|---:|---:|---:|---:|---|---|---|
| 1 | Warm blob GET, $BLOB_MB MiB (MB/s) | $(fmt "$BF" 0) | $(fmt "$BP" 0) | $(fmt "$BN" 0) | $(fmt "$BU" 0) | $(ratio "$BF" "$BP") | ≥ 0.9× nginx | $(ratio "$BF" "$BN")× nginx | $(meets "$(ratio "$BF" "$BN" 3)" ">=" 0.9) |
| 1b | CPU time serving that blob (ms per GiB, user + system, all threads) | $(fmt "$CBF" 0) | $(fmt "$CBP" 0) | $(fmt "$CBN" 0) | $(fmt "$CBU" 0) | $(ratio "$CBF" "$CBP") | – | $(ratio "$CBF" "$CBN")× nginx | |
| 2a | Warm manifest GET by tag (req/s) | $(fmt "${R[tag-GET-ferry]}" 0) | $(fmt "${R[tag-GET-peer]}" 0) | – | $(fmt "${R[tag-GET-upstream]}" 0) | $(ratio "${R[tag-GET-ferry]}" "${R[tag-GET-peer]}" 1) | ≥ 10× peer and ≥ 2× upstream | $(ratio "${R[tag-GET-ferry]}" "${R[tag-GET-peer]}" 1)× peer, $(ratio "${R[tag-GET-ferry]}" "${R[tag-GET-upstream]}")× upstream | $tag_get_ok |
| 2b | Warm manifest HEAD by tag (req/s) | $(fmt "${R[tag-HEAD-ferry]}" 0) | $(fmt "${R[tag-HEAD-peer]}" 0) | – | $(fmt "${R[tag-HEAD-upstream]}" 0) | $(ratio "${R[tag-HEAD-ferry]}" "${R[tag-HEAD-peer]}" 1) | – | $(ratio "${R[tag-HEAD-ferry]}" "${R[tag-HEAD-upstream]}")× upstream | |
| 2c | Warm manifest GET by digest (req/s) | $(fmt "${R[digest-GET-ferry]}" 0) | $(fmt "${R[digest-GET-peer]}" 0) | – | $(fmt "${R[digest-GET-upstream]}" 0) | $(ratio "${R[digest-GET-ferry]}" "${R[digest-GET-peer]}" 1) | – | $(ratio "${R[digest-GET-ferry]}" "${R[digest-GET-upstream]}")× upstream | |
| 2d | Warm manifest HEAD by digest (req/s) | $(fmt "${R[digest-HEAD-ferry]}" 0) | $(fmt "${R[digest-HEAD-peer]}" 0) | – | $(fmt "${R[digest-HEAD-upstream]}" 0) | $(ratio "${R[digest-HEAD-ferry]}" "${R[digest-HEAD-peer]}" 1) | – | $(ratio "${R[digest-HEAD-ferry]}" "${R[digest-HEAD-upstream]}")× upstream | |
| 3 | Cold pull of bench/multi:v1, $MULTI_MIB MiB, skopeo → dir: (s; upstream = direct pull) | $(fmt "$CF" 2) | $(fmt "$CP" 2) | – | $(fmt "$CD" 2) | $(ratio "$CF" "$CP") | ≤ 1.10× direct | $(ratio "$CF" "$CD")× direct | $(meets "$(ratio "$CF" "$CD" 3)" "<=" 1.10) |
| 4a | Upstream body bytes, one cold pull (× image size; upstream = direct pull) | $B1F | $B1P | – | $B1D | $(ratio "$B1F" "$B1P") | exactly 1.0× | $(field "${BYTES1[ferry]}" 1) of $MULTI_BYTES bytes | $exact_bytes |
| 4b | Upstream wire bytes incl. HTTP headers, one cold pull (× image size) | $W1F | $W1P | – | $W1D | $(ratio "$W1F" "$W1P") | – | $(ratio "$W1F" "$W1D" 4)× direct | |
| 4c | Upstream body bytes, $CONC concurrent cold pulls (× image size; worst of $CONC_RUNS) | $BCF | $BCP | – | – | $(ratio "$BCF" "$BCP" 3) | ≤ 1.02× | $BCF× | $(meets "$BCF" "<=" 1.02) |
| 4d | Upstream wire bytes, $CONC concurrent cold pulls (× image size; worst of $CONC_RUNS) | $WCF | $WCP | – | – | $(ratio "$WCF" "$WCP" 3) | – | | |
| 5a | Peak RSS during 1 and 2 (MiB, VmHWM) | $(mib "$RSS_WARM_F") | $(mib "$RSS_WARM_P") | – | $(mib "$RSS_WARM_U") | $(ratio "$RSS_WARM_F" "$RSS_WARM_P") | < 40 MiB | $(mib "$RSS_WARM_F") MiB | $(meets "$(mib "$RSS_WARM_F")" "<" 40) |
| 5b | Peak RSS while caching a $HUGE_MB MiB blob (MiB; upstream = serving it) | $(mib "$RSS_HUGE_F") | $(mib "$RSS_HUGE_P") | – | $(mib "$RSS_HUGE_U") | $(ratio "$RSS_HUGE_F" "$RSS_HUGE_P") | < 40 MiB | $(mib "$RSS_HUGE_F") MiB | $(meets "$(mib "$RSS_HUGE_F")" "<" 40) |
| 5c | Cold GET of the $HUGE_MB MiB blob through the cache (MB/s; upstream = direct) | $(fmt "$HUGE_SPEED_F" 0) | $(fmt "$HUGE_SPEED_P" 0) | – | $(fmt "$HUGE_SPEED_U" 0) | $(ratio "$HUGE_SPEED_F" "$HUGE_SPEED_P") | – | $(ratio "$HUGE_SPEED_F" "$HUGE_SPEED_U")× direct | |
| 5d | CPU time of that cold GET (ms per GiB; upstream = serving it) | $(fmt "$HUGE_CPU_F" 0) | $(fmt "$HUGE_CPU_P" 0) | – | $(fmt "$HUGE_CPU_U" 0) | $(ratio "$HUGE_CPU_F" "$HUGE_CPU_P") | – | | |
| 6 | Start-up to first 200 on /v2/ with $TAGS cached tags (ms) | $(fmt "$SF" 0) | $(fmt "$SP" 0) | – | – | $(ratio "$SF" "$SP") | < 200 ms | $(fmt "$SF" 0) ms | $(meets "$SF" "<" 200) |
| 6b | Start-up to /v2/, empty data dir (ms) | $(fmt "$S0F" 0) | $(fmt "$S0P" 0) | – | – | $(ratio "$S0F" "$S0P") | – | | |
| 6c | Filling the cache with $TAGS tags, 8 clients (s; size on disk) | $POP_F ($FERRY_TAGS_DU) | $POP_P ($PEER_TAGS_DU) | – | – | $(ratio "$POP_F" "$POP_P") | – | | |
$(partial_rows)

Upstream requests for one cold pull (all / blob GETs): ferry $(field "${BYTES1[ferry]}" 3) / $(field "${BYTES1[ferry]}" 4), peer $(field "${BYTES1[peer]}" 3) / $(field "${BYTES1[peer]}" 4), direct $(field "${BYTES1[direct]}" 3) / $(field "${BYTES1[direct]}" 4); the image has $((N_LAYERS + 1)) blobs.
For $CONC concurrent pulls, per run as body/wire/requests/blob GETs: ferry \`${BYTESC[ferry]% }\`; peer \`${BYTESC[peer]% }\`.
Peak RSS of ferry over both rows 5a and 5b: $(mib "$rss_max_f") MiB.

Every run's values (medians above):

- blob MB/s: ferry ${BLOB[ferry]% }; peer ${BLOB[peer]% }; nginx ${BLOB[nginx]% }; upstream ${BLOB[upstream]% }
- blob CPU ms/GiB: ferry ${BLOBCPU[ferry]% }; peer ${BLOBCPU[peer]% }; nginx ${BLOBCPU[nginx]% }; upstream ${BLOBCPU[upstream]% }
$(for kind in tag digest; do for method in GET HEAD; do
  printf -- '- %s by %s req/s: ferry %s; peer %s; upstream %s\n' "$method" "$kind" \
    "${RPS[$kind-$method-ferry]% }" "${RPS[$kind-$method-peer]% }" "${RPS[$kind-$method-upstream]% }"
done; done)
- cold pull s: ferry ${COLD[ferry]% }; peer ${COLD[peer]% }; direct ${COLD[direct]% }
- start-up ms with $TAGS tags: ferry ${START[ferry]% }; peer ${START[peer]% }; empty: ferry ${START0[ferry]% }; peer ${START0[peer]% }
$(partial_runs)

$(prefetch_section)

$(bundle_section)
EOF
  print_warnings
}
report | tee "$OUT"
log "report written to $OUT"
