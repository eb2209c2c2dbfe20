#!/usr/bin/env bash
# Peak memory under many clients: ferry against the CNCF distribution
# registry in proxy mode ("the peer"), same loads, same run.
#
#   FERRY_BIN=path benches/memory.sh             # one ferry binary
#   FERRY_BIN=new FERRY_BASE=old benches/memory.sh  # and a second one to compare
#
# Without FERRY_BIN it builds the release static binary as shipped
# (packaging/build-static.sh). For each server, on a fresh data directory:
#   idle       VmHWM right after start-up and one manifest GET;
#   20 cold    20 concurrent GETs of one BLOB_MB random blob that is still
#              downloading: the upstream link is a relay (lib/memload.py)
#              carrying RATE_MIB MiB/s per connection, so the transfer takes
#              BLOB_MB/RATE_MIB seconds and all 20 readers follow it; every
#              body is checked against the digest;
#   20 fast    the same 20 concurrent cold GETs with the upstream direct (no
#              relay), on another fresh data directory: the in-flight
#              readers' throughput (20 x size / time until the last ends;
#              FAST_RUNS rounds, the servers taking turns);
#   warm MB/s  one GET of the now-stored blob (median of RUNS, the servers
#              taking turns, so other load on the machine hits all alike);
#   1k blob    WARM_CONNS keep-alive connections that each GET the stored
#              blob and, once all of them have their answer's headers (all
#              in flight at once), read WARM_READ_MIB MiB of it and close;
#   1k mfst    WARM_CONNS connections that each GET the manifest by tag
#              MANIFEST_ROUNDS times (all of them in flight at once).
# Peak RSS is the kernel's high-water mark (VmHWM in /proc/PID/status),
# reset before each load (clear_refs 5), so it is exact, not sampled.
# Prints a markdown table on stdout; progress on stderr. Knobs:
#   BLOB_MB=256 RATE_MIB=32 RUNS=5 FAST_RUNS=3 WARM_CONNS=1000 WARM_READ_MIB=4 MANIFEST_ROUNDS=20
#   BENCH_TMP=/var/tmp  KEEP_WORK=1  PEER=0 (skip the peer)
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
RATE_MIB=${RATE_MIB:-32}
RUNS=${RUNS:-5}
WARM_CONNS=${WARM_CONNS:-1000}
WARM_READ_MIB=${WARM_READ_MIB:-4}
MANIFEST_ROUNDS=${MANIFEST_ROUNDS:-20}
FAST_RUNS=${FAST_RUNS:-3}
READERS=20
TAG_TTL=3600
export RUST_LOG=${FERRY_RUST_LOG:-warn}

for cmd in docker-registry curl jq python3 sha256sum; do
  command -v "$cmd" >/dev/null || die "$cmd is needed (benches/run.sh installs it)"
done
if [ -z "${FERRY_BIN:-}" ]; then
  log "building the release static binary (packaging/build-static.sh)"
  FERRY_BIN=$("$ROOT/packaging/build-static.sh" | tail -n1)
fi
declare -A BIN=([ferry]=$(readlink -f "$FERRY_BIN"))
SERVERS=(ferry)
if [ -n "${FERRY_BASE:-}" ]; then
  BIN[base]=$(readlink -f "$FERRY_BASE")
  SERVERS+=(base)
fi
[ "${PEER:-1}" = 0 ] || SERVERS+=(peer)

make_work ferry-memory

start_registry upstream "$WORK/upstream-data" warn
UP="http://127.0.0.1:$REG_PORT"
log "pushing a $BLOB_MB MiB random blob to the upstream"
make_image "$UP" bench/big v1 "$WORK/img" raw "$BLOB_MB"
# shellcheck disable=SC1091
source "$WORK/img/image.env"
DIGEST=${LAYER_DIGESTS%% *} BYTES=$(size_of "$LAYER0_FILE")
rm -f "$LAYER0_FILE"

: >"$WORK/logs/relay.out"
python3 "$BENCH_DIR/lib/memload.py" relay --target "127.0.0.1:$REG_PORT" \
  --rate $((RATE_MIB * 1048576)) >"$WORK/logs/relay.out" 2>&1 &
BENCH_PIDS+=("$!")
for ((i = 0; i < 200; i++)); do
  RELAY_PORT=$(sed -n 's/^relay //p' "$WORK/logs/relay.out")
  [ -n "$RELAY_PORT" ] && break
  sleep 0.05
done
[ -n "$RELAY_PORT" ] || die "relay did not start: $(cat "$WORK/logs/relay.out")"
SLOW="http://127.0.0.1:$RELAY_PORT"

# start WHO NAME UPSTREAM: a fresh server; sets PID and BASE (its /v2/ prefix for the upstream's repos).
start() {
  local who=$1 name=$2 upstream=$3
  if [ "$who" = peer ]; then
    start_registry "$name" "$WORK/$name" warn "$upstream"
    PID=$REG_PID BASE="http://127.0.0.1:$REG_PORT/v2"
  else
    FERRY=${BIN[$who]} TAG_TTL=$TAG_TTL start_ferry "$name" "$WORK/$name" "$upstream"
    PID=$FERRY_PID BASE="http://127.0.0.1:$FERRY_PORT/v2/up"
  fi
}

# readers URL: READERS concurrent GETs of URL, each body checked against
# the digest; prints the seconds until the last one ended.
readers() {
  local url=$1 i t0 t1 bad=0
  t0=$(now_s)
  for ((i = 0; i < READERS; i++)); do
    curl -sf --max-time 900 "$url" | sha256sum | cut -d' ' -f1 >"$WORK/reader.$i" &
  done
  # Runs in a subshell ($(readers ...)): its only children are the readers.
  wait
  t1=$(now_s)
  for ((i = 0; i < READERS; i++)); do
    [ "sha256:$(cat "$WORK/reader.$i")" = "$DIGEST" ] || bad=$((bad + 1))
  done
  [ "$bad" = 0 ] || die "$bad of $READERS readers of $url got the wrong bytes"
  awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f\n", b - a}'
}
threads() { awk '/^Threads:/ {print $2}' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
speed() { # one GET of the stored blob: MB/s
  local r code size s
  r=$(curl -s -o /dev/null -w '%{http_code} %{size_download} %{speed_download}' "$1")
  read -r code size s <<<"$r"
  [ "$code" = 200 ] && [ "$size" = "$BYTES" ] || die "warm GET $1: HTTP $code, $size bytes"
  awk -v s="$s" 'BEGIN {printf "%.0f\n", s / 1e6}'
}
warm_load() { # URL READ ROUNDS: runs memload.py warm, dies on failures
  local out
  out=$(python3 "$BENCH_DIR/lib/memload.py" warm --url "$1" --conns "$WARM_CONNS" \
    --read "$2" --rounds "$3" --timeout 300) || die "warm load on $1: $out"
  log "  $out"
}

declare -A IDLE SLOW20 FAST20 FASTS WARM K1B K1M SPID SBASE SPEEDS FASTRUNS
# Idle and 20 slow readers: one server at a time; they stay up for the rest.
for who in "${SERVERS[@]}"; do
  log "$who: idle and 20 readers of a blob still downloading (upstream at $RATE_MIB MiB/s)"
  start "$who" "$who-slow" "$SLOW"
  SPID[$who]=$PID SBASE[$who]=$BASE
  curl -sf -o /dev/null "$BASE/bench/big/manifests/v1" -H "Accept: $MANIFEST_ACCEPT" || die "$who: no manifest"
  IDLE[$who]=$(vmhwm_kib "$PID")
  reset_hwm "$PID"
  t=$(readers "$BASE/bench/big/blobs/$DIGEST")
  SLOW20[$who]=$(vmhwm_kib "$PID")
  log "  20 readers in ${t}s, $(threads "$PID") threads, peak $(mib "${SLOW20[$who]}") MiB (idle peak $(mib "${IDLE[$who]}") MiB)"
done

# Warm GETs taking turns between the servers, so that the machine's other
# load falls on all of them alike.
for ((r = 0; r < RUNS; r++)); do
  for who in "${SERVERS[@]}"; do SPEEDS[$who]+="$(speed "${SBASE[$who]}/bench/big/blobs/$DIGEST") "; done
done
for who in "${SERVERS[@]}"; do
  # shellcheck disable=SC2086 # a list of numbers
  WARM[$who]=$(median ${SPEEDS[$who]})
  log "$who warm GET MB/s: ${SPEEDS[$who]}"
done

for who in "${SERVERS[@]}"; do
  PID=${SPID[$who]} BASE=${SBASE[$who]}
  # Manifests first: what the blob load leaves resident would count.
  reset_hwm "$PID"
  warm_load "$BASE/bench/big/manifests/v1" 0 "$MANIFEST_ROUNDS"
  K1M[$who]=$(vmhwm_kib "$PID")
  reset_hwm "$PID"
  warm_load "$BASE/bench/big/blobs/$DIGEST" $((WARM_READ_MIB * 1048576)) 1
  K1B[$who]=$(vmhwm_kib "$PID")
  log "$who: $WARM_CONNS warm clients: blob peak $(mib "${K1B[$who]}") MiB, manifest peak $(mib "${K1M[$who]}") MiB; $(threads "$PID") threads"
  stop_pid "$PID"
done

# 20 readers with the upstream direct: FAST_RUNS rounds taking turns, each
# on a fresh data directory; the table shows the medians.
for ((r = 0; r < FAST_RUNS; r++)); do
  for who in "${SERVERS[@]}"; do
    start "$who" "$who-fast$r" "$UP"
    reset_hwm "$PID"
    t=$(readers "$BASE/bench/big/blobs/$DIGEST")
    kib=$(vmhwm_kib "$PID")
    FAST20[$who]=$(max_of "$kib" "${FAST20[$who]:-0}")
    FASTRUNS[$who]+="$(awk -v n="$READERS" -v b="$BYTES" -v t="$t" 'BEGIN {printf "%.0f", n * b / t / 1e6}') "
    log "$who: 20 readers, upstream direct, in ${t}s, peak $(mib "$kib") MiB"
    stop_pid "$PID"
    rm -rf "${WORK:?}/$who-fast$r"
  done
done
for who in "${SERVERS[@]}"; do
  # shellcheck disable=SC2086 # a list of numbers
  FASTS[$who]=$(median ${FASTRUNS[$who]})
  log "$who in-flight MB/s in all: ${FASTRUNS[$who]}"
done

cols=""
sep=""
for who in "${SERVERS[@]}"; do
  case $who in
    ferry) cols+=" ferry ($(basename "${BIN[ferry]}")) |" ;;
    base) cols+=" ferry base ($(basename "${BIN[base]}")) |" ;;
    peer) cols+=" peer (docker-registry proxy) |" ;;
  esac
  sep+="---|"
done
row() { # LABEL ARRAY FORMAT(mib|plain)
  local label=$1 line who
  local -n arr=$2
  line="| $label |"
  for who in "${SERVERS[@]}"; do
    if [ "$3" = mib ]; then line+=" $(mib "${arr[$who]}") |"; else line+=" ${arr[$who]} |"; fi
  done
  echo "$line"
}
cat <<EOF

## Memory under many clients ($BLOB_MB MiB blob, $(date -u +%Y-%m-%d), $(nproc) cores)

| peak RSS (MiB, VmHWM) / throughput |$cols
|---|$sep
$(row "idle (after start-up and one manifest)" IDLE mib)
$(row "20 readers, blob still downloading (upstream $RATE_MIB MiB/s)" SLOW20 mib)
$(row "20 readers, blob still downloading (upstream direct; highest of $FAST_RUNS)" FAST20 mib)
$(row "$WARM_CONNS warm clients, blob ($WARM_READ_MIB MiB each)" K1B mib)
$(row "$WARM_CONNS warm clients, manifest ($MANIFEST_ROUNDS GETs each)" K1M mib)
$(row "warm blob GET, MB/s (median of $RUNS, servers taking turns)" WARM plain)
$(row "20 in-flight readers, upstream direct, MB/s in all (median of $FAST_RUNS)" FASTS plain)
EOF
