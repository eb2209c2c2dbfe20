#!/usr/bin/env bash
# ferry on an S3-compatible object store (SeaweedFS) against ferry on its
# local directory and against the engine itself, same blob, same run:
#
#   FERRY_BIN=target/release/ferry benches/object_store.sh
#
#   cold       one GET of a BLOB_MB random blob not yet cached (upstream →
#              staged file → store), body checked against the digest, and
#              the ferry's peak RSS during it (VmHWM, reset before): on the
#              object store that includes the multipart upload;
#   warm MB/s  GETs of the stored blob (median of RUNS, the servers taking
#              turns); "engine" is a signed GET of the object straight
#              from SeaweedFS's S3 API (curl --aws-sigv4): the limit;
#   cold pull  `skopeo copy` of an image new to both ferries (PULL_LAYERS_MB),
#              straight from the upstream, then through each ferry (median
#              of PULLS images; manifest and blobs checked).
# Knobs: BLOB_MB=256 RUNS=5 PULLS=3 PULL_LAYERS_MB="32 16 8" BENCH_TMP=/var/tmp KEEP_WORK=1
# FERRY_WEED (default target/seaweedfs/bin/weed, which scripts/test.sh installs).
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

BLOB_MB=${BLOB_MB:-256}
RUNS=${RUNS:-5}
PULLS=${PULLS:-3}
PULL_LAYERS_MB=${PULL_LAYERS_MB:-32 16 8}
TAG_TTL=3600
export RUST_LOG=${FERRY_RUST_LOG:-warn}

for cmd in docker-registry curl sha256sum python3 skopeo; do
  command -v "$cmd" >/dev/null || die "$cmd is needed"
done
ferry_binary
make_work ferry-s3

start_registry upstream "$WORK/upstream-data" warn
UP="http://127.0.0.1:$REG_PORT"
log "pushing a $BLOB_MB MiB random blob to the upstream"
make_image "$UP" bench/big v1 "$WORK/img" raw "$BLOB_MB"
# shellcheck disable=SC1091
source "$WORK/img/image.env"
DIGEST=${LAYER_DIGESTS%% *} BYTES=$(size_of "$LAYER0_FILE")
rm -f "$LAYER0_FILE"

start_seaweed
s3_storage_toml bench/ >"$WORK/s3.toml"

declare -A URL PID PORT
start_ferry local "$WORK/local-data" "$UP"
PORT[local]=$FERRY_PORT
URL[local]="http://127.0.0.1:$FERRY_PORT/v2/up/bench/big/blobs/$DIGEST"
PID[local]=$FERRY_PID
start_ferry_args s3 --config "$WORK/s3.toml" --listen 127.0.0.1:0 \
  --data-dir "$WORK/s3-data" --cache "up=$UP" --tag-ttl-secs "$TAG_TTL"
URL[s3]="http://127.0.0.1:$FERRY_PORT/v2/up/bench/big/blobs/$DIGEST"
PORT[s3]=$FERRY_PORT
PID[s3]=$FERRY_PID
ENGINE_URL="http://127.0.0.1:$S3_PORT/$BUCKET/bench/blobs/sha256/${DIGEST#sha256:}"

# get NAME: one GET of the blob; prints "seconds bytes/s sha256".
get() {
  local extra=()
  [ "$1" = engine ] && extra=(--aws-sigv4 "aws:amz:us-east-1:s3" --user "$KEY:$SECRET")
  local url=${URL[$1]:-$ENGINE_URL}
  curl -sf "${extra[@]}" "$url" -w '%{time_total} %{speed_download}\n' -o "$WORK/body" >"$WORK/timing" \
    || die "GET $1 failed"
  echo "$(cat "$WORK/timing") $(sha256_of "$WORK/body")"
  rm -f "$WORK/body"
}

declare -A COLD_S HWM
for name in local s3; do
  reset_hwm "${PID[$name]}"
  read -r secs _ sum < <(get "$name")
  [ "sha256:$sum" = "$DIGEST" ] || die "$name: cold body does not match $DIGEST"
  COLD_S[$name]=$secs
  HWM[$name]=$(vmhwm_kib "${PID[$name]}")
  log "$name: cold GET ${secs}s, peak RSS ${HWM[$name]} KiB"
done
read -r _ _ sum < <(get engine)
[ "sha256:$sum" = "$DIGEST" ] || die "the object in the bucket does not match $DIGEST"

declare -A SPEEDS
for ((r = 0; r < RUNS; r++)); do
  for name in local s3 engine; do
    read -r _ speed _ < <(get "$name")
    SPEEDS[$name]+="$speed "
  done
done
echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$WORK/policy.json"
mkdir -p "$WORK/pull"
# pull_secs REF MANIFEST_DIGEST BLOB_DIGESTS: seconds of one skopeo copy into
# a fresh directory (the manifest and every blob checked, then removed).
pull_secs() {
  local ref=$1 manifest=$2 blobs=$3 dest t0 t1 d
  dest=$(mktemp -d -u "$WORK/pull/p.XXXXXX")
  t0=$(now_s)
  skopeo --policy "$WORK/policy.json" copy --quiet --src-tls-verify=false "docker://$ref" "dir:$dest" \
    >>"$WORK/logs/skopeo.log" 2>&1 || die "skopeo copy $ref failed: $(tail -3 "$WORK/logs/skopeo.log")"
  t1=$(now_s)
  [ "$(sha256_of "$dest/manifest.json")" = "${manifest#sha256:}" ] || die "$ref: the manifest differs"
  for d in $blobs; do
    [ "$(sha256_of "$dest/${d#sha256:}")" = "${d#sha256:}" ] || die "$ref: blob $d differs"
  done
  rm -rf "$dest"
  awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f\n", b - a}'
}
declare -A PULL_S
for ((i = 0; i < PULLS; i++)); do
  # shellcheck disable=SC2086 # the sizes are words
  make_image "$UP" "bench/pull$i" v1 "$WORK/pull-img$i" raw $PULL_LAYERS_MB
  # shellcheck disable=SC1091
  source "$WORK/pull-img$i/image.env"
  rm -rf "$WORK/pull-img$i"
  declare -A took=([direct]=$(pull_secs "${UP#http://}/bench/pull$i:v1" "$MANIFEST_DIGEST" "$LAYER_DIGESTS $CONFIG_DIGEST"))
  for name in local s3; do
    took[$name]=$(pull_secs "127.0.0.1:${PORT[$name]}/up/bench/pull$i:v1" "$MANIFEST_DIGEST" "$LAYER_DIGESTS $CONFIG_DIGEST")
  done
  for name in direct local s3; do PULL_S[$name]+="${took[$name]} "; done
  log "cold pull $i (s): direct ${took[direct]}, local ${took[local]}, s3 ${took[s3]}"
done
pull_median() { median ${PULL_S[$1]}; }
PD=$(pull_median direct) PL=$(pull_median local) PS=$(pull_median s3)

mbs() { median ${SPEEDS[$1]} | awk '{printf "%.0f", $1 / 1e6}'; }
L=$(mbs local) S=$(mbs s3) E=$(mbs engine)

cat <<EOF
## ferry on an object store (SeaweedFS $(weed_version))

$(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); blob $BLOB_MB MiB ($BYTES bytes); warm: median of $RUNS.

| | ferry, local dir | ferry, S3 | engine (direct S3 GET) | S3 ÷ local | S3 ÷ engine |
|---|---|---|---|---|---|
| warm GET (MB/s) | $L | $S | $E | $(ratio "$S" "$L") | $(ratio "$S" "$E") |
| cold GET (s) | $(fmt "${COLD_S[local]}" 2) | $(fmt "${COLD_S[s3]}" 2) | | $(ratio "${COLD_S[s3]}" "${COLD_S[local]}") | |
| peak RSS in the cold GET (MiB) | $((HWM[local] / 1024)) | $((HWM[s3] / 1024)) | | | |

| cold pull of $PULL_LAYERS_MB MiB, skopeo (s) | direct from the upstream | through ferry, local dir | through ferry, S3 | S3 ÷ direct | local ÷ direct |
|---|---|---|---|---|---|
| median of $PULLS images | $(fmt "$PD" 2) | $(fmt "$PL" 2) | $(fmt "$PS" 2) | $(ratio "$PS" "$PD") | $(ratio "$PL" "$PD") |

warm runs (bytes/s): local ${SPEEDS[local]}; s3 ${SPEEDS[s3]}; engine ${SPEEDS[engine]}
cold pulls (s): direct ${PULL_S[direct]}; local ${PULL_S[local]}; s3 ${PULL_S[s3]}
EOF
