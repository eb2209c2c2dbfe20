#!/usr/bin/env bash
# Runs every check and test of ferry on a fresh Debian machine: installs the
# real programs the end-to-end tests drive (the upstream registry and the
# clients), then checks formatting and lints, then runs the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  docker-registry   # the upstream registry the tests pull through (CNCF distribution)
  skopeo podman     # real clients
  busybox-static    # a real binary for the test images' layers
  httpie jq         # the management API workflow, as users script it
  apache2-utils     # htpasswd, for an upstream behind Basic auth
  openssl ca-certificates
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
