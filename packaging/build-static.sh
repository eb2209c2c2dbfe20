#!/usr/bin/env bash
# Builds ferry as one static executable (glibc, static-pie) and checks that
# it really is static.
#
#   packaging/build-static.sh            build, check, print path and size
#   packaging/build-static.sh --strip    also write a stripped copy (ferry.stripped)
#
# Environment:
#   CARGO_TARGET_DIR   honoured as usual (the binary lands in
#                      $CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/ferry)
#   FERRY_TARGET       target triple [default: the host's, e.g. x86_64-unknown-linux-gnu]
#   CARGO_BUILD_FLAGS  extra flags for cargo build (e.g. "--locked")
#
# Why --target: with RUSTFLAGS set and no --target, cargo applies
# +crt-static to proc-macro crates too, and those cannot be static. With
# --target, RUSTFLAGS only reach the target artifacts.
#
# Name resolution needs no glibc NSS: ferry's HTTP client resolves names
# with hickory (reads /etc/resolv.conf and /etc/hosts itself), so static
# glibc's getaddrinfo caveat does not apply.
#
# The last line of stdout is the path of the binary (the stripped copy with
# --strip), so scripts can do: bin=$(packaging/build-static.sh | tail -n1).
set -euo pipefail
cd "$(dirname "$0")/.."

strip_copy=0
for arg in "$@"; do
  case "$arg" in
    --strip) strip_copy=1 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "build-static.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

log() { echo "build-static: $*" >&2; }

command -v cargo >/dev/null || { log "cargo not found (install Rust with rustup)"; exit 1; }
# `file` is only used for the report; ldd comes with libc-bin (always there).
need=()
command -v file >/dev/null || need+=(file)
if [ "$strip_copy" = 1 ] && ! command -v strip >/dev/null; then need+=(binutils); fi
if ((${#need[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  log "installing ${need[*]}"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >&2
fi

host=$(rustc -vV | sed -n 's/^host: //p')
target=${FERRY_TARGET:-$host}
if command -v rustup >/dev/null && ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  log "adding the rust target $target"
  rustup target add "$target" >&2
fi

# Keep whatever RUSTFLAGS the caller set, add crt-static.
export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static"
log "cargo build --release --target $target (RUSTFLAGS=$RUSTFLAGS)"
# shellcheck disable=SC2086
cargo build --release --target "$target" --bin ferry ${CARGO_BUILD_FLAGS:-} >&2

target_dir=$(cargo metadata --format-version 1 --no-deps 2>/dev/null \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
target_dir=${target_dir:-${CARGO_TARGET_DIR:-target}}
bin="$target_dir/$target/release/ferry"
[ -x "$bin" ] || { log "expected binary not found: $bin"; exit 1; }

# Static check: ldd must not list shared libraries, file must not name an
# interpreter. (ldd on a static-pie says "statically linked"; on a plain
# static binary "not a dynamic executable", with exit status 1.)
ldd_out=$(ldd "$bin" 2>&1 || true)
file_out=$(file -b "$bin")
log "ldd:  $ldd_out"
log "file: $file_out"
if ! grep -Eq 'statically linked|not a dynamic executable' <<<"$ldd_out" \
   || grep -q '=>' <<<"$ldd_out" \
   || grep -q 'interpreter' <<<"$file_out"; then
  log "FAIL: $bin is not static"
  exit 1
fi

size() { stat -c %s "$1"; }
human() { numfmt --to=iec-i --suffix=B "$1" 2>/dev/null || echo "$1 bytes"; }
log "static binary: $bin ($(human "$(size "$bin")"), $(size "$bin") bytes)"
"$bin" --version >&2

out="$bin"
if [ "$strip_copy" = 1 ]; then
  out="$bin.stripped"
  strip -o "$out" "$bin"
  log "stripped copy: $out ($(human "$(size "$out")"), $(size "$out") bytes)"
fi
echo "$out"
