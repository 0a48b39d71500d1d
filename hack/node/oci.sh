# shellcheck shell=bash
# Sourced by hack/node.sh and hack/image.sh: makes an OCI image archive from a
# directory, without a container engine, for `ctr images import`.
#
#   oci_archive NAME ROOTFS OUT ENTRYPOINT_JSON USER
#
# NAME is the full reference the image is imported as (for example
# localhost/pause:1); ROOTFS the directory that becomes the image's one layer
# (files owned by root, modes kept); OUT the archive to write; ENTRYPOINT_JSON
# a JSON array; USER "uid:gid". The layer is uncompressed and reproducible
# (sorted, mtime 0), so the same input gives the same image ID.

# sha256 of a file, hex only.
oci_sha256() { sha256sum "$1" | cut -d' ' -f1; }

# oci_blob FILE DIR: move FILE into DIR/blobs/sha256 under its digest; print the digest.
oci_blob() {
  local sum
  sum=$(oci_sha256 "$1")
  mv "$1" "$2/blobs/sha256/$sum"
  echo "sha256:$sum"
}

oci_archive() {
  local name=$1 rootfs=$2 out=$3 entrypoint=$4 user=$5
  local work layer layer_size config config_size manifest manifest_size tag
  work=$(mktemp -d "${out}.work.XXXXXX")
  mkdir -p "$work/blobs/sha256"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
    --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$rootfs" -cf "$work/layer.tar" .
  layer_size=$(stat -c %s "$work/layer.tar")
  layer=$(oci_blob "$work/layer.tar" "$work")
  cat >"$work/config.json" <<EOF
{"architecture":"amd64","os":"linux","config":{"User":"$user","Entrypoint":$entrypoint,"Env":["PATH=/usr/local/bin:/usr/bin:/bin"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["$layer"]},"history":[{"created_by":"hack/node/oci.sh","created":"1970-01-01T00:00:00Z"}],"created":"1970-01-01T00:00:00Z"}
EOF
  config_size=$(stat -c %s "$work/config.json")
  config=$(oci_blob "$work/config.json" "$work")
  cat >"$work/manifest.json" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"$config","size":$config_size},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"$layer","size":$layer_size}]}
EOF
  manifest_size=$(stat -c %s "$work/manifest.json")
  manifest=$(oci_blob "$work/manifest.json" "$work")
  tag=${name##*:}
  cat >"$work/index.json" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"$manifest","size":$manifest_size,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"$name","org.opencontainers.image.ref.name":"$tag"}}]}
EOF
  printf '{"imageLayoutVersion":"1.0.0"}\n' >"$work/oci-layout"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work" -cf "$out.tmp" oci-layout index.json blobs
  mv "$out.tmp" "$out"
  rm -rf "$work"
}
