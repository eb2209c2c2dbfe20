# shellcheck shell=bash
# Test images for benches/run.sh, pushed to a registry with plain curl over
# the distribution HTTP API. Sourced, not run.

OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json
OCI_CONFIG=application/vnd.oci.image.config.v1+json
OCI_LAYER=application/vnd.oci.image.layer.v1.tar
# shellcheck disable=SC2034 # used by run.sh
MANIFEST_ACCEPT="$OCI_MANIFEST, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json"

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }
size_of() { stat -c %s "$1"; }

# random_file PATH MIB: MIB mebibytes of random bytes.
random_file() {
  head -c "$(($2 * 1024 * 1024))" /dev/urandom >"$1"
}

# push_blob REGISTRY_URL REPO FILE: uploads FILE as a blob (monolithic:
# POST /v2/REPO/blobs/uploads/ → Location → PUT ?digest=); prints its digest.
push_blob() {
  local reg=$1 repo=$2 file=$3 digest loc sep code
  digest="sha256:$(sha256_of "$file")"
  code=$(curl -s -o /dev/null -w '%{http_code}' -I "$reg/v2/$repo/blobs/$digest")
  if [ "$code" != 200 ]; then
    loc=$(curl -sf -X POST -D - -o /dev/null "$reg/v2/$repo/blobs/uploads/" |
      tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
    [ -n "$loc" ] || die "no upload location from $reg for $repo"
    [[ $loc == http* ]] || loc="$reg$loc"
    sep='?'
    [[ $loc == *'?'* ]] && sep='&'
    curl -sf -X PUT -H 'Content-Type: application/octet-stream' -T "$file" \
      "$loc${sep}digest=$digest" -o /dev/null || die "blob upload of $file to $reg/$repo failed"
  fi
  echo "$digest"
}

# push_manifest REGISTRY_URL REPO TAG FILE: PUTs an OCI manifest; prints its digest.
push_manifest() {
  local reg=$1 repo=$2 tag=$3 file=$4 got
  got=$(curl -sf -X PUT -H "Content-Type: $OCI_MANIFEST" --data-binary "@$file" -D - -o /dev/null \
    "$reg/v2/$repo/manifests/$tag" | tr -d '\r' | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: //p')
  [ "$got" = "sha256:$(sha256_of "$file")" ] || die "manifest PUT $reg/$repo:$tag failed (got '$got')"
  echo "$got"
}

# make_image REGISTRY_URL REPO TAG DIR KIND SIZES...
# Builds and pushes an image whose layers are random bytes of the given
# sizes in MiB. KIND "tar": each layer is an uncompressed tar holding one
# random file (a real image skopeo and podman can unpack); KIND "raw": each
# layer is the random bytes as they are (for big blobs). Writes into DIR:
# layer files, config.json, manifest.json, and image.env with
#   MANIFEST_DIGEST, CONFIG_DIGEST, CONFIG_SIZE, LAYER_DIGESTS (space
#   separated), LAYER0_FILE, IMAGE_BYTES (manifest + config + layers).
make_image() {
  local reg=$1 repo=$2 tag=$3 dir=$4 kind=$5
  shift 5
  mkdir -p "$dir"
  local i=0 mib layers="" diffs="" digests="" total=0 f d s
  for mib in "$@"; do
    if [ "$kind" = tar ]; then
      random_file "$dir/file$i" "$mib"
      tar -C "$dir" -cf "$dir/layer$i" "file$i"
      rm -f "$dir/file$i"
    else
      random_file "$dir/layer$i" "$mib"
    fi
    f="$dir/layer$i"
    d=$(push_blob "$reg" "$repo" "$f")
    s=$(size_of "$f")
    total=$((total + s))
    digests+="$d "
    layers+="${layers:+,}{\"mediaType\":\"$OCI_LAYER\",\"digest\":\"$d\",\"size\":$s}"
    diffs+="${diffs:+,}\"$d\""
    i=$((i + 1))
  done
  printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["/file0"]},"rootfs":{"type":"layers","diff_ids":[%s]}}' \
    "$diffs" >"$dir/config.json"
  local cd cs md ms
  cd=$(push_blob "$reg" "$repo" "$dir/config.json")
  cs=$(size_of "$dir/config.json")
  printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"%s","digest":"%s","size":%s},"layers":[%s]}' \
    "$OCI_MANIFEST" "$OCI_CONFIG" "$cd" "$cs" "$layers" >"$dir/manifest.json"
  md=$(push_manifest "$reg" "$repo" "$tag" "$dir/manifest.json")
  ms=$(size_of "$dir/manifest.json")
  total=$((total + cs + ms))
  cat >"$dir/image.env" <<EOF
MANIFEST_DIGEST=$md
CONFIG_DIGEST=$cd
CONFIG_SIZE=$cs
LAYER_DIGESTS="${digests% }"
LAYER0_FILE=$dir/layer0
IMAGE_BYTES=$total
EOF
}
