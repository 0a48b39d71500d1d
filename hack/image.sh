#!/usr/bin/env bash
# The example scheduler's image, built without a container engine: the
# release binary and the shared libraries it links (as `ldd` lists them),
# laid out as an OCI image archive for hack/node.sh's containerd.
#
#   hack/image.sh build    cargo build --release --locked -p celers-kube-lease-scheduler
#                          (under nice), then the archive; prints its path last
#   hack/image.sh import   build, then import it into the running node
#                          (hack/node.sh up) as localhost/celers-kube-lease-scheduler:dev
#
# The image has no shell and no package manager: /usr/local/bin/celers-kube-lease-scheduler,
# the dynamic loader and libraries (from this machine, glibc's among them),
# runs as 65532:65532 like the Dockerfile's distroless image. The archive goes
# to target/oci/ (CARGO_TARGET_DIR's oci/ when set).
#
# Environment:
#   IMAGE_BUILD_TIMEOUT  seconds for the cargo build (default 3600)
#   IMAGE_NAME           the image's name (default localhost/celers-kube-lease-scheduler:dev)
#   IMAGE_FORMAT         oci (default) or docker: a docker-archive (manifest.json
#                        with RepoTags), whose short names containerd's import
#                        normalizes as a pull would, where it takes an OCI
#                        archive's name verbatim (hack/kind-e2e.sh loads one
#                        named as deploy/ names the image)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
readonly image=${IMAGE_NAME:-localhost/celers-kube-lease-scheduler:dev}
readonly format=${IMAGE_FORMAT:-oci}
readonly binary_name=celers-kube-lease-scheduler

LOG_PREFIX="image: "
# shellcheck source=hack/lib.sh
source "$root/hack/lib.sh"
# shellcheck source=hack/node/oci.sh
source "$root/hack/node/oci.sh"

target=${CARGO_TARGET_DIR:-$root/target}
case $target in /*) ;; *) target="$root/$target" ;; esac

# docker_archive OCI_ARCHIVE: the same image as a docker-archive next to it
# (the OCI archive's blobs, a manifest.json naming config, layers and the
# tag); prints its path.
docker_archive() {
  local oci=$1 out=${1%.tar}.docker.tar work manifest
  work=$(mktemp -d "$out.work.XXXXXX")
  tar -C "$work" -xf "$oci"
  manifest=$(jq -r '.manifests[0].digest | ltrimstr("sha256:")' "$work/index.json")
  jq --arg tag "$image" '[{Config: ("blobs/sha256/" + (.config.digest | ltrimstr("sha256:"))),
      RepoTags: [$tag], Layers: [.layers[].digest | "blobs/sha256/" + ltrimstr("sha256:")]}]' \
    "$work/blobs/sha256/$manifest" >"$work/manifest.json"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work" -cf "$out.tmp" manifest.json blobs
  mv "$out.tmp" "$out"
  rm -rf "$work"
  printf '%s\n' "$out"
}

cmd_build() {
  local start=$SECONDS binary rootfs lib out
  say "cargo build --release --locked -p celers-kube-lease-scheduler"
  (cd "$root" && timeout "${IMAGE_BUILD_TIMEOUT:-3600}" nice -n 19 \
    cargo build --release --locked -p celers-kube-lease-scheduler) >&2 || die "cargo build failed"
  binary="$target/release/$binary_name"
  [ -x "$binary" ] || die "no $binary after the build"

  rootfs="$target/oci/$binary_name.rootfs"
  rm -rf "$rootfs"
  mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc"
  install -m 0755 "$binary" "$rootfs/usr/local/bin/$binary_name"
  # Every library ldd resolves (absolute paths: "lib => /path (addr)" and the
  # loader's "/path (addr)"), copied to the same path; vDSO lines have none.
  for lib in $(ldd "$binary" | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i}' | sort -u); do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
  done
  # For programs that look the user up; the scheduler runs as 65532.
  printf 'root:x:0:0:root:/:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/:/sbin/nologin\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$rootfs/etc/group"
  chmod -R u=rwX,go=rX "$rootfs"

  out="$target/oci/$binary_name.tar"
  oci_archive "$image" "$rootfs" "$out" "[\"/usr/local/bin/$binary_name\"]" "65532:65532"
  rm -rf "$rootfs"
  if [ "$format" = docker ]; then
    out=$(docker_archive "$out")
  fi
  say "$image: $out ($(du -h "$out" | cut -f1), $((SECONDS - start))s)"
  printf '%s\n' "$out"
}

case $format in oci | docker) ;; *) die "IMAGE_FORMAT must be oci or docker, not '$format'" ;; esac
case ${1:-} in
  build) cmd_build ;;
  import)
    archive=$(cmd_build | tail -n 1)
    "$root/hack/node.sh" import "$archive"
    say "imported $image"
    ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
