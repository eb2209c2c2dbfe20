#!/usr/bin/env bash
# Upstream requests per 1,000 pulls of a realistic tag mix: ferry with tag
# patterns (release and CI tags never revalidated), ferry without them, and
# the peer (CNCF distribution in proxy mode), in one run against one
# upstream docker-registry whose own access log does the counting.
#
#   benches/tag_mix.sh            # ~1.5 min after the build
#
# Knobs (environment):
#   PULLS=1000        manifest pulls per server (lib/tag_mix.py: 35% latest,
#                     30% release tags, 20% CI tags, 15% by digest)
#   TTL=2             the tag TTL, seconds: time is compressed, TTL stands
#                     for ferry's default 300 s
#   SPAN=20           seconds the pulls are spread over (SPAN/TTL TTLs)
#   FERRY_BIN=path    use this ferry binary instead of `cargo build --release`
#                     (request counts do not depend on the build profile)
#   KEEP_WORK=1       keep the scratch directory (logs) afterwards
# Prints a markdown report on stdout; progress on stderr.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
shopt -s inherit_errexit

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
# shellcheck source=lib/common.sh
source "$BENCH_DIR/lib/common.sh"
# shellcheck source=lib/images.sh
source "$BENCH_DIR/lib/images.sh"

PULLS=${PULLS:-1000}
TTL=${TTL:-2}
SPAN=${SPAN:-20}
export RUST_LOG=${FERRY_RUST_LOG:-warn}
REPO=bench/app

for cmd in docker-registry curl jq python3; do
  command -v "$cmd" >/dev/null || die "needs $cmd (apt: docker-registry curl jq python3)"
done
ferry_binary
make_work ferry-tagmix

# The upstream, with its access log on: one line per request it answered.
UP_PORT=$(free_port)
UP_LOG="$WORK/logs/upstream.log"
registry_config "$WORK/upstream.yml" "$WORK/upstream" "$UP_PORT" info
sed -i 's/disabled: true/disabled: false/' "$WORK/upstream.yml"
docker-registry serve "$WORK/upstream.yml" >>"$UP_LOG" 2>&1 &
BENCH_PIDS+=("$!")
UP="http://127.0.0.1:$UP_PORT"
wait_http "$UP/v2/" 30

log "pushing the mix's 41 manifests to $REPO"
random_file "$WORK/layer" 1
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$WORK/config.json"
LAYER="$(push_blob "$UP" "$REPO" "$WORK/layer"):$(size_of "$WORK/layer")"
CONFIG="$(push_blob "$UP" "$REPO" "$WORK/config.json"):$(size_of "$WORK/config.json")"
python3 "$BENCH_DIR/lib/tag_mix.py" push --registry "$UP" --repo "$REPO" \
  --config "$CONFIG" --layer "$LAYER" --out "$WORK/tags.json"

# upstream_requests METHOD: manifest requests of METHOD in the access log.
upstream_requests() {
  grep -cE "\"$1 /v2/$REPO/manifests/" "$UP_LOG" || true
}

# start_ferry_config NAME POLICY_TOML: ferry with one cache `up` of the
# upstream, tag TTL $TTL, and POLICY_TOML lines in its [[cache]].
start_ferry_config() {
  local name=$1 policy=$2
  cat >"$WORK/$name.toml" <<EOF
listen = "127.0.0.1:0"
data_dir = "$WORK/$name"

[[cache]]
base_path = "up"
upstream = "$UP"
tag_ttl_secs = $TTL
$policy
EOF
  start_ferry_args "$name" --config "$WORK/$name.toml"
}

declare -A HEADS GETS
# measure NAME BASE_URL: runs the mix through BASE_URL and records the
# upstream manifest requests it caused.
measure() {
  local name=$1 base=$2 h0 g0
  h0=$(upstream_requests HEAD)
  g0=$(upstream_requests GET)
  log "$name: $PULLS pulls over ${SPAN}s (tag TTL ${TTL}s)"
  python3 "$BENCH_DIR/lib/tag_mix.py" pull --base "$base" --tags "$WORK/tags.json" \
    --count "$PULLS" --seconds "$SPAN" >"$WORK/logs/$name.mix" || die "$name: the mix failed"
  HEADS[$name]=$(($(upstream_requests HEAD) - h0))
  GETS[$name]=$(($(upstream_requests GET) - g0))
  log "$name: ${HEADS[$name]} HEAD + ${GETS[$name]} GET upstream ($(cat "$WORK/logs/$name.mix"))"
}

start_ferry_config ferry-plain ""
measure ferry-plain "http://127.0.0.1:$FERRY_PORT/v2/up/$REPO"
stop_pid "$FERRY_PID"

start_ferry_config ferry-patterns 'tag_policies = [{ pattern = "v*.*.*", ttl = "never" }, { pattern = "*-sha-*", ttl = "never" }]'
measure ferry-patterns "http://127.0.0.1:$FERRY_PORT/v2/up/$REPO"
stop_pid "$FERRY_PID"

start_registry peer "$WORK/peer" warn "$UP"
measure peer "http://127.0.0.1:$REG_PORT/v2/$REPO"
stop_pid "$REG_PID"

per_1000() { awk -v n="$1" -v p="$PULLS" 'BEGIN { printf "%.0f", n * 1000 / p }'; }
total() { echo $((HEADS[$1] + GETS[$1])); }
cat <<EOF
## Upstream requests per 1,000 pulls of a tag mix

\`PULLS=$PULLS TTL=$TTL SPAN=$SPAN benches/tag_mix.sh\` ($(date -u +%Y-%m-%d), ferry $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?'), $(docker-registry --version | awk '{print $2, $3}'))

Mix (lib/tag_mix.py, seed 14): 35% \`latest\`, 30% release tags \`v1.0.N\`, 20% CI tags
\`main-sha-XXXXXXX\`, 15% by digest; $PULLS manifest pulls spread over ${SPAN} s with
a tag TTL of ${TTL} s ($((SPAN / TTL)) TTLs). Counted in the upstream's access log.

| server | upstream HEAD | upstream GET | total | per 1,000 pulls |
|---|---:|---:|---:|---:|
| ferry, tag patterns (\`v*.*.*\`, \`*-sha-*\` never) | ${HEADS[ferry-patterns]} | ${GETS[ferry-patterns]} | $(total ferry-patterns) | $(per_1000 "$(total ferry-patterns)") |
| ferry, no patterns | ${HEADS[ferry-plain]} | ${GETS[ferry-plain]} | $(total ferry-plain) | $(per_1000 "$(total ferry-plain)") |
| peer (distribution proxy) | ${HEADS[peer]} | ${GETS[peer]} | $(total peer) | $(per_1000 "$(total peer)") |

Saved by the patterns: $(($(total ferry-plain) - $(total ferry-patterns))) of $(total ferry-plain) requests
($(awk -v a="$(total ferry-patterns)" -v b="$(total ferry-plain)" 'BEGIN { printf "%.0f", (1 - a / b) * 100 }')%); against the peer: $(($(total peer) - $(total ferry-patterns))) of $(total peer).
EOF
