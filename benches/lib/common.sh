# shellcheck shell=bash
# Helpers for benches/run.sh: logging, processes (every one started is
# remembered by pid and stopped by pid at exit), the servers under test,
# and small statistics. Sourced, not run.

BENCH_PIDS=()

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ferry_binary: sets FERRY to $FERRY_BIN, else builds the release binary.
ferry_binary() {
  if [ -n "${FERRY_BIN:-}" ]; then
    FERRY=$(readlink -f "$FERRY_BIN")
  else
    log "building ferry (cargo build --release)"
    (cd "$ROOT" && cargo build --release --locked >&2)
    FERRY="$ROOT/target/release/ferry"
  fi
  [ -x "$FERRY" ] || die "no ferry binary at $FERRY"
}

# make_work PREFIX: the scratch directory WORK (logs/ in it) under
# $BENCH_TMP, and the exit trap that stops every server and removes it
# (KEEP_WORK=1 keeps it). Also `warn`, which keeps warnings for the report.
make_work() {
  mkdir -p "${BENCH_TMP:-/var/tmp}"
  WORK=$(mktemp -d "${BENCH_TMP:-/var/tmp}/$1.XXXXXX")
  mkdir -p "$WORK/logs"
  : >"$WORK/warnings"
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}
bench_cleanup() {
  local rc=$?
  stop_all
  if [ "${KEEP_WORK:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
warn() { log "WARNING: $*"; echo "$*" >>"$WORK/warnings"; }

# The warnings a run collected, as a markdown list (nothing when none).
print_warnings() {
  if [ -s "$WORK/warnings" ]; then
    printf '\nWarnings during the run:\n\n'
    sed 's/^/- /' "$WORK/warnings"
  fi
}

# Dies naming the first of the programs given that is not installed.
require() {
  local cmd
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null || die "$cmd is missing (benches/run.sh installs it)"
  done
}

# What a phase of run.sh run on its own sets up: the scratch directory,
# skopeo's policy, and the upstream registry (UP_PORT, UP).
standalone_upstream() {
  make_work ferry-bench
  mkdir -p "$WORK/pull"
  echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$WORK/policy.json"
  start_registry upstream "$WORK/upstream-data" warn
  UP_PORT=$REG_PORT
  UP="http://127.0.0.1:$UP_PORT"
}

# A free TCP port on 127.0.0.1 (for servers that cannot bind port 0 and say
# which port they got).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Stops one process we started: SIGTERM, up to 30 s, then SIGKILL.
stop_pid() {
  local pid=$1 i
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null || true
  local keep=() p
  for p in "${BENCH_PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
  BENCH_PIDS=("${keep[@]}")
}

stop_all() {
  local p
  for p in "${BENCH_PIDS[@]}"; do stop_pid "$p"; done
}

# wait_http URL [SECONDS]: until URL answers 200 (bounded).
wait_http() {
  local url=$1 secs=${2:-30} i
  for ((i = 0; i < secs * 20; i++)); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$url" 2>/dev/null)" = 200 ] && return 0
    sleep 0.05
  done
  die "no 200 from $url after ${secs}s"
}

# ---------------------------------------------------------------- servers

# registry_config FILE ROOTDIR PORT LOGLEVEL [PROXY_REMOTE_URL]
registry_config() {
  local file=$1 root=$2 port=$3 level=$4 remote=${5:-}
  cat >"$file" <<EOF
version: 0.1
log:
  level: $level
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $root
  cache:
    blobdescriptor: inmemory
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
EOF
  if [ -n "$remote" ]; then
    printf 'proxy:\n  remoteurl: %s\n' "$remote" >>"$file"
  fi
}

# start_registry NAME ROOTDIR LOGLEVEL [PROXY_REMOTE_URL]
# Starts a CNCF distribution registry; sets REG_PID, REG_PORT, REG_LOG.
start_registry() {
  local name=$1 root=$2 level=$3 remote=${4:-}
  mkdir -p "$root"
  REG_PORT=$(free_port)
  REG_LOG="$WORK/logs/$name.log"
  registry_config "$WORK/$name.yml" "$root" "$REG_PORT" "$level" "$remote"
  docker-registry serve "$WORK/$name.yml" >>"$REG_LOG" 2>&1 &
  REG_PID=$!
  BENCH_PIDS+=("$REG_PID")
  wait_http "http://127.0.0.1:$REG_PORT/v2/" 30
}

# start_ferry NAME DATADIR UPSTREAM_URL
# Starts ferry on a port it picks; sets FERRY_PID, FERRY_PORT.
start_ferry() {
  local name=$1 data=$2 upstream=$3
  start_ferry_args "$name" --listen 127.0.0.1:0 --data-dir "$data" \
    --cache "up=$upstream" --tag-ttl-secs "$TAG_TTL"
}

# start_ferry_args NAME ARGS...: `ferry serve ARGS...`, which must listen on
# 127.0.0.1:0 (it says the port it got); waits until it answers /v2/. Sets
# FERRY_PID, FERRY_PORT; output in $WORK/logs/NAME.{out,log}.
start_ferry_args() {
  local name=$1 out="$WORK/logs/$1.out" i
  shift
  : >"$out"
  "$FERRY" serve "$@" >"$out" 2>>"$WORK/logs/$name.log" &
  FERRY_PID=$!
  BENCH_PIDS+=("$FERRY_PID")
  FERRY_PORT=
  for ((i = 0; i < 600; i++)); do
    FERRY_PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$out")
    [ -n "$FERRY_PORT" ] && break
    kill -0 "$FERRY_PID" 2>/dev/null || die "ferry exited: $(tail -5 "$WORK/logs/$name.log")"
    sleep 0.05
  done
  [ -n "$FERRY_PORT" ] || die "ferry did not say its port"
  wait_http "http://127.0.0.1:$FERRY_PORT/v2/" 30
}

# start_count_proxy TARGET_PORT: sets PROXY_PID, PROXY_PORT, PROXY_CTL.
start_count_proxy() {
  local target=$1 out="$WORK/logs/proxy-$1.out" i line
  : >"$out"
  python3 "$BENCH_DIR/count_proxy.py" --target "127.0.0.1:$target" >"$out" 2>&1 &
  PROXY_PID=$!
  BENCH_PIDS+=("$PROXY_PID")
  for ((i = 0; i < 200; i++)); do
    line=$(head -1 "$out")
    [[ $line == proxy* ]] && break
    sleep 0.05
  done
  # shellcheck disable=SC2034 # PROXY_PORT is for the caller
  read -r _ PROXY_PORT _ PROXY_CTL <<<"$line"
  [ -n "$PROXY_CTL" ] || die "count proxy did not start: $(cat "$out")"
}

proxy_reset() { curl -sf "http://127.0.0.1:$PROXY_CTL/reset" >/dev/null; }
proxy_down() { curl -sf "http://127.0.0.1:$PROXY_CTL/" | jq -r .down; }

# start_nginx FILE_DIR: nginx serving FILE_DIR at /, sendfile off, 2 workers
# (one per core), no access log. Sets NGINX_PID, NGINX_PORT.
start_nginx() {
  local root=$1 dir="$WORK/nginx"
  mkdir -p "$dir/tmp"
  NGINX_PORT=$(free_port)
  cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes auto;
user root;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile off;
  tcp_nopush off;
  keepalive_requests 1000000;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  types { }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $root;
  }
}
EOF
  nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" &
  NGINX_PID=$!
  BENCH_PIDS+=("$NGINX_PID")
  local i
  for ((i = 0; i < 200; i++)); do
    curl -s -o /dev/null "http://127.0.0.1:$NGINX_PORT/" && return 0
    sleep 0.05
  done
  die "nginx did not start: $(cat "$dir/error.log")"
}

# ---------------------------------------------------------------- measuring

# Peak resident set size of a process so far, in KiB (VmHWM).
vmhwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
# Resets VmHWM to the current RSS (Linux: clear_refs 5).
reset_hwm() { echo 5 >"/proc/$1/clear_refs"; }

# median V1 V2 ...: the median (mean of the middle two for an even count).
median() {
  printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {
    if (NR == 0) { print "nan"; exit }
    if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2] + a[NR/2+1]) / 2 }'
}
max_of() { printf '%s\n' "$@" | sort -g | tail -1; }

# fmt NUMBER DECIMALS: "–" for an empty or non-numeric value.
fmt() {
  local v=$1 d=${2:-1}
  if [[ $v =~ ^-?[0-9.]+([eE][-+]?[0-9]+)?$ ]]; then printf "%.${d}f" "$v"; else printf '–'; fi
}
# ratio A B DECIMALS: A / B, "–" when either is missing or B is 0.
ratio() {
  awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN {
    if (a == "" || b == "" || a !~ /^[-0-9.eE+]+$/ || b !~ /^[-0-9.eE+]+$/ || b + 0 == 0) { print "–"; exit }
    printf "%." d "f", a / b }'
}
# meets VALUE OP LIMIT: prints "yes" or "**no**" (OP is >= or <= or <).
meets() {
  awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
    if (v == "" || v !~ /^[-0-9.eE+]+$/) { print "?"; exit }
    ok = (op == ">=") ? (v + 0 >= l + 0) : (op == "<=") ? (v + 0 <= l + 0) : (v + 0 < l + 0)
    print (ok ? "yes" : "**no**") }'
}

now_s() { date +%s.%N; }

# CPU time (user + system, all threads) a process has used, in clock ticks;
# for several pids, the sum.
cpu_ticks() {
  local p t=0
  for p in "$@"; do
    # Fields 14 and 15 of /proc/PID/stat, after the ")" that ends the name.
    t=$((t + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
  done
  echo "$t"
}
