#!/usr/bin/env bash
# ferry's object-store tests on a second engine: a three-node Garage
# cluster on this machine (replication factor 3), in place of the SeaweedFS
# the test command uses.
#
#   scripts/garage.sh                  # the object-store stage below
#   scripts/garage.sh s3_engine::      # or the test filters given
#
# Runs `FERRY_E2E_STORAGE=s3 cargo test --test e2e -- pull:: offline::
# faults:: storage:: s3_engine:: cluster::` with the run's shared store
# pointed at Garage (FERRY_E2E_S3_ENDPOINT and friends,
# tests/e2e/support/s3_api.rs). Garage is AGPL-3.0: it runs here as a
# separate server only, never linked.
#
# The garage binary: $FERRY_GARAGE, else target/garage/bin/garage, else it
# is installed there (`cargo install garage --version 2.5.0 --locked`,
# about 17 minutes on 2 cores), so this need not run in every CI run.
# KEEP_WORK=1 keeps the Garage directories and logs.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

say() { printf '[garage.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

GARAGE_VERSION=2.5.0
garage_bin=${FERRY_GARAGE:-$root/target/garage/bin/garage}
if [ ! -x "$garage_bin" ]; then
  [ -z "${FERRY_GARAGE:-}" ] || die "no garage binary at FERRY_GARAGE=$FERRY_GARAGE"
  say "installing garage $GARAGE_VERSION into target/garage (about 17 minutes on 2 cores)"
  cargo install garage --version "$GARAGE_VERSION" --locked --root "$root/target/garage"
fi
for cmd in curl python3 openssl; do
  command -v "$cmd" >/dev/null || die "$cmd is needed"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/ferry-garage.XXXXXX")
pids=()
cleanup() {
  local rc=$? pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "${KEEP_WORK:-0}" = 1 ]; then say "kept $work"; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

region=garage
rpc_secret=$(openssl rand -hex 32)
admin_token=$(openssl rand -hex 24)
declare -a rpc s3 admin
for n in 1 2 3; do
  rpc[n]=$(free_port) s3[n]=$(free_port) admin[n]=$(free_port)
  mkdir -p "$work/n$n/meta" "$work/n$n/data"
  cat >"$work/n$n.toml" <<EOF
metadata_dir = "$work/n$n/meta"
data_dir = "$work/n$n/data"
db_engine = "sqlite"
replication_factor = 3
rpc_bind_addr = "127.0.0.1:${rpc[n]}"
rpc_public_addr = "127.0.0.1:${rpc[n]}"
rpc_secret = "$rpc_secret"

[s3_api]
s3_region = "$region"
api_bind_addr = "127.0.0.1:${s3[n]}"

[admin]
api_bind_addr = "127.0.0.1:${admin[n]}"
admin_token = "$admin_token"
EOF
  chmod 600 "$work/n$n.toml"
  "$garage_bin" -c "$work/n$n.toml" server >"$work/n$n.log" 2>&1 &
  pids+=("$!")
done
g() { "$garage_bin" -c "$work/n1.toml" "$@"; }

# until NAME CMD...: runs CMD every 0.2 s until it succeeds, for up to 60 s.
until_ok() {
  local what=$1 i
  shift
  for ((i = 0; i < 300; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  die "$what: not within 60 s ($(tail -3 "$work/n1.log"))"
}

say "garage $("$garage_bin" --version 2>/dev/null | head -1): three nodes, RPC ports ${rpc[*]}"
ids=()
for n in 1 2 3; do
  until_ok "node $n answers" "$garage_bin" -c "$work/n$n.toml" node id -q
  ids+=("$("$garage_bin" -c "$work/n$n.toml" node id -q 2>/dev/null)")
done
for n in 2 3; do g node connect "${ids[n - 1]}" >/dev/null; done
for id in "${ids[@]}"; do g layout assign -z dc1 -c 1G "${id%%@*}" >/dev/null; done
g layout apply --version 1 >/dev/null
g key create ferry-key >/dev/null
key_info=$(g key info ferry-key --show-secret)
access_key=$(awk -F': *' '/^Key ID/ {print $2; exit}' <<<"$key_info")
secret_key=$(awk -F': *' '/^Secret key/ {print $2; exit}' <<<"$key_info")
[ -n "$access_key" ] && [ -n "$secret_key" ] || die "no key in: $key_info"
g bucket create ferry >/dev/null
g bucket allow --read --write --owner ferry --key ferry-key >/dev/null

endpoint="http://127.0.0.1:${s3[1]}"
# The bucket answers a signed listing on every node once the layout is in.
bucket_lists() {
  local n code
  for n in 1 2 3; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --aws-sigv4 "aws:amz:$region:s3" \
      --user "$access_key:$secret_key" \
      -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
      "http://127.0.0.1:${s3[n]}/ferry?list-type=2&max-keys=1")
    [ "$code" = 200 ] || return 1
  done
}
until_ok "the bucket lists on every node" bucket_lists
say "cluster up: S3 on $endpoint (and ${s3[2]}, ${s3[3]}), bucket ferry"

filters=("$@")
[ ${#filters[@]} -gt 0 ] || filters=(pull:: offline:: faults:: storage:: s3_engine:: cluster::)
say "cargo test --test e2e -- ${filters[*]}"
set +e
FERRY_E2E_STORAGE=s3 \
  FERRY_E2E_S3_ENDPOINT=$endpoint \
  FERRY_E2E_S3_ACCESS_KEY=$access_key \
  FERRY_E2E_S3_SECRET_KEY=$secret_key \
  FERRY_E2E_S3_BUCKET=ferry \
  FERRY_E2E_S3_REGION=$region \
  cargo test --test e2e -- "${filters[@]}" --nocapture 2>&1 | tee "$work/test.log" |
  grep -E "^test |test result|create-only PUT|multi-range GET|panicked"
rc=${PIPESTATUS[0]}
set -e
say "cargo test exited $rc"
exit "$rc"
