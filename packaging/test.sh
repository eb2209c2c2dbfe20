#!/usr/bin/env bash
# Checks run as functions called through `check`, and bash -c snippets get
# their arguments as $1..: SC2317 and SC2016 do not apply.
# shellcheck disable=SC2317,SC2016
#
# Checks ferry's packaging: the static binary, the systemd unit, the .deb,
# the example config and the client snippets. Runs on a fresh Debian machine
# as root (installs systemd, file, curl and python3 when missing).
#
#   packaging/test.sh [BINARY]
#
# BINARY: an already-built ferry (static, from packaging/build-static.sh);
# without it (and without $FERRY_BIN) the script builds one, which takes a
# while. FERRY_TEST_INSTALL=1 (as root; scripts/test.sh sets it when run as
# root, as CI does) also installs the .deb on this machine with apt-get,
# checks what it did, and purges it again (changes the machine).
#
# Prints one line per check and a final "N passed, M failed"; exits non-zero
# when a check failed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cd "$repo" || exit 1

passed=0
failed=0
ok()   { passed=$((passed + 1)); echo "ok   - $*"; }
fail() { failed=$((failed + 1)); echo "FAIL - $*"; }
# check NAME COMMAND...: runs COMMAND, output shown only on failure.
check() {
  local name=$1; shift
  local out
  if out=$("$@" 2>&1); then ok "$name"; else fail "$name"; sed 's/^/       /' <<<"$out"; fi
}
finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit
}

tmp=$(mktemp -d)
cleanup() {
  # A ferry that a failed check left running (checks run in subshells).
  if [ -s "$tmp/ferry.pid" ]; then kill "$(cat "$tmp/ferry.pid")" 2>/dev/null; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# --- tools -----------------------------------------------------------------
need=()
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v file >/dev/null || need+=(file)
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)
command -v dpkg-deb >/dev/null || need+=(dpkg)
command -v strip >/dev/null || need+=(binutils)
if ((${#need[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "# installing ${need[*]}"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --- scripts ---------------------------------------------------------------
for s in build-static.sh build-deb.sh test.sh; do
  check "bash -n packaging/$s" bash -n "$here/$s"
done

# --- binary ----------------------------------------------------------------
bin=${1:-${FERRY_BIN:-}}
if [ -z "$bin" ]; then
  echo "# no binary given: building one with packaging/build-static.sh"
  if bin=$("$here/build-static.sh" 2>"$tmp/build.log" | tail -n1) && [ -x "$bin" ]; then
    ok "build-static.sh builds a binary ($bin)"
  else
    fail "build-static.sh builds a binary"; tail -n 30 "$tmp/build.log" | sed 's/^/       /'
    finish
  fi
fi
if [ ! -x "$bin" ]; then
  fail "binary $bin exists and is executable"
  finish
fi
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

is_static() {
  local l f
  l=$(ldd "$1" 2>&1 || true); f=$(file -b "$1")
  echo "ldd: $l"; echo "file: $f"
  grep -Eq 'statically linked|not a dynamic executable' <<<"$l" && ! grep -q '=>' <<<"$l" \
    && ! grep -q interpreter <<<"$f"
}
check "binary is static (ldd, file)" is_static "$bin"
check "ferry --version" "$bin" --version

# --- systemd unit ----------------------------------------------------------
# verify wants ExecStart's program to exist: check a copy whose ExecStart
# names the binary under test (every other line unchanged).
mkdir -p "$tmp/unit"
sed "s#^ExecStart=/usr/bin/ferry #ExecStart=$bin #" "$here/ferry.service" >"$tmp/unit/ferry.service"
check "unit ExecStart is /usr/bin/ferry serve --config /etc/ferry/ferry.toml" \
  grep -qx 'ExecStart=/usr/bin/ferry serve --config /etc/ferry/ferry.toml' "$here/ferry.service"
verify_unit() {
  local out rc
  out=$(systemd-analyze verify "$tmp/unit/ferry.service" 2>&1); rc=$?
  echo "$out"
  # Any complaint about our unit (unknown keys are only warnings) fails.
  [ "$rc" -eq 0 ] && ! grep -q 'ferry.service' <<<"$out"
}
check "systemd-analyze verify ferry.service" verify_unit
security_unit() {
  local out
  out=$(systemd-analyze security --offline=true --threshold=20 "$tmp/unit/ferry.service" 2>&1) \
    || { echo "$out" | tail -n 25; return 1; }
  grep 'Overall exposure' <<<"$out"
}
if systemd-analyze security --help 2>&1 | grep -q -- '--offline'; then
  check "systemd-analyze security: exposure at most 2.0" security_unit
fi
check "unit has the hardening options" bash -c '
  for k in "DynamicUser=yes" "StateDirectory=ferry" "ProtectSystem=strict" "ProtectHome=yes" \
           "PrivateTmp=yes" "NoNewPrivileges=yes" "CapabilityBoundingSet=" \
           "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX" "SystemCallFilter=@system-service" \
           "LockPersonality=yes" "MemoryDenyWriteExecute=yes" "RestrictNamespaces=yes" \
           "ProtectKernelTunables=yes" "ProtectKernelModules=yes" "ProtectKernelLogs=yes" \
           "Restart=on-failure" "KillSignal=SIGTERM"; do
    grep -qxF "$k" "$1" || { echo "missing: $k"; exit 1; }
  done
  grep -q "^TimeoutStopSec=" "$1" || { echo "missing: TimeoutStopSec"; exit 1; }' _ "$here/ferry.service"

# --- example config --------------------------------------------------------
# Every option ferry's config structs know is documented in ferry.toml
# (as "name =" or "# name =").
documented() {
  local missing=0 field key
  for field in $(awk '
      /^pub(\(crate\))? struct Config \{/ { inside = 1; next }
      inside && /^\}/ { inside = 0 }
      inside && /#\[serde\(skip\)\]/ { skip = 1; next }
      inside && /^    pub [a-z_]+:/ { if (skip) { skip = 0; next } sub(/^    pub /, ""); sub(/:.*/, ""); print }
    ' src/config/mod.rs); do
    key=$field
    [ "$field" = caches ] && key=cache   # #[serde(rename = "cache")]
    if [ "$key" = cache ]; then
      grep -q '^\[\[cache\]\]' "$here/ferry.toml" || { echo "not documented: [[cache]]"; missing=1; }
    elif [ "$key" = storage ] || [ "$key" = cluster ]; then  # tables, their keys below
      grep -Eq "^(# )?\\[$key\\]" "$here/ferry.toml" || { echo "not documented: [$key]"; missing=1; }
    elif ! grep -Eq "^(# )?$key = " "$here/ferry.toml"; then
      echo "not documented in packaging/ferry.toml: $key"; missing=1
    fi
  done
  for field in $(awk '
      /^pub\(crate\) struct StorageConfig \{/ { inside = 1; next }
      inside && /^\}/ { inside = 0 }
      inside && /^    pub [a-z_]+:/ { sub(/^    pub /, ""); sub(/:.*/, ""); print }
    ' src/config/storage.rs); do
    grep -Eq "^(# )?$field = " "$here/ferry.toml" \
      || { echo "not documented in packaging/ferry.toml: [storage] $field"; missing=1; }
  done
  for field in $(awk '
      /^pub\(crate\) struct ClusterConfig \{/ { inside = 1; next }
      inside && /^\}/ { inside = 0 }
      inside && /^    pub [a-z_]+:/ { sub(/^    pub /, ""); sub(/:.*/, ""); print }
    ' src/config/cluster.rs); do
    [ "$field" = me ] && field=self   # #[serde(rename = "self")]
    grep -Eq "^(# )?$field = " "$here/ferry.toml" \
      || { echo "not documented in packaging/ferry.toml: [cluster] $field"; missing=1; }
  done
  return "$missing"
}
if [ -f src/config/mod.rs ]; then
  check "ferry.toml documents every option of src/config/mod.rs" documented
fi
check "ferry config check packaging/ferry.toml" "$bin" config check "$here/ferry.toml"
check "ferry.toml sets data_dir = /var/lib/ferry" grep -qx 'data_dir = "/var/lib/ferry"' "$here/ferry.toml"

serve_example() {
  local data="$tmp/data" port=""
  mkdir -p "$data"
  "$bin" serve --config "$here/ferry.toml" --listen 127.0.0.1:0 --data-dir "$data" \
    >"$tmp/serve.out" 2>"$tmp/serve.err" &
  local ferry_pid=$!
  echo "$ferry_pid" >"$tmp/ferry.pid"
  for _ in $(seq 1 100); do
    port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/serve.out")
    [ -n "$port" ] && break
    kill -0 "$ferry_pid" 2>/dev/null || break
    sleep 0.2
  done
  if [ -z "$port" ]; then
    echo "no 'listening on' line"; cat "$tmp/serve.out" "$tmp/serve.err"; return 1
  fi
  echo "listening on port $port"
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz")
  [ "$code" = 200 ] || { echo "/healthz answered $code"; return 1; }
  code=$(curl -s -o "$tmp/v2.out" -D "$tmp/v2.hdr" -w '%{http_code}' "http://127.0.0.1:$port/v2/")
  [ "$code" = 200 ] || { echo "/v2/ answered $code"; cat "$tmp/v2.hdr" "$tmp/v2.out"; return 1; }
  grep -qi '^docker-distribution-api-version: registry/2.0' "$tmp/v2.hdr" \
    || { echo "/v2/ lacks Docker-Distribution-API-Version"; cat "$tmp/v2.hdr"; return 1; }
  # SIGTERM (systemd's KillSignal): a clean exit, status 0, well within TimeoutStopSec.
  kill -TERM "$ferry_pid"
  local status=""
  for _ in $(seq 1 50); do
    if ! kill -0 "$ferry_pid" 2>/dev/null; then wait "$ferry_pid"; status=$?; break; fi
    sleep 0.2
  done
  : >"$tmp/ferry.pid"
  [ "$status" = 0 ] || { echo "exit status after SIGTERM: ${status:-still running after 10 s}"; cat "$tmp/serve.err"; return 1; }
}
check "ferry serves with packaging/ferry.toml (/healthz, /v2/, SIGTERM exit 0)" serve_example

# --- client snippets -------------------------------------------------------
toml_ok() { python3 -c 'import sys, tomllib; tomllib.load(open(sys.argv[1], "rb"))' "$1"; }
if python3 -c 'import tomllib' 2>/dev/null; then
  for f in ferry.toml registries.conf.d/ferry-mirror.conf containerd/certs.d/docker.io/hosts.toml; do
    check "$f is valid TOML" toml_ok "$here/$f"
  done
fi
check "ferry-mirror.conf mirrors docker.io through HOST:24817/docker.io" bash -c '
  grep -q "^prefix = \"docker.io\"" "$1" && grep -q "^location = \"HOST:24817/docker.io\"" "$1" \
  && grep -q "^insecure = true" "$1"' _ "$here/registries.conf.d/ferry-mirror.conf"
check "hosts.toml: server registry-1.docker.io, host HOST:24817 pull+resolve" bash -c '
  grep -q "^server = \"https://registry-1.docker.io\"" "$1" && grep -q "^\[host.\"http://HOST:24817\"\]" "$1" \
  && grep -q "capabilities = \[\"pull\", \"resolve\"\]" "$1"' _ "$here/containerd/certs.d/docker.io/hosts.toml"

# --- .deb ------------------------------------------------------------------
deb=""
build_deb() {
  deb=$(OUT_DIR="$tmp/deb" "$here/build-deb.sh" "$bin" 2>"$tmp/deb.log" | tail -n1)
  [ -f "$deb" ] || { cat "$tmp/deb.log"; return 1; }
  echo "$deb"
}
if build_deb >"$tmp/deb.out" 2>&1; then
  deb=$(tail -n1 "$tmp/deb.out"); ok "build-deb.sh builds $(basename "$deb")"
else
  fail "build-deb.sh builds a .deb"; sed 's/^/       /' "$tmp/deb.out"
fi
if [ -n "$deb" ]; then
  dpkg -c "$deb" >"$tmp/contents"
  lists() {
    local path
    for path in ./usr/bin/ferry ./lib/systemd/system/ferry.service ./etc/ferry/ferry.toml \
                ./usr/share/doc/ferry/copyright ./usr/share/doc/ferry/README.md \
                ./usr/lib/sysusers.d/ferry.conf \
                ./usr/share/doc/ferry/examples/registries.conf.d/ferry-mirror.conf \
                ./usr/share/doc/ferry/examples/containerd/certs.d/docker.io/hosts.toml; do
      grep -q " $path\$" "$tmp/contents" || { echo "missing $path"; cat "$tmp/contents"; return 1; }
    done
    grep -q '^-rwxr-xr-x root/root .* ./usr/bin/ferry$' "$tmp/contents" || { echo "usr/bin/ferry mode/owner"; return 1; }
    grep -q '^-rw-r----- root/root .* ./etc/ferry/ferry.toml$' "$tmp/contents" || { echo "ferry.toml mode"; return 1; }
  }
  check "dpkg -c lists the expected files (modes, root-owned)" lists
  check "/etc/ferry/ferry.toml is a conffile" bash -c \
    'mkdir -p "$2" && dpkg-deb -e "$1" "$2" && grep -qx /etc/ferry/ferry.toml "$2/conffiles"' _ "$deb" "$tmp/ctrl"
  cargo_version=$(awk '/^\[/ { p = ($0 == "[package]") } p && /^version/ { gsub(/.*= *"|".*/, ""); print; exit }' Cargo.toml)
  check "package version $(dpkg-deb -f "$deb" Version) comes from Cargo.toml ($cargo_version)" \
    bash -c '[ "$(dpkg-deb -f "$1" Version)" = "${2//-/\~}-1" ]' _ "$deb" "$cargo_version"
  check "dpkg-deb --info / control fields" bash -c \
    'for f in Package Version Architecture Maintainer Description Depends; do [ -n "$(dpkg-deb -f "$1" $f)" ] || { echo "no $f"; exit 1; }; done' _ "$deb"
  packaged_static() {
    dpkg-deb -x "$deb" "$tmp/x" && is_static "$tmp/x/usr/bin/ferry" && "$tmp/x/usr/bin/ferry" --version \
      && cmp -s "$tmp/x/etc/ferry/ferry.toml" "$here/ferry.toml" \
      && cmp -s "$tmp/x/lib/systemd/system/ferry.service" "$here/ferry.service"
  }
  check "packaged binary is static and runs; packaged unit and config are the repo's" packaged_static
  check "maintainer scripts parse (sh -n)" bash -c \
    'for s in postinst prerm postrm; do sh -n "$1/$s" || exit 1; done' _ "$tmp/ctrl"
  check "postinst never enables or starts the service" bash -c \
    '! grep -v "^[[:space:]]*#" "$1/postinst" | grep -Eq "systemctl +(enable|start|--now)|deb-systemd-helper +enable|deb-systemd-invoke +start"' _ "$tmp/ctrl"

  if [ "${FERRY_TEST_INSTALL:-0}" = 1 ]; then
    if [ "$(id -u)" -ne 0 ]; then
      fail "FERRY_TEST_INSTALL: installing the .deb needs root"
    elif dpkg-query -W -f='${Status}' ferry 2>/dev/null | grep -q "ok installed"; then
      fail "FERRY_TEST_INSTALL: ferry is already installed here; not touching it"
    else
      had_user=0; getent passwd ferry >/dev/null && had_user=1
      install_deb() {
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb" || return 1
        getent passwd ferry || { echo "no user ferry"; return 1; }
        [ "$(stat -c '%U:%G %a' /etc/ferry/ferry.toml)" = "root:ferry 640" ] \
          || { stat -c '%U:%G %a' /etc/ferry/ferry.toml; return 1; }
        /usr/bin/ferry config check /etc/ferry/ferry.toml >/dev/null || return 1
        # The unit as shipped, now that /usr/bin/ferry exists.
        local v rc
        v=$(systemd-analyze verify /lib/systemd/system/ferry.service 2>&1); rc=$?
        { [ "$rc" -eq 0 ] && ! grep -q ferry.service <<<"$v"; } || { echo "$v"; return 1; }
        dpkg --verify ferry || return 1
      }
      check "dpkg -i: user ferry, /etc/ferry/ferry.toml root:ferry 0640, verify of the installed unit, dpkg --verify" install_deb
      purge_deb() {
        dpkg --purge ferry || return 1
        [ ! -e /usr/bin/ferry ] && [ ! -e /etc/ferry/ferry.toml ]
      }
      check "dpkg --purge removes it" purge_deb
      if [ "$had_user" = 0 ]; then userdel ferry 2>/dev/null; fi
    fi
  fi
fi

finish
