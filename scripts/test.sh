#!/usr/bin/env bash
# Runs every check and test of ferry on a fresh Debian machine: installs the
# real programs the end-to-end tests drive (the upstream registry and the
# clients), then checks formatting and lints, then runs the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  docker-registry   # the upstream registry the tests pull through (CNCF distribution)
  skopeo podman     # real clients
  containerd        # ctr, a real client too (the tests run a private daemon)
  busybox-static    # a real binary for the test images' layers
  httpie jq         # the management API workflow, as users script it
  apache2-utils     # htpasswd, for an upstream behind Basic auth
  tinyproxy         # a real forward proxy, for the upstream proxy settings
  openssl ca-certificates
  chromium          # the dashboard's browser tests (headless)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi

rustup component add rustfmt clippy >/dev/null 2>&1 || true
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked

# The web dashboard in headless Chromium, against the debug binary the tests
# above built. playwright-core needs Node 20 or later: the machine's node, or
# Debian's packaged one when there is none (too old on bookworm: said below).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nodejs npm
fi
node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 20 ? 1 : 0)' ||
  { echo "tests/browser needs Node >= 20 (found $(node --version))" >&2; exit 1; }
npm ci --prefix tests/browser --no-audit --no-fund
node --test tests/browser/

# The release binary, static: it must run a pull end to end on its own
# (name resolution included), and package into a working .deb.
static_bin=$(CARGO_BUILD_FLAGS=--locked packaging/build-static.sh | tail -n1)
FERRY_BIN="$static_bin" cargo test --locked --test e2e -- \
  pull::skopeo_copy_by_tag_and_by_digest_matches_upstream \
  pull::podman_pull_through_ferry_gets_upstream_digest \
  pull::upstream_named_by_hostname_is_resolved
packaging/test.sh "$static_bin"
