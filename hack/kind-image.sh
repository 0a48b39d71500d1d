#!/usr/bin/env bash
# Builds a kind node image for the Kubernetes version this repository builds
# (hack/upstream/kubernetes/go.mod), locally and without pulling from any
# image registry, for hack/kind-e2e.sh (`make kind-image`):
#
#   - a Debian bookworm root file system by debootstrap (Debian's packages,
#     containerd and runc among them), cached as a tar;
#   - kind's base image files (images/base/files in the kind module that
#     hack/kind/kind/go.mod pins) laid out as kind's base Dockerfile does;
#   - the kubelet, kubeadm, kubectl, crictl and the CNI plugins
#     (hack/build-node.sh, hack/build-upstream.sh, hack/build-kind.sh);
#   - the images a kubeadm control plane runs (kube-apiserver,
#     kube-controller-manager, kube-scheduler, kube-proxy, etcd, CoreDNS,
#     pause, under the names `kubeadm config images list` prints) and kind's
#     own (kindnetd, local-path-provisioner and its helper), each made from
#     those binaries (plus, for kube-proxy, kindnetd and the helper, the
#     Debian programs they run), imported into the node's containerd at
#     build time;
#   - then `podman import`.
#
#   hack/kind-image.sh build   build (or find) the image; prints its name last
#
# The image is tagged localhost/celers-kube-lease/kind-node:<version>-<key>,
# the key hashing every input; its root file system is cached as
# kind-node/kind-node-<version>-<key>.tar in the cache dir
# (${XDG_CACHE_HOME:-~/.cache}/celers-kube-lease), so a rebuild with
# unchanged inputs only imports that tar into podman again. The Debian
# packages are bookworm's current ones when the base is first made; their
# versions are listed in the image's /kind/debian-packages.txt.
#
# Needs root and Debian's podman, debootstrap, containerd (its `containerd`
# and `ctr` put the images into the node's store), jq, and Go.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${CELERS_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/celers-kube-lease}
images="$cache/kind-node"
readonly suite=bookworm
# Debian packages of the node, as kind's base image installs them (less
# curl, NFS, iSCSI and fuse-overlayfs), plus Debian's containerd and runc.
readonly packages=systemd,systemd-sysv,dbus,containerd,runc,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,e2fsprogs,bash,ca-certificates,jq,procps,socat

LOG_PREFIX="kind-image: "
# shellcheck source=hack/lib.sh
source "$here/lib.sh"
# shellcheck source=hack/node/oci.sh
source "$here/node/oci.sh"

k8s_version=$(awk '/^require k8s.io\/kubernetes /{print $3}' "$here/upstream/kubernetes/go.mod")

# key: a hash of every input of the image (this script, hack/kind/, the
# binaries' cache dirs, which are keyed by their own inputs).
image_key() {
  {
    cat "$0" "$here/node/oci.sh" "$here/kind/default-cni.yaml" "$here/kind/default-storage.yaml"
    printf '%s\n' "$suite" "$packages" "$@"
  } | sha256sum | cut -c1-12
}

need_tools() {
  local missing=() t
  for t in podman debootstrap containerd ctr jq go systemctl chroot; do
    command -v "$t" >/dev/null || missing+=("$t")
  done
  [ ${#missing[@]} = 0 ] || die "missing ${missing[*]}: apt-get install podman debootstrap containerd jq (and Go)"
  [ "$(id -u)" = 0 ] || die "needs root (debootstrap, and containerd for the node's image store)"
}

# base_rootfs: the cached debootstrap tar (made on first use); prints its path.
base_rootfs() {
  local key tar dir start
  key=$(printf '%s\n' "$suite" "$packages" | sha256sum | cut -c1-12)
  tar="$images/debian-$suite-$key.tar"
  if [ -f "$tar" ]; then echo "$tar"; return; fi
  start=$SECONDS
  dir=$(mktemp -d "$images/debootstrap.XXXXXX")
  say "debootstrap $suite with $packages (first run only)"
  # Debian's default mirror; variant minbase, the packages above on top.
  timeout 1800 debootstrap --variant=minbase --include="$packages" "$suite" "$dir" >&2 ||
    { rm -rf "$dir"; die "debootstrap failed"; }
  rm -rf "$dir/var/cache/apt/archives/"*.deb "$dir/var/lib/apt/lists/"*
  tar --numeric-owner --xattrs --sort=name -C "$dir" -cf "$tar.tmp" .
  rm -rf "$dir"
  mv "$tar.tmp" "$tar"
  say "base $tar ($(du -h "$tar" | cut -f1), $((SECONDS - start))s)"
  echo "$tar"
}

# copy_program ROOTFS DEST PROG...: PROG (paths in ROOTFS) and the libraries
# they link (ldd in ROOTFS), into DEST at the same paths.
copy_program() {
  local rootfs=$1 dest=$2 prog lib
  shift 2
  for prog in "$@"; do
    mkdir -p "$dest$(dirname "$prog")"
    cp -a "$rootfs$prog" "$dest$prog"
    if [ -L "$rootfs$prog" ]; then
      prog=$(chroot "$rootfs" readlink -f "$prog")
      mkdir -p "$dest$(dirname "$prog")"
      cp -a "$rootfs$prog" "$dest$prog"
    fi
    for lib in $(chroot "$rootfs" ldd "$prog" 2>/dev/null | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i}' | sort -u); do
      mkdir -p "$dest$(dirname "$lib")"
      cp -L "$rootfs$lib" "$dest$lib"
    done
  done
}

# image NAME ENTRYPOINT_JSON USER: the OCI archive $work/oci/<n>.tar of the
# directory $work/img, as NAME; then empties $work/img.
image() {
  local out
  out="$work/oci/$(printf '%s' "$1" | tr -c 'a-zA-Z0-9._-' _).tar"
  chmod -R u=rwX,go=rX "$work/img"
  oci_archive "$1" "$work/img" "$out" "$2" "$3"
  rm -rf "$work/img"
  mkdir -p "$work/img"
}

# put BIN DEST: a binary into $work/img at DEST.
put() { install -D -m 0755 "$1" "$work/img$2"; }

# import_images ROOTFS: every archive in $work/oci into ROOTFS's containerd
# store (k8s.io namespace, as the CRI plugin reads it), by a containerd of
# this machine's run on that store for the purpose alone.
import_images() {
  local rootfs=$1 c=$work/containerd pid archive
  mkdir -p "$c" "$rootfs/var/lib/containerd"
  cat >"$c/config.toml" <<EOF
version = 2
root = "$rootfs/var/lib/containerd"
state = "$c/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$c/sock"
[ttrpc]
  address = "$c/sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$c/opt"
EOF
  containerd --config "$c/config.toml" >"$c/log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    [ -S "$c/sock" ] && break
    sleep 0.1
  done
  [ -S "$c/sock" ] || { kill "$pid" 2>/dev/null; cat "$c/log" >&2; die "the build's containerd did not start"; }
  for archive in "$work"/oci/*.tar; do
    # Unpacked on first use by the node's CRI plugin, as kind's own images.
    timeout 300 ctr --address "$c/sock" --namespace k8s.io images import --no-unpack --all-platforms "$archive" >/dev/null ||
      { kill "$pid"; die "ctr images import $archive failed"; }
  done
  say "images in the node: $(ctr --address "$c/sock" --namespace k8s.io images list -q | grep -v '@sha256:' | tr '\n' ' ')"
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  rm -rf "$c"
}

build() {
  local start=$SECONDS kube upstream node storage pause kind_mod key tar name base rootfs files names n b t
  need_tools
  mkdir -p "$images"
  # The binaries (each cached by its own inputs).
  kube=$("$here/build-node.sh" kube | tail -n 1)
  pause=$("$here/build-node.sh" pause | tail -n 1)
  upstream=$("$here/build-upstream.sh" | tail -n 1)
  node=$("$here/build-kind.sh" node | tail -n 1)
  storage=$("$here/build-kind.sh" storage | tail -n 1)
  key=$(image_key "${kube##*/}" "${pause##*/}" "${upstream##*/}" "${node##*/}" "${storage##*/}")
  name="localhost/celers-kube-lease/kind-node:$k8s_version-$key"
  tar="$images/kind-node-$k8s_version-$key.tar"

  exec 8>"$images/.build.lock"
  flock -w 3600 8 || die "another hack/kind-image.sh is still busy"
  if [ ! -f "$tar" ]; then
    base=$(base_rootfs | tail -n 1)
    work=$(mktemp -d "$images/build.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    rootfs="$work/rootfs"
    mkdir -p "$rootfs" "$work/oci" "$work/img"
    tar --numeric-owner --xattrs -C "$rootfs" -xf "$base"
    kind_mod=$(cd "$here/kind/kind" && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' sigs.k8s.io/kind)
    files="$kind_mod/images/base/files"
    [ -d "$files" ] || die "no images/base/files in the kind module ($kind_mod)"

    say "kind's base image files, as its Dockerfile lays them out"
    install -m 0755 "$files/usr/local/bin/"* "$rootfs/usr/local/bin/"
    mkdir -p "$rootfs/kind/bin" "$rootfs/kind/manifests" "$rootfs/etc/containerd" "$rootfs/etc/kubernetes/manifests" \
      "$rootfs/etc/systemd/system/kubelet.service.d" "$rootfs/opt/cni/bin"
    install -m 0755 "$files/kind/bin/"* "$rootfs/kind/bin/"
    install -m 0644 "$files/etc/crictl.yaml" "$rootfs/etc/"
    install -m 0644 "$files/etc/default/kubelet" "$rootfs/etc/default/"
    install -m 0644 "$files/etc/sysctl.d/"* "$rootfs/etc/sysctl.d/"
    install -m 0644 "$files/etc/systemd/system/kubelet.service" "$files/etc/systemd/system/kubelet.slice" \
      "$files/etc/systemd/system/undo-mount-hacks.service" "$rootfs/etc/systemd/system/"
    install -m 0644 "$files/etc/systemd/system/kubelet.service.d/"* "$rootfs/etc/systemd/system/kubelet.service.d/"
    # Debian's containerd is in /usr/bin, not /usr/local/bin.
    sed 's#/usr/local/bin/containerd#/usr/bin/containerd#' "$files/etc/systemd/system/containerd.service" \
      >"$rootfs/etc/systemd/system/containerd.service"
    chmod 0755 "$rootfs/kind" "$rootfs/kind/bin"

    # What kind's Dockerfile does after installing its packages.
    find "$rootfs/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
    rm -f "$rootfs/lib/systemd/system/multi-user.target.wants/"* "$rootfs/etc/systemd/system/"*.wants/* \
      "$rootfs/lib/systemd/system/local-fs.target.wants/"* "$rootfs/lib/systemd/system/sockets.target.wants/"*udev* \
      "$rootfs/lib/systemd/system/sockets.target.wants/"*initctl* "$rootfs/lib/systemd/system/basic.target.wants/"*
    echo "ReadKMsg=no" >>"$rootfs/etc/systemd/journald.conf"
    ln -sf /usr/lib/systemd/systemd "$rootfs/sbin/init"
    systemctl --root="$rootfs" enable kubelet.service containerd.service undo-mount-hacks.service >/dev/null 2>&1
    systemctl --root="$rootfs" mask systemd-binfmt.service >/dev/null 2>&1
    # The spec every container starts from, as kind's Dockerfile makes it
    # (Debian's ctr is the node's containerd's).
    ctr oci spec |
      jq '.hooks.createContainer[.hooks.createContainer | length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' |
      jq 'del(.process.rlimits)' >"$rootfs/etc/containerd/cri-base.json"

    say "binaries"
    install -m 0755 "$kube/kubelet" "$node/kubeadm" "$upstream/kubectl" "$rootfs/usr/bin/"
    install -m 0755 "$node/crictl" "$rootfs/usr/local/bin/"
    install -m 0755 "$node/cni/"* "$rootfs/opt/cni/bin/"
    echo "$k8s_version" >"$rootfs/kind/version"

    say "images"
    # The names kubeadm pulls, as it prints them (its default repository).
    mapfile -t names < <("$node/kubeadm" config images list --kubernetes-version "$k8s_version" 2>/dev/null)
    [ ${#names[@]} -ge 7 ] || die "kubeadm config images list printed ${#names[@]} names"
    for n in "${names[@]}"; do
      b=${n##*/} b=${b%%:*} # the program: the name's last part, less the tag
      case ${n##*/} in
        kube-apiserver:*) put "$upstream/kube-apiserver" /usr/local/bin/kube-apiserver
          image "$n" '["/usr/local/bin/kube-apiserver"]' 0:0 ;;
        kube-controller-manager:* | kube-scheduler:*) put "$kube/$b" "/usr/local/bin/$b"
          image "$n" "[\"/usr/local/bin/$b\"]" 0:0 ;;
        kube-proxy:*) put "$node/kube-proxy" /usr/local/bin/kube-proxy
          # iptables (Debian's nft backend, the node's default) and conntrack.
          copy_program "$rootfs" "$work/img" /usr/sbin/xtables-nft-multi /usr/sbin/conntrack
          mkdir -p "$work/img/usr/lib/x86_64-linux-gnu" "$work/img/usr/bin" "$work/img/run"
          cp -a "$rootfs/usr/lib/x86_64-linux-gnu/xtables" "$work/img/usr/lib/x86_64-linux-gnu/"
          # On the image's PATH (/usr/local/bin:/usr/bin:/bin), where kube-proxy looks.
          for t in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
            ln -s ../sbin/xtables-nft-multi "$work/img/usr/bin/$t"
          done
          ln -s ../sbin/conntrack "$work/img/usr/bin/conntrack"
          image "$n" '["/usr/local/bin/kube-proxy"]' 0:0 ;;
        etcd:*) put "$node/etcd" /usr/local/bin/etcd
          image "$n" '["/usr/local/bin/etcd"]' 0:0 ;;
        coredns:*) put "$node/coredns" /coredns
          image "$n" '["/coredns"]' 0:0 ;;
        pause:*) put "$pause/pause" /pause
          image "$n" '["/pause"]' 65535:65535
          sed "s#sandbox_image = \"[^\"]*\"#sandbox_image = \"$n\"#" "$files/etc/containerd/config.toml" >"$work/containerd.toml" ;;
        *) die "kubeadm lists an image this script does not know: $n" ;;
      esac
    done
    [ -f "$work/containerd.toml" ] || die "kubeadm listed no pause image"
    # kind's containerd config without the fuse-overlayfs proxy (for rootless
    # podman only, not built here), with kubeadm's pause image, and
    # restrict_oom_score_adj as inside a user namespace.
    awk '/^\[proxy_plugins\]/ {skip = 1} /^\[plugins/ {skip = 0} !skip' "$work/containerd.toml" |
      sed 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' >"$rootfs/etc/containerd/config.toml"

    local kindnetd=localhost/celers-kube-lease/kindnetd:$key
    local provisioner=localhost/celers-kube-lease/local-path-provisioner:${storage##*/local-path-provisioner-}
    local helper=localhost/celers-kube-lease/local-path-helper:$key
    put "$node/kindnetd" /usr/local/bin/kindnetd
    copy_program "$rootfs" "$work/img" /usr/bin/ip
    image "$kindnetd" '["/usr/local/bin/kindnetd"]' 0:0
    put "$storage/local-path-provisioner" /usr/local/bin/local-path-provisioner
    image "$provisioner" '["/usr/local/bin/local-path-provisioner"]' 0:0
    # The helper pod runs the ConfigMap's setup/teardown scripts with sh.
    copy_program "$rootfs" "$work/img" /usr/bin/dash /usr/bin/mkdir /usr/bin/rm /usr/bin/chmod /usr/bin/ls
    ln -s dash "$work/img/usr/bin/sh"
    ln -s usr/bin "$work/img/bin"
    image "$helper" '["/bin/sh"]' 0:0
    sed "s#KINDNETD_IMAGE#$kindnetd#" "$here/kind/default-cni.yaml" >"$rootfs/kind/manifests/default-cni.yaml"
    sed "s#PROVISIONER_IMAGE#$provisioner#; s#HELPER_IMAGE#$helper#" "$here/kind/default-storage.yaml" \
      >"$rootfs/kind/manifests/default-storage.yaml"
    import_images "$rootfs"

    # shellcheck disable=SC2016 # dpkg-query's format, not the shell's
    chroot "$rootfs" dpkg-query -W -f '${Package} ${Version}\n' >"$rootfs/kind/debian-packages.txt"
    say "packing the root file system"
    tar --numeric-owner --xattrs --sort=name -C "$rootfs" -cf "$tar.tmp" .
    mv "$tar.tmp" "$tar"
    rm -rf "$work"
    trap - EXIT
  fi
  if ! podman image exists "$name"; then
    say "podman import $tar"
    podman import --quiet \
      --change 'ENV container=docker' \
      --change 'STOPSIGNAL SIGRTMIN+3' \
      --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' \
      "$tar" "$name" >/dev/null || die "podman import failed"
  fi
  say "$name: $(podman image inspect --format '{{.Size}}' "$name" | awk '{printf "%d MB", $1 / 1000000}'), $((SECONDS - start))s"
  echo "$name"
}

case ${1:-} in
  build) build ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
