#!/usr/bin/env bash
# Builds a Debian package of ferry with dpkg-deb (no cargo-deb, no debhelper).
#
#   packaging/build-deb.sh [BINARY]
#
# BINARY: an already-built static ferry; without it packaging/build-static.sh
# builds one. Environment: OUT_DIR (where the .deb goes) [default:
# <cargo target dir>/debian, else target/debian], DEB_MAINTAINER.
#
# The package holds:
#   /usr/bin/ferry                          the static binary (stripped)
#   /lib/systemd/system/ferry.service       the hardened unit
#   /etc/ferry/ferry.toml                   example config (conffile, 0640 root:ferry)
#   /usr/lib/sysusers.d/ferry.conf          the system user "ferry"
#   /usr/share/doc/ferry/                   copyright, README.md, client examples
# postinst creates the user and reloads systemd; it never enables or starts
# the service (see README.md).
#
# The last line of stdout is the path of the .deb.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cd "$repo"

log() { echo "build-deb: $*" >&2; }

command -v dpkg-deb >/dev/null || { log "dpkg-deb not found (package dpkg)"; exit 1; }

bin=${1:-}
if [ -z "$bin" ]; then
  bin=$("$here/build-static.sh" | tail -n1)
fi
[ -x "$bin" ] || { log "not an executable: $bin"; exit 1; }

# Version: the [package] section of Cargo.toml.
version=$(awk '
  /^\[/ { in_pkg = ($0 == "[package]") }
  in_pkg && /^version[[:space:]]*=/ { gsub(/.*=[[:space:]]*"|".*/, ""); print; exit }
' Cargo.toml)
[ -n "$version" ] || { log "no version in Cargo.toml"; exit 1; }
# Debian versions have no '-' in the upstream part without a revision:
# 1.2.0-rc.1 becomes 1.2.0~rc.1 (sorts before 1.2.0), then revision -1.
deb_version="${version//-/\~}-1"
arch=$(dpkg --print-architecture)
maintainer=${DEB_MAINTAINER:-"ferry maintainers <ferry@localhost>"}

if [ -z "${OUT_DIR:-}" ]; then
  target_dir=""
  if command -v cargo >/dev/null; then
    target_dir=$(cargo metadata --format-version 1 --no-deps 2>/dev/null \
      | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
  fi
  OUT_DIR="${target_dir:-$repo/target}/debian"
fi
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/ferry_${deb_version}_${arch}"

install -d -m 0755 "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" \
  "$root/etc/ferry" "$root/usr/lib/sysusers.d" \
  "$root/usr/share/doc/ferry/examples/registries.conf.d" \
  "$root/usr/share/doc/ferry/examples/containerd/certs.d/docker.io"

install -m 0755 "$bin" "$root/usr/bin/ferry"
if command -v strip >/dev/null; then
  strip "$root/usr/bin/ferry"
fi
install -m 0644 "$here/ferry.service" "$root/lib/systemd/system/ferry.service"
install -m 0640 "$here/ferry.toml" "$root/etc/ferry/ferry.toml"
install -m 0644 "$here/README.md" "$root/usr/share/doc/ferry/README.md"
install -m 0644 "$here/registries.conf.d/ferry-mirror.conf" \
  "$root/usr/share/doc/ferry/examples/registries.conf.d/ferry-mirror.conf"
install -m 0644 "$here/containerd/certs.d/docker.io/hosts.toml" \
  "$root/usr/share/doc/ferry/examples/containerd/certs.d/docker.io/hosts.toml"

cat >"$root/usr/lib/sysusers.d/ferry.conf" <<'EOF'
# The user ferry.service runs as (see systemd-sysusers(8)).
u ferry - "ferry registry cache" /var/lib/ferry /usr/sbin/nologin
EOF
chmod 0644 "$root/usr/lib/sysusers.d/ferry.conf"

# Copyright (machine-readable, DEP-5). The binary is static: it contains the
# crates of ferry's normal dependency tree, listed in the header's Comment.
crates=""
if command -v cargo >/dev/null; then
  crates=$(cargo tree --offline --locked -e normal --prefix none \
             --format '{p}: {l}' 2>/dev/null \
           | grep -v '^ferry v' | sed 's/ (\*)$//; s/ (proc-macro)//' | LC_ALL=C sort -u || true)
fi
{
  cat <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: ferry
Comment: ferry is one static executable. Besides ferry's own code it
 contains the Rust standard library, GNU libc (statically linked; LGPL-2.1+)
 and the Rust crates below, each under its own license.
EOF
  if [ -n "$crates" ]; then
    echo " ."
    sed 's/^/ /' <<<"$crates"
  else
    echo " (crate list not generated: cargo was not available at build time)"
  fi
  cat <<EOF

Files: *
Copyright: the ferry authors
License: Apache-2.0

License: Apache-2.0
 Licensed under the Apache License, Version 2.0 (the "License");
 you may not use this file except in compliance with the License.
 You may obtain a copy of the License at
 .
 http://www.apache.org/licenses/LICENSE-2.0
 .
 Unless required by applicable law or agreed to in writing, software
 distributed under the License is distributed on an "AS IS" BASIS,
 WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 See the License for the specific language governing permissions and
 limitations under the License.
 .
 On Debian systems, the complete text of the Apache License, Version 2.0
 can be found in "/usr/share/common-licenses/Apache-2.0".
EOF
} >"$root/usr/share/doc/ferry/copyright"
chmod 0644 "$root/usr/share/doc/ferry/copyright"

echo "/etc/ferry/ferry.toml" >"$root/DEBIAN/conffiles"

cat >"$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  # The user the service runs as (the unit falls back to a dynamic user
  # without it, but then /etc/ferry/ferry.toml could not stay 0640).
  if ! getent passwd ferry >/dev/null; then
    if command -v systemd-sysusers >/dev/null 2>&1; then
      systemd-sysusers /usr/lib/sysusers.d/ferry.conf || true
    fi
    if ! getent passwd ferry >/dev/null; then
      useradd --system --user-group --home-dir /var/lib/ferry --no-create-home \
        --shell /usr/sbin/nologin --comment "ferry registry cache" ferry
    fi
  fi
  # The config may hold secrets: readable by root and the service only,
  # unless the admin chose otherwise with dpkg-statoverride.
  if ! dpkg-statoverride --list /etc/ferry/ferry.toml >/dev/null 2>&1; then
    chown root:ferry /etc/ferry/ferry.toml
    chmod 0640 /etc/ferry/ferry.toml
  fi
  # Load the new unit. Never enabled or started here: `systemctl enable
  # --now ferry` is the admin's call. An upgrade restarts a running ferry.
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
    if [ -n "$2" ]; then
      systemctl try-restart ferry.service >/dev/null 2>&1 || true
    fi
  fi
fi
exit 0
EOF

cat >"$root/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
  systemctl stop ferry.service >/dev/null 2>&1 || true
fi
exit 0
EOF

cat >"$root/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
if [ "$1" = purge ]; then
  # The cache itself (DynamicUser keeps it in /var/lib/private/ferry behind
  # the /var/lib/ferry symlink). The user stays, as Debian policy suggests.
  rm -rf /var/lib/ferry /var/lib/private/ferry
  rmdir /etc/ferry 2>/dev/null || true
fi
exit 0
EOF
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"

installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<EOF
Package: ferry
Version: $deb_version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_size
Depends: ca-certificates
Recommends: systemd
Section: net
Priority: optional
Description: pull-through caching OCI registry in one static binary
 ferry serves container images from upstream registries (Docker Hub, quay.io,
 ghcr.io, ...) through a local cache: each blob is fetched upstream once,
 tags are revalidated with HEAD requests, and cached images keep being
 served when the upstream is down or rate-limits. It speaks the OCI
 distribution API for docker, podman, CRI-O and containerd, and offers a
 Pulp-style management API.
EOF

(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' \
  | LC_ALL=C sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"

deb="$OUT_DIR/ferry_${deb_version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >&2
log "built $deb ($(stat -c %s "$deb") bytes)"
echo "$deb"
