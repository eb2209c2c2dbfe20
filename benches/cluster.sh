#!/usr/bin/env bash
# ferry as a cluster: three nodes on one object store (SeaweedFS), and the
# local read cache, in one run:
#
#   FERRY_BIN=target/release/ferry benches/cluster.sh
#
#   upstream bytes  PULLERS concurrent `skopeo copy` pulls of one image new
#                   to the cluster, spread round-robin over the three nodes;
#                   the bytes the upstream sent (a counting proxy in front
#                   of it, headers included) ÷ the image's bytes. 1.00× is
#                   the target: each blob fetched once by the whole cluster
#                   (it needs the forwarding of cold work to one member;
#                   without it each node fetches on its own, up to 3×);
#   peak RSS        of every node (VmHWM, reset before) while one GET of a
#                   BIG_MB blob through node 1 streams it into the store
#                   (body checked against its digest);
#   local cache     warm GET MB/s of a WARM_MB blob from a ferry with
#                   `[storage] local_cache` against one on the plain object
#                   store and a direct signed GET from the engine (median of
#                   RUNS, taking turns).
# Knobs: PULLERS=20 PULL_LAYERS_MB="32 16 8" BIG_MB=1024 WARM_MB=256 RUNS=5
# BENCH_TMP=/var/tmp KEEP_WORK=1 FERRY_WEED. Markdown on stdout, progress on
# stderr.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
shopt -s inherit_errexit

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
# shellcheck source=lib/common.sh
source "$BENCH_DIR/lib/common.sh"
# shellcheck source=lib/images.sh
source "$BENCH_DIR/lib/images.sh"
# shellcheck source=lib/s3.sh
source "$BENCH_DIR/lib/s3.sh"

PULLERS=${PULLERS:-20}
PULL_LAYERS_MB=${PULL_LAYERS_MB:-32 16 8}
BIG_MB=${BIG_MB:-1024}
WARM_MB=${WARM_MB:-256}
RUNS=${RUNS:-5}
TAG_TTL=3600
export RUST_LOG=${FERRY_RUST_LOG:-warn}

require docker-registry curl sha256sum python3 skopeo jq
ferry_binary
make_work ferry-cluster
mkdir -p "$WORK/pull"
echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$WORK/policy.json"

start_registry upstream "$WORK/upstream-data" warn
UP_PORT=$REG_PORT
UP="http://127.0.0.1:$UP_PORT"
start_count_proxy "$UP_PORT"
VIA_PROXY="http://127.0.0.1:$PROXY_PORT"
start_seaweed

# ------------------------------------------------------------ three nodes
NODE_PORTS=("$(free_port)" "$(free_port)" "$(free_port)")
NODES=""
for p in "${NODE_PORTS[@]}"; do NODES+="${NODES:+, }\"http://127.0.0.1:$p/\""; done
declare -a NODE_PID
for n in 0 1 2; do
  {
    s3_storage_toml cluster/
    printf '[cluster]\nself = "http://127.0.0.1:%s/"\nnodes = [%s]\n' "${NODE_PORTS[n]}" "$NODES"
  } >"$WORK/node$n.toml"
  start_ferry_args "node$n" --config "$WORK/node$n.toml" --listen "127.0.0.1:${NODE_PORTS[n]}" \
    --data-dir "$WORK/node$n-data" --cache "up=$VIA_PROXY" --tag-ttl-secs "$TAG_TTL"
  NODE_PID[n]=$FERRY_PID
done
log "three nodes on ports ${NODE_PORTS[*]}"

# pull REF MANIFEST BLOBS: one skopeo copy into a fresh dir, checked, removed.
pull() {
  local ref=$1 manifest=$2 blobs=$3 dest d
  dest=$(mktemp -d -u "$WORK/pull/p.XXXXXX")
  skopeo --policy "$WORK/policy.json" copy --quiet --src-tls-verify=false "docker://$ref" "dir:$dest" \
    >>"$WORK/logs/skopeo.log" 2>&1 || { echo "skopeo copy $ref failed" >>"$WORK/pull-failures"; return 0; }
  [ "$(sha256_of "$dest/manifest.json")" = "${manifest#sha256:}" ] || echo "$ref: manifest differs" >>"$WORK/pull-failures"
  for d in $blobs; do
    [ "$(sha256_of "$dest/${d#sha256:}")" = "${d#sha256:}" ] || echo "$ref: blob $d differs" >>"$WORK/pull-failures"
  done
  rm -rf "$dest"
}

# ------------------------------------------------- upstream bytes, cold pulls
# shellcheck disable=SC2086 # the sizes are words
make_image "$UP" bench/cold v1 "$WORK/cold-img" raw $PULL_LAYERS_MB
# shellcheck disable=SC1091
source "$WORK/cold-img/image.env"
rm -rf "$WORK/cold-img"
COLD_BYTES=$IMAGE_BYTES
proxy_reset
log "$PULLERS cold pulls of $COLD_BYTES bytes over three nodes"
: >"$WORK/pull-failures"
t0=$(now_s)
pullers=()
for ((i = 0; i < PULLERS; i++)); do
  pull "127.0.0.1:${NODE_PORTS[i % 3]}/up/bench/cold:v1" "$MANIFEST_DIGEST" "$LAYER_DIGESTS $CONFIG_DIGEST" &
  pullers+=("$!")
done
for p in "${pullers[@]}"; do wait "$p"; done
COLD_S=$(awk -v a="$t0" -v b="$(now_s)" 'BEGIN {printf "%.2f", b - a}')
[ -s "$WORK/pull-failures" ] && die "pulls failed: $(head -5 "$WORK/pull-failures")"
UP_DOWN=$(proxy_down)
UP_RATIO=$(ratio "$UP_DOWN" "$COLD_BYTES")
log "upstream sent $UP_DOWN bytes: ${UP_RATIO}×"

# --------------------------------------------------- peak RSS, a 1 GiB blob
log "pushing a $BIG_MB MiB blob"
make_image "$UP" bench/big v1 "$WORK/big-img" raw "$BIG_MB"
# shellcheck disable=SC1091
source "$WORK/big-img/image.env"
BIG_DIGEST=${LAYER_DIGESTS%% *}
rm -rf "$WORK/big-img"
for n in 0 1 2; do reset_hwm "${NODE_PID[n]}"; done
t0=$(now_s)
sum=$(curl -sf "http://127.0.0.1:${NODE_PORTS[0]}/v2/up/bench/big/blobs/$BIG_DIGEST" | sha256sum | cut -d' ' -f1)
BIG_S=$(awk -v a="$t0" -v b="$(now_s)" 'BEGIN {printf "%.2f", b - a}')
[ "sha256:$sum" = "$BIG_DIGEST" ] || die "the $BIG_MB MiB blob came back wrong through node 0"
declare -a HWM_MIB
for n in 0 1 2; do HWM_MIB[n]=$(($(vmhwm_kib "${NODE_PID[n]}") / 1024)); done
log "peak RSS (MiB) per node: ${HWM_MIB[*]}"
for n in 0 1 2; do stop_pid "${NODE_PID[n]}"; done

# ------------------------------------------ local read cache against plain S3
make_image "$UP" bench/warm v1 "$WORK/warm-img" raw "$WARM_MB"
# shellcheck disable=SC1091
source "$WORK/warm-img/image.env"
WARM_DIGEST=${LAYER_DIGESTS%% *}
rm -rf "$WORK/warm-img"
declare -A URL
s3_storage_toml plain/ >"$WORK/plain.toml"
s3_storage_toml cached/ 'local_cache = "4GiB"' >"$WORK/cached.toml"
for name in plain cached; do
  start_ferry_args "$name" --config "$WORK/$name.toml" --listen 127.0.0.1:0 \
    --data-dir "$WORK/$name-data" --cache "up=$UP" --tag-ttl-secs "$TAG_TTL"
  URL[$name]="http://127.0.0.1:$FERRY_PORT/v2/up/bench/warm/blobs/$WARM_DIGEST"
done
ENGINE_URL="http://127.0.0.1:$S3_PORT/$BUCKET/plain/blobs/sha256/${WARM_DIGEST#sha256:}"
# get NAME: one GET of the warm blob, checked; prints bytes/s.
get() {
  local extra=() url=${URL[$1]:-$ENGINE_URL} out
  [ "$1" = engine ] && extra=(--aws-sigv4 "aws:amz:us-east-1:s3" --user "$KEY:$SECRET")
  out=$(curl -sf "${extra[@]}" "$url" -w '%{speed_download}\n' -o "$WORK/body") || die "GET $1 failed"
  [ "sha256:$(sha256_of "$WORK/body")" = "$WARM_DIGEST" ] || die "$1: the body does not match"
  rm -f "$WORK/body"
  echo "$out"
}
get plain >/dev/null
get cached >/dev/null
declare -A SPEEDS
for ((r = 0; r < RUNS; r++)); do
  for name in plain cached engine; do SPEEDS[$name]+="$(get "$name") "; done
done
mbs() { median ${SPEEDS[$1]} | awk '{printf "%.0f", $1 / 1e6}'; }
P=$(mbs plain) C=$(mbs cached) E=$(mbs engine)

cat <<EOF
## ferry as a cluster (three nodes, SeaweedFS $(weed_version))

Command: \`benches/cluster.sh\`, ferry $(cd "$ROOT" && git rev-parse --short HEAD), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg).

| | figure | target |
|---|---|---|
| upstream bytes for $PULLERS concurrent cold pulls of $PULL_LAYERS_MB MiB over three nodes | $UP_DOWN bytes, **${UP_RATIO}×** the image ($COLD_BYTES bytes), ${COLD_S} s | 1.00× |
| peak RSS per node while a $BIG_MB MiB blob streams into the store through node 0 | ${HWM_MIB[0]} / ${HWM_MIB[1]} / ${HWM_MIB[2]} MiB (${BIG_S} s) | flat |

| warm GET of a $WARM_MB MiB blob (MB/s, median of $RUNS) | ferry, local read cache | ferry, plain S3 | engine (direct S3 GET) | cache ÷ plain | plain ÷ engine |
|---|---|---|---|---|---|
| | $C | $P | $E | $(ratio "$C" "$P") | $(ratio "$P" "$E") |

warm runs (bytes/s): cached ${SPEEDS[cached]}; plain ${SPEEDS[plain]}; engine ${SPEEDS[engine]}
EOF
print_warnings
